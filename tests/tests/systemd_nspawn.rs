//! The `systemd` module and the agent's systemd pipeline backend (units `suricata.service` and
//! `vector.service`, here stand-ins that sleep) against a real systemd, and the sensor's own
//! units as the NixOS module makes them (the last four tests: Suricata on the local rules, the
//! Redis copy with Debian's redis-server under the module's Redis unit, shipping to the
//! osmem-server emulator in the container's network namespace, and shipping across a restart of
//! the agent): each test boots the cached Debian
//! bookworm root (`tests/nspawn/make-root.sh`) with `systemd-nspawn -b` on a volatile overlay,
//! private network, and talks to the container's system bus through
//! `/proc/<pid>/root/run/dbus/system_bus_socket`. Nothing on the host is mounted or changed;
//! links are made only in the container's network namespace; the container is killed and
//! reaped when the test ends, pass or fail.
//!
//! Needs root, `systemd-nspawn` (package systemd-container) and the root file system
//! (`IDS2_NSPAWN_ROOT`, default /var/cache/ids2-tests/bookworm-sensor-root-v2); the sensor tests
//! also `nix-instantiate`, `../shared/nixos-eval`, Vector, `nsenter`, `ip`, `ping` and `curl`,
//! and the shipping tests osmem-server and `ids2-provision`.
//! Each test skips with a message when something is missing. `.ci/install-deps` and the shared
//! folder beside the repository provide all of them.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ids2_agent::pipeline::{
    Backend, Component, LimitPlan, SystemdBackend, UnitLimit, SURICATA_UNIT, VECTOR_UNIT,
};
use ids2_agent::resources::Limiter;
use ids2_agent::systemd::{ActiveState, JobResult, SubState, Systemd, SystemdError, TmpfsOutcome};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

mod support;

const DEFAULT_ROOT: &str = "/var/cache/ids2-tests/bookworm-sensor-root-v2";
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

const TEST_SERVICE: &str = "[Unit]
Description=ids2 test service (sleeps until stopped)

[Service]
ExecStart=/bin/sleep infinity
ExecReload=/bin/true
";

const FAIL_SERVICE: &str = "[Unit]
Description=ids2 test service that always fails

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'exit 1'
";

/// Stand-ins for the pipeline's units, under the real units' names, so the agent's systemd
/// backend is exercised exactly as on the sensor (Suricata and Vector are not in the root).
const PIPELINE_STAND_IN: &str = "[Unit]
Description=ids2 test stand-in for a pipeline unit (sleeps until stopped)

[Service]
ExecStart=/bin/sleep infinity
ExecReload=/bin/true
";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A booted container; dropping it kills its PID 1 (and so every process in it) and reaps
/// systemd-nspawn.
struct Container {
    nspawn: Child,
    pid1: u32,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A host path bind-mounted read-only into the container.
struct Bind {
    source: PathBuf,
    target: String,
}

/// What a test puts into its container.
#[derive(Default)]
struct Layout {
    binds: Vec<Bind>,
    /// Capabilities the container's PID 1 gets beyond nspawn's default set.
    capabilities: Vec<&'static str>,
}

/// Why this machine cannot run the test, or `None` when it can.
fn missing_requirement(root: &Path) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (systemd-nspawn boots a container)".into());
    }
    if Command::new("systemd-nspawn")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        return Some("needs systemd-nspawn (Debian package systemd-container)".into());
    }
    if !root.join(".ids2-root-complete").exists() {
        return Some(format!(
            "needs the container root {} (build it with tests/nspawn/make-root.sh)",
            root.display()
        ));
    }
    None
}

impl Container {
    /// The container's root file system.
    fn root() -> PathBuf {
        std::env::var_os("IDS2_NSPAWN_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
    }

    /// Boots a container with the test units, or returns `None` (after saying why) when this
    /// machine cannot.
    fn boot() -> Option<Container> {
        Self::boot_with(|dir, _root| Layout {
            binds: {
                let units = dir.join("units");
                fs::create_dir(&units).unwrap();
                fs::write(units.join("ids2-test.service"), TEST_SERVICE).unwrap();
                fs::write(units.join("ids2-fail.service"), FAIL_SERVICE).unwrap();
                for unit in [SURICATA_UNIT, VECTOR_UNIT] {
                    fs::write(units.join(unit), PIPELINE_STAND_IN).unwrap();
                }
                vec![Bind {
                    source: units,
                    target: "/usr/local/lib/systemd/system".into(),
                }]
            },
            ..Layout::default()
        })
    }

    /// Boots a container with what `layout` (given a directory of the test's and the root)
    /// returns bound into it, or returns `None` (after saying why) when this machine cannot.
    fn boot_with(layout: impl FnOnce(&Path, &Path) -> Layout) -> Option<Container> {
        let root = Self::root();
        if let Some(why) = missing_requirement(&root) {
            eprintln!("skipped: {why}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path(), &root);
        let log = dir.path().join("nspawn.log");
        let machine = format!(
            "ids2-t-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let nspawn = Command::new("systemd-nspawn")
            .args(["--register=no", "--keep-unit", "--quiet", "--boot"])
            .arg("--directory")
            .arg(&root)
            // The cached root stays untouched: writes land in a tmpfs overlay.
            .arg("--volatile=overlay")
            .arg("--private-network")
            .arg("--console=passive")
            .arg(format!("--machine={machine}"))
            .args(
                layout
                    .binds
                    .iter()
                    .map(|b| format!("--bind-ro={}:{}", b.source.display(), b.target)),
            )
            .args(
                layout
                    .capabilities
                    .iter()
                    .map(|c| format!("--capability={c}")),
            )
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(dir.path().join("nspawn.err")).unwrap())
            .spawn()
            .expect("spawn systemd-nspawn");
        let mut container = Container {
            pid1: 0,
            nspawn,
            log,
            _dir: dir,
        };
        container.pid1 = container.find_pid1();
        Some(container)
    }

    /// The host PID of the container's init: the child of systemd-nspawn that is PID 1 in its
    /// own PID namespace.
    fn find_pid1(&mut self) -> u32 {
        let parent = self.nspawn.id().to_string();
        let deadline = Instant::now() + BOOT_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.nspawn.try_wait().unwrap() {
                panic!(
                    "systemd-nspawn exited ({status}) before booting:\n{}",
                    self.output()
                );
            }
            for entry in fs::read_dir("/proc").unwrap().flatten() {
                let Ok(status) = fs::read_to_string(entry.path().join("status")) else {
                    continue;
                };
                let field = |name: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::trim)
                        .unwrap_or("")
                        .to_string()
                };
                let nspid = field("NSpid:");
                if field("PPid:") == parent && nspid.split_whitespace().nth(1) == Some("1") {
                    return nspid.split_whitespace().next().unwrap().parse().unwrap();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "no container init within {BOOT_TIMEOUT:?}:\n{}",
            self.output()
        );
    }

    fn output(&self) -> String {
        let err = self.log.with_file_name("nspawn.err");
        format!(
            "{}{}",
            fs::read_to_string(&self.log).unwrap_or_default(),
            fs::read_to_string(err).unwrap_or_default()
        )
    }

    fn proc_dir(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}", self.pid1))
    }

    /// A path inside the container, as the host sees it.
    fn path(&self, inside: &str) -> PathBuf {
        self.proc_dir()
            .join("root")
            .join(inside.trim_start_matches('/'))
    }

    /// Runs the container's `argv` in all its namespaces with a clean environment: as root, or
    /// as `user` with the groups the container's /etc/group gives it.
    fn exec(&self, user: Option<&str>, argv: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.pid1))
            .args(["--mount", "--uts", "--ipc", "--net", "--pid", "--"])
            .args([
                "env",
                "-i",
                "PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/",
            ]);
        if let Some(user) = user {
            cmd.args([
                "setpriv",
                &format!("--reuid={user}"),
                &format!("--regid={user}"),
                "--init-groups",
                "--",
            ]);
        }
        cmd.args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("spawn nsenter")
    }

    /// Runs a host program (`ip`, `ping`, `curl`) in the container's network namespace only.
    fn net(&self, argv: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .arg(format!("--target={}", self.pid1))
            .args(["--net", "--"])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("spawn nsenter")
    }

    /// What a unit logged in the container's journal.
    fn journal(&self, unit: &str) -> String {
        let out = self.exec(None, &["journalctl", "--no-pager", "-o", "cat", "-u", unit]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Connects to the container's systemd once it has finished booting.
    async fn systemd(&self) -> Systemd {
        let socket = self.proc_dir().join("root/run/dbus/system_bus_socket");
        let address = format!("unix:path={}", socket.display());
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let mut last = String::from("the bus socket never appeared");
        while Instant::now() < deadline {
            if socket.exists() {
                match Systemd::connect_at(&address).await {
                    Ok(systemd) => match systemd.system_state().await {
                        Ok(state) if state == "running" || state == "degraded" => {
                            return systemd.with_proc_dir(self.proc_dir());
                        }
                        Ok(state) => last = format!("system state {state}"),
                        Err(e) => last = e.to_string(),
                    },
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "container systemd not ready within {BOOT_TIMEOUT:?} ({last}):\n{}",
            self.output()
        );
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // Killing PID 1 of a PID namespace kills everything in it; nspawn then exits.
        if self.pid1 != 0 {
            let _ = kill(Pid::from_raw(self.pid1 as i32), Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

macro_rules! boot {
    () => {
        match Container::boot() {
            Some(c) => c,
            None => return,
        }
    };
}

/// The mountinfo line for `mount_point`, read directly (not through the module under test).
fn mountinfo_line(proc_dir: &Path, mount_point: &str) -> Option<String> {
    fs::read_to_string(proc_dir.join("mountinfo"))
        .unwrap()
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(mount_point))
        .map(str::to_string)
}

fn state(active: ActiveState, sub: &str) -> (ActiveState, SubState) {
    (active, SubState(sub.into()))
}

#[tokio::test]
async fn transient_tmpfs_mount_appears_with_size_and_mode() {
    let c = boot!();
    let systemd = c.systemd().await;
    let host = PathBuf::from("/proc/self");
    let host_before = mountinfo_line(&host, "/mnt/ram_logs");

    let outcome = systemd
        .ensure_tmpfs("/mnt/ram_logs", 64, 0o750)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        TmpfsOutcome::Mounted {
            unit: "mnt-ram_logs.mount".into()
        }
    );

    let line = mountinfo_line(&c.proc_dir(), "/mnt/ram_logs").expect("mounted in the container");
    let (per_mount, per_sb) = line.split_once(" - ").unwrap();
    assert!(per_sb.starts_with("tmpfs "), "{line}");
    assert!(per_sb.contains("size=65536k"), "{line}");
    assert!(per_sb.contains("mode=750"), "{line}");
    for flag in ["nosuid", "nodev", "noexec"] {
        assert!(
            per_mount.split([' ', ',']).any(|o| o == flag),
            "{flag}: {line}"
        );
    }
    let mode = fs::metadata(c.proc_dir().join("root/mnt/ram_logs"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o750);
    assert_eq!(
        systemd.unit_state("mnt-ram_logs.mount").await.unwrap(),
        state(ActiveState::Active, "mounted")
    );
    assert_eq!(
        mountinfo_line(&host, "/mnt/ram_logs"),
        host_before,
        "the host's mounts must not change"
    );

    // Idempotent: a second run finds the tmpfs and changes nothing.
    assert_eq!(
        systemd
            .ensure_tmpfs("/mnt/ram_logs", 64, 0o750)
            .await
            .unwrap(),
        TmpfsOutcome::AlreadyMounted {
            unit: "mnt-ram_logs.mount".into()
        }
    );
    // A different size is refused and the mount is left as it was.
    let err = systemd
        .ensure_tmpfs("/mnt/ram_logs", 32, 0o750)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SystemdError::MountMismatch { found, .. } if found.contains("size is 65536k (want 32768k)")),
        "{err}"
    );
    assert_eq!(mountinfo_line(&c.proc_dir(), "/mnt/ram_logs"), Some(line));
}

#[tokio::test]
async fn restart_reports_the_new_main_process() {
    let c = boot!();
    let systemd = c.systemd().await;
    let unit = "ids2-test.service";

    assert_eq!(systemd.start_unit(unit).await.unwrap(), JobResult::Done);
    assert_eq!(
        systemd.unit_state(unit).await.unwrap(),
        state(ActiveState::Active, "running")
    );
    let first = systemd.main_pid(unit).await.unwrap().expect("a main PID");

    assert_eq!(systemd.restart_unit(unit).await.unwrap(), JobResult::Done);
    assert_eq!(
        systemd.unit_state(unit).await.unwrap(),
        state(ActiveState::Active, "running")
    );
    let second = systemd.main_pid(unit).await.unwrap().expect("a main PID");
    assert_ne!(first, second, "restart must start a new main process");

    // Reload runs ExecReload= and keeps the same process.
    assert_eq!(systemd.reload_unit(unit).await.unwrap(), JobResult::Done);
    assert_eq!(systemd.main_pid(unit).await.unwrap(), Some(second));

    assert_eq!(systemd.stop_unit(unit).await.unwrap(), JobResult::Done);
    assert_eq!(
        systemd.unit_state(unit).await.unwrap(),
        state(ActiveState::Inactive, "dead")
    );
    assert_eq!(systemd.main_pid(unit).await.unwrap(), None);

    let status = systemd.unit_status(unit).await.unwrap().to_string();
    assert!(
        status.starts_with("ids2-test.service: loaded, inactive (dead)"),
        "{status}"
    );
}

#[tokio::test]
async fn failing_unit_error_names_the_unit_and_systemds_reason() {
    let c = boot!();
    let systemd = c.systemd().await;

    let err = systemd.start_unit("ids2-fail.service").await.unwrap_err();
    match &err {
        SystemdError::JobFailed {
            unit,
            result,
            unit_result,
            ..
        } => {
            assert_eq!(unit, "ids2-fail.service");
            assert_eq!(result, "failed");
            assert_eq!(unit_result.as_deref(), Some("exit-code"));
        }
        other => panic!("expected JobFailed, got {other:?}"),
    }
    let message = err.to_string();
    eprintln!("failed job reported as: {message}");
    assert!(
        message.contains("ids2-fail.service") && message.contains("exit-code"),
        "{message}"
    );
    assert_eq!(
        systemd.unit_state("ids2-fail.service").await.unwrap(),
        state(ActiveState::Failed, "failed")
    );

    // A D-Bus error reply keeps systemd's own error name and message.
    let err = systemd
        .start_unit("ids2-missing.service")
        .await
        .unwrap_err();
    let message = err.to_string();
    eprintln!("D-Bus error reported as: {message}");
    assert!(matches!(err, SystemdError::Call { .. }), "{err:?}");
    assert!(
        message.contains("org.freedesktop.systemd1.NoSuchUnit")
            && message.contains("Unit ids2-missing.service not found."),
        "{message}"
    );
}

#[tokio::test]
async fn runtime_resource_properties_are_read_back() {
    let c = boot!();
    let systemd = c.systemd().await;
    let unit = "ids2-test.service";
    systemd.start_unit(unit).await.unwrap();

    systemd
        .set_unit_properties(unit, Some(25), Some(64 << 20), true)
        .await
        .unwrap();
    let limits = systemd.resource_limits(unit).await.unwrap();
    assert_eq!(limits.cpu_quota_per_sec_usec, Some(250_000));
    assert_eq!(limits.memory_high_bytes, Some(64 << 20));

    // runtime=true keeps the change under /run (gone after a reboot), not /etc.
    let root = c.proc_dir().join("root");
    let dropins = root.join("run/systemd/system.control/ids2-test.service.d");
    let written: String = fs::read_dir(&dropins)
        .unwrap_or_else(|e| panic!("{}: {e}", dropins.display()))
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(written.contains("CPUQuota=25%"), "{written}");
    assert!(written.contains("MemoryHigh=67108864"), "{written}");
    assert!(!root.join("etc/systemd/system.control").exists());

    // Changing one property leaves the other alone.
    systemd
        .set_unit_properties(unit, Some(50), None, true)
        .await
        .unwrap();
    let limits = systemd.resource_limits(unit).await.unwrap();
    assert_eq!(limits.cpu_quota_per_sec_usec, Some(500_000));
    assert_eq!(limits.memory_high_bytes, Some(64 << 20));

    systemd.clear_resource_limits(unit, true).await.unwrap();
    let limits = systemd.resource_limits(unit).await.unwrap();
    assert_eq!(limits.cpu_quota_per_sec_usec, None);
    assert_eq!(limits.memory_high_bytes, None);

    let err = systemd
        .set_unit_properties(unit, Some(0), None, true)
        .await
        .unwrap_err();
    assert!(err.is_bad_input(), "{err}");
    let err = systemd
        .set_unit_properties("multi-user.target", Some(10), None, true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SystemdError::NoResourceControl { .. }),
        "{err}"
    );
}

async fn wait_active(systemd: &Systemd, unit: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = systemd.unit_state(unit).await.unwrap();
        if state == (ActiveState::Active, SubState("running".into())) {
            return;
        }
        assert!(Instant::now() < deadline, "{unit} not running: {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_pid(backend: &SystemdBackend, c: Component, not: Option<u32>) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = backend.pid(c).filter(|p| Some(*p) != not) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no main PID for {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn plan() -> LimitPlan {
    LimitPlan {
        suricata: UnitLimit {
            cpu_quota_percent: 150,
            memory_high_bytes: Some(256 << 20),
        },
        vector: UnitLimit {
            cpu_quota_percent: 60,
            memory_high_bytes: Some(128 << 20),
        },
    }
}

#[tokio::test]
async fn systemd_backend_starts_restarts_reloads_and_stops_the_units() {
    let c = boot!();
    let backend = SystemdBackend::new(c.systemd().await, plan()).await;
    let check = c.systemd().await;
    assert_eq!(backend.pid(Component::Suricata), None, "nothing runs yet");

    for comp in Component::START_ORDER {
        backend.start(comp).await.unwrap();
    }
    wait_active(&check, SURICATA_UNIT).await;
    wait_active(&check, VECTOR_UNIT).await;
    let suricata = wait_pid(&backend, Component::Suricata, None).await;
    let vector = wait_pid(&backend, Component::Vector, None).await;
    assert_eq!(check.main_pid(SURICATA_UNIT).await.unwrap(), Some(suricata));

    backend.restart(Component::Suricata).await.unwrap();
    let restarted = check
        .main_pid(SURICATA_UNIT)
        .await
        .unwrap()
        .expect("running");
    assert_ne!(restarted, suricata, "restart must start a new main process");
    assert_eq!(backend.pid(Component::Suricata), Some(restarted));

    // Reload runs ExecReload= and keeps the process.
    backend.reload(Component::Vector).await.unwrap();
    assert_eq!(check.main_pid(VECTOR_UNIT).await.unwrap(), Some(vector));

    for comp in Component::STOP_ORDER {
        backend.stop(comp, Duration::from_secs(10)).await.unwrap();
    }
    for unit in [SURICATA_UNIT, VECTOR_UNIT] {
        assert_eq!(
            check.unit_state(unit).await.unwrap(),
            state(ActiveState::Inactive, "dead")
        );
    }
    assert_eq!(backend.pid(Component::Suricata), None);
    assert_eq!(backend.pid(Component::Vector), None);
}

#[tokio::test]
async fn systemd_limiter_sets_quota_and_memory_high_and_clears_them() {
    let c = boot!();
    let backend = SystemdBackend::new(c.systemd().await, plan()).await;
    let check = c.systemd().await;
    for comp in Component::START_ORDER {
        backend.start(comp).await.unwrap();
    }
    wait_active(&check, SURICATA_UNIT).await;
    wait_active(&check, VECTOR_UNIT).await;

    backend.limit().await.unwrap();
    let s = check.resource_limits(SURICATA_UNIT).await.unwrap();
    assert_eq!(s.cpu_quota_per_sec_usec, Some(1_500_000));
    assert_eq!(s.memory_high_bytes, Some(256 << 20));
    let v = check.resource_limits(VECTOR_UNIT).await.unwrap();
    assert_eq!(v.cpu_quota_per_sec_usec, Some(600_000));
    assert_eq!(v.memory_high_bytes, Some(128 << 20));
    // Runtime only: the drop-in is under /run.
    let dropin = c
        .proc_dir()
        .join("root/run/systemd/system.control/suricata.service.d");
    assert!(dropin.is_dir(), "{}", dropin.display());

    backend.release().await.unwrap();
    for unit in [SURICATA_UNIT, VECTOR_UNIT] {
        let l = check.resource_limits(unit).await.unwrap();
        assert_eq!(l.cpu_quota_per_sec_usec, None, "{unit}");
        assert_eq!(l.memory_high_bytes, None, "{unit}");
    }
    // The units kept running throughout.
    wait_active(&check, SURICATA_UNIT).await;
}

// ---------------------------------------------------------------------------------------------
// The sensor as the NixOS module makes it.

/// The sensor's units installed in the container.
const SENSOR_UNITS: [&str; 4] = [
    "ids2-agent.service",
    "ids2-capture-offloads.service",
    SURICATA_UNIT,
    VECTOR_UNIT,
];
/// The programs of the workspace and the shared Vector build, bound into the container and
/// named by the units through their store paths (`<name>/bin/<name>`).
const BOUND_PROGRAMS: [&str; 2] = ["ids2-agent", "vector"];
/// The Redis copy's server (nixpkgs' services.redis.servers.ids2), when the scenario has one.
const REDIS_UNIT: &str = "redis-ids2.service";
/// A stand-in for nixpkgs' pre-start of that unit, which writes its redis.conf from
/// `services.redis.servers.ids2.settings`: the reduced redis module in ../shared/nixos-eval
/// keeps the unit without it. The file is rendered from the evaluated settings by
/// [`redis_conf`].
const REDIS_PRESTART: &str = "[Service]
ExecStartPre=/bin/cp /usr/local/lib/ids2-test/redis.conf /run/redis-ids2/redis.conf
";
/// CAP_NET_RAW, the one capability Suricata keeps (capability bit 13).
const CAP_NET_RAW_ONLY: &str = "0000000000002000";
/// templates/rules/ids2.rules sid 9200060: three ICMP echo requests above 500 bytes.
const LOCAL_RULE_SID: u64 = 9_200_060;
/// The rule of the "downloaded" set the test installs with `ids2-agent rules update`.
const SET_RULE_SID: u64 = 9_000_101;
const SET_RULE_PATTERN: &str = "ids2-nspawn-set";
const LOGS: &str = "/mnt/ram_logs";
const SOCKET: &str = "/run/suricata/suricata-command.socket";

/// A program the workspace built beside this test (`cargo nextest run --workspace` builds
/// them), or the one `env` names.
fn workspace_binary(name: &str, env: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().join(name)
    });
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p {name}` (the workspace test run does)",
        path.display()
    );
    path
}

/// The `/nix/store/<hash>-<name>` paths a text refers to, as (path, name).
fn store_paths(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("/nix/store/") {
        let rest = &text[at + "/nix/store/".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "+-._?=".contains(c)))
            .unwrap_or(rest.len());
        let base = &rest[..end];
        if let Some((hash, name)) = base.split_once('-') {
            if hash.len() == 32 {
                found.push((format!("/nix/store/{base}"), name.to_string()));
            }
        }
    }
    found
}

fn obj<'a>(v: &'a serde_json::Value, key: &str) -> &'a serde_json::Map<String, serde_json::Value> {
    v[key]
        .as_object()
        .unwrap_or_else(|| panic!("{key} in the evaluation"))
}

fn str_list(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default()
}

fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("{} -> {target}: {e}", link.display()));
}

/// Users, groups and memberships as sysusers.d lines (NixOS makes them with its own script;
/// the names, groups and memberships are what the module declares).
fn sysusers_conf(sensor: &serde_json::Value) -> String {
    let id = |v: &serde_json::Value| v.as_u64().map_or("-".into(), |n| n.to_string());
    let mut conf = String::new();
    for (name, group) in obj(sensor, "groups") {
        if name != "root" {
            conf.push_str(&format!("g {name} {}\n", id(&group["gid"])));
        }
    }
    for (name, user) in obj(sensor, "users").iter().filter(|(n, _)| *n != "root") {
        conf.push_str(&format!(
            "u {name} {}:{} {:?} {}\n",
            id(&user["uid"]),
            user["group"].as_str().unwrap(),
            user["description"].as_str().unwrap_or(""),
            user["home"].as_str().unwrap()
        ));
        for extra in str_list(&user["extraGroups"]) {
            conf.push_str(&format!("m {name} {extra}\n"));
        }
    }
    conf
}

/// The file systems as /etc/fstab lines.
fn fstab(sensor: &serde_json::Value) -> String {
    obj(sensor, "fileSystems")
        .values()
        .map(|f| {
            format!(
                "{} {} {} {} 0 0\n",
                f["device"].as_str().unwrap(),
                f["mountPoint"].as_str().unwrap(),
                f["fsType"].as_str().unwrap(),
                str_list(&f["options"]).join(",")
            )
        })
        .collect()
}

/// Fills `store` (bound at /nix/store) with every store path `texts` and the scripts refer
/// to, pointing at the root's Debian programs: `<path>/bin` and `/sbin` hold every program of
/// /usr/bin and /usr/sbin, `<suricata>/etc` is /etc (its classification and reference
/// configs), `<name>/bin/<name>` of [`BOUND_PROGRAMS`] is the program bound at
/// /usr/local/bin/<name>, and the scripts are the evaluated scripts behind a bash shebang (the
/// stubs' writeShellScript keeps only the text).
fn store_farm(
    store: &Path,
    root: &Path,
    texts: &[String],
    scripts: &serde_json::Map<String, serde_json::Value>,
) {
    let all_bin = store.join(".bin");
    fs::create_dir_all(&all_bin).unwrap();
    for d in ["usr/sbin", "usr/bin"] {
        for entry in fs::read_dir(root.join(d)).unwrap().flatten() {
            let link = all_bin.join(entry.file_name());
            let _ = fs::remove_file(&link);
            symlink(
                &format!("/{d}/{}", entry.file_name().to_string_lossy()),
                &link,
            );
        }
    }
    let referenced: Vec<(String, String)> = texts
        .iter()
        .map(String::as_str)
        .chain(scripts.values().filter_map(|v| v.as_str()))
        .flat_map(store_paths)
        .collect();
    for (path, name) in referenced {
        let at = store.join(path.trim_start_matches("/nix/store/"));
        if at.exists() {
            continue;
        }
        if let Some(script) = scripts.get(&path) {
            fs::write(&at, format!("#!/bin/bash\n{}", script.as_str().unwrap())).unwrap();
            fs::set_permissions(&at, fs::Permissions::from_mode(0o755)).unwrap();
            continue;
        }
        fs::create_dir(&at).unwrap();
        if BOUND_PROGRAMS.contains(&name.as_str()) {
            fs::create_dir(at.join("bin")).unwrap();
            symlink(
                &format!("/usr/local/bin/{name}"),
                &at.join("bin").join(&name),
            );
        } else {
            symlink("../.bin", &at.join("bin"));
            symlink("../.bin", &at.join("sbin"));
        }
        if name == "suricata" {
            symlink("/etc", &at.join("etc"));
        }
    }
}

/// Writes what NixOS would put on the sensor for `sensor` into `dir` and returns how it goes
/// into the container:
/// - the units, tmpfiles rules and users (sysusers.d) under /usr/local/lib, where the
///   container's systemd, systemd-tmpfiles and systemd-sysusers read them at boot;
/// - /etc/fstab, /etc/ids2/config.yaml, the polkit rules and the credential files the units
///   load (stand-ins: a dummy AWS credentials file);
/// - /nix/store as [`store_farm`] makes it, the agent binary and Vector.
///
/// The container's PID 1 also gets CAP_SYS_RESOURCE, which a host's systemd has and nspawn
/// withholds: without it systemd cannot raise the units' hard limits (Suricata's LimitNICE).
fn sensor_layout(
    sensor: &serde_json::Value,
    dir: &Path,
    root: &Path,
    programs: [&Path; 2],
) -> Layout {
    let lib = dir.join("lib");
    for sub in ["systemd/system", "sysusers.d", "tmpfiles.d"] {
        fs::create_dir_all(lib.join(sub)).unwrap();
    }
    let units = obj(sensor, "units");
    let mut texts: Vec<String> = SENSOR_UNITS
        .iter()
        .map(|name| {
            let text = units[*name]["text"].as_str().unwrap();
            fs::write(lib.join("systemd/system").join(name), text).unwrap();
            text.to_string()
        })
        .collect();
    if let Some(redis) = units.get(REDIS_UNIT) {
        let text = redis["text"].as_str().unwrap();
        fs::write(lib.join("systemd/system").join(REDIS_UNIT), text).unwrap();
        texts.push(text.to_string());
        let dropin = lib.join(format!("systemd/system/{REDIS_UNIT}.d"));
        fs::create_dir_all(&dropin).unwrap();
        fs::write(dropin.join("nixpkgs-prestart.conf"), REDIS_PRESTART).unwrap();
        fs::create_dir_all(lib.join("ids2-test")).unwrap();
        fs::write(
            lib.join("ids2-test/redis.conf"),
            redis_conf(&sensor["redis"]["ids2"]["settings"]),
        )
        .unwrap();
    }
    fs::write(lib.join("sysusers.d/ids2.conf"), sysusers_conf(sensor)).unwrap();
    let tmpfiles: String = str_list(&sensor["tmpfiles"])
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(lib.join("tmpfiles.d/ids2.conf"), tmpfiles).unwrap();

    let mut binds = vec![Bind {
        source: lib,
        target: "/usr/local/lib".into(),
    }];
    for (name, program) in BOUND_PROGRAMS.into_iter().zip(programs) {
        binds.push(Bind {
            source: program.to_path_buf(),
            target: format!("/usr/local/bin/{name}"),
        });
    }
    let mut file = |name: &str, text: &str, target: &str| {
        let source = dir.join(name);
        fs::write(&source, text).unwrap();
        binds.push(Bind {
            source,
            target: target.into(),
        });
    };
    file("fstab", &fstab(sensor), "/etc/fstab");
    // JSON is YAML: the module's config.yaml as the agent reads it.
    let config = &sensor["etc"]["ids2/config.yaml"]["value"];
    file("config.yaml", &config.to_string(), "/etc/ids2/config.yaml");
    // nixos/modules/security/polkit.nix writes extraConfig there.
    let polkit = sensor["polkit"]["extraConfig"].as_str().unwrap();
    file(
        "polkit.rules",
        polkit,
        "/etc/polkit-1/rules.d/10-nixos.rules",
    );
    let credentials: std::collections::BTreeSet<&str> = texts
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| Some(l.strip_prefix("LoadCredential=")?.split_once(':')?.1))
        .collect();
    for (n, source) in credentials.into_iter().enumerate() {
        // A stand-in, not a secret: nothing is reachable to use it with.
        let profile = config["opensearch"]["auth"]["profile"]
            .as_str()
            .unwrap_or("default");
        file(
            &format!("credential-{n}"),
            &format!(
                "[{profile}]\naws_access_key_id = AKIDNSPAWNTESTONLY\n\
                 aws_secret_access_key = nspawn-test-dummy\n"
            ),
            source,
        );
    }

    let store = dir.join("store");
    store_farm(&store, root, &texts, obj(sensor, "scripts"));
    binds.push(Bind {
        source: store,
        target: "/nix/store".into(),
    });
    Layout {
        binds,
        capabilities: vec!["CAP_SYS_RESOURCE"],
    }
}

/// redis.conf as nixpkgs writes it from `services.redis.servers.<name>.settings`
/// (`generators.toKeyValue`: `key value` lines, booleans as yes/no, a list as repeated keys),
/// plus the data directory nixpkgs' settings also name and the reduced module leaves out.
fn redis_conf(settings: &serde_json::Value) -> String {
    let value = |v: &serde_json::Value| match v {
        serde_json::Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let settings = settings
        .as_object()
        .expect("services.redis.servers.ids2.settings in the evaluation");
    let mut conf = String::from("dir /var/lib/redis-ids2\n");
    for (key, v) in settings {
        match v {
            serde_json::Value::Array(items) => {
                for item in items {
                    conf.push_str(&format!("{key} {}\n", value(item)));
                }
            }
            v => conf.push_str(&format!("{key} {}\n", value(v))),
        }
    }
    conf
}

/// Whether this process may raise resource limits (CAP_SYS_RESOURCE, bit 24, in its bounding
/// set), as any host's systemd may; some sandboxes withhold it even from root.
fn host_may_raise_limits() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status_field(&status, "CapBnd");
    u64::from_str_radix(&bounding[0], 16).unwrap() & (1 << 24) != 0
}

/// Numeric id of a user or group in the container's /etc/passwd or /etc/group.
fn container_id(c: &Container, file: &str, name: &str) -> u32 {
    let text = fs::read_to_string(c.path(file)).unwrap();
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == name).then(|| f[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{name} is not in the container's {file}:\n{text}"))
}

/// The values of a /proc/<pid>/status field.
fn status_field(status: &str, name: &str) -> Vec<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in\n{status}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Polls `check` every 250 ms until it returns `Some`, at most `limit`; panics with `what`
/// and the container's logs of the sensor's units otherwise.
async fn wait_for<T>(
    c: &Container,
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            fail_with_logs(c, &format!("{what}: not within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Panics with `what` and the container's logs of the sensor's units.
fn fail_with_logs(c: &Container, what: &str) -> ! {
    let logs: String = SENSOR_UNITS
        .iter()
        .chain([&REDIS_UNIT])
        .map(|u| format!("--- {u}:\n{}", c.journal(u)))
        .collect();
    panic!("{what}\n{logs}");
}

/// EVE lines of `event_type` in the container's eve.json.
fn eve_lines(c: &Container, event_type: &str) -> Vec<serde_json::Value> {
    fs::read_to_string(c.path(&format!("{LOGS}/eve.json")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event_type"] == event_type)
        .collect()
}

fn has_alert(c: &Container, sid: u64) -> bool {
    eve_lines(c, "alert")
        .iter()
        .any(|a| a["alert"]["signature_id"] == sid)
}

/// Events Vector's `eve` source received (its Prometheus exporter, 127.0.0.1:9598).
fn vector_eve_events(c: &Container) -> f64 {
    let out = c.net(&["curl", "-sf", "http://127.0.0.1:9598/metrics"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.starts_with("vector_component_received_events_total{")
                && l.contains("component_id=\"eve\"")
        })
        // `name{labels} value [timestamp]`
        .filter_map(|l| {
            l.split_once("} ")?
                .1
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum()
}

/// Sends three ICMP echo requests of 600 bytes out of the container's eth0 (the capture link).
fn ping_out(c: &Container, pattern: Option<&str>) {
    let hex: String;
    let mut argv = vec!["ping", "-c", "3", "-i", "0.2", "-s", "600", "-W", "1"];
    if let Some(p) = pattern {
        hex = p.bytes().map(|b| format!("{b:02x}")).collect();
        argv.extend(["-p", hex.as_str()]);
    }
    argv.push("192.0.2.2");
    // No one answers: the echo requests are what Suricata sees leave eth0.
    let _ = c.net(&argv);
}

/// Pings out once (with `pattern`) and waits up to 20 s for Suricata's alert of rule `sid`.
async fn raise_alert(c: &Container, pattern: Option<&str>, sid: u64, what: &str) {
    ping_out(c, pattern);
    wait_for(c, Duration::from_secs(20), what, || {
        has_alert(c, sid).then_some(())
    })
    .await;
}

/// Waits up to `limit` for the agent's metric `name` to read `value`.
async fn wait_metric(c: &Container, name: &str, value: f64, limit: Duration) {
    let what = format!("{name} {value} in the agent's metrics");
    wait_for(c, limit, &what, || {
        (metric(c, name) == Some(value)).then_some(())
    })
    .await;
}

fn metric(c: &Container, name: &str) -> Option<f64> {
    let out = c.net(&["curl", "-sf", "http://127.0.0.1:9100/metrics"]);
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|v| v.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Numeric ids of the sensor's users and groups in the container, as strings.
struct Ids {
    suricata_uid: String,
    suricata_gid: String,
    ids2_gid: String,
}

impl Ids {
    fn read(c: &Container) -> Self {
        Ids {
            suricata_uid: container_id(c, "/etc/passwd", "suricata").to_string(),
            suricata_gid: container_id(c, "/etc/group", "suricata").to_string(),
            ids2_gid: container_id(c, "/etc/group", "ids2").to_string(),
        }
    }
}

/// Suricata's process: user suricata from exec on, group suricata plus ids2, CAP_NET_RAW and
/// nothing else in every capability set, no way to gain more.
fn assert_unprivileged(status: &str, ids: &Ids) {
    assert_eq!(
        status_field(status, "Uid"),
        [ids.suricata_uid.as_str(); 4],
        "{status}"
    );
    assert_eq!(
        status_field(status, "Gid"),
        [ids.suricata_gid.as_str(); 4],
        "{status}"
    );
    let mut groups = status_field(status, "Groups");
    groups.sort();
    let mut want = [ids.suricata_gid.clone(), ids.ids2_gid.clone()];
    want.sort();
    assert_eq!(groups, want, "{status}");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            status_field(status, set),
            [CAP_NET_RAW_ONLY],
            "{set}:\n{status}"
        );
    }
    assert_eq!(status_field(status, "NoNewPrivs"), ["1"], "{status}");
    assert_eq!(status_field(status, "Seccomp"), ["2"], "{status}");
}

/// The nice value of Suricata's (pinned) worker thread.
fn worker_nice(c: &Container, pid: u32) -> String {
    fs::read_dir(c.path(&format!("/proc/{pid}/task")))
        .unwrap()
        .flatten()
        .find_map(|t| {
            let stat = fs::read_to_string(t.path().join("stat")).ok()?;
            let (comm, rest) = stat.split_once(") ")?;
            // Field 19 of stat, the 17th after the command name.
            comm.ends_with("W#01-eth0")
                .then(|| rest.split_whitespace().nth(16).unwrap().to_string())
        })
        .expect("a worker thread W#01-eth0")
}

/// The pinned worker runs at nice -2 (LimitNICE, not CAP_SYS_NICE), and Suricata complains
/// about nothing it was not allowed to do: NIC offloads were turned off before it started.
fn assert_nice_and_offloads(c: &Container, pid: u32) {
    let mut log = c.journal(SURICATA_UNIT);
    if host_may_raise_limits() {
        assert_eq!(worker_nice(c, pid), "-2", "{log}");
    } else {
        // Here even root lacks CAP_SYS_RESOURCE, so no systemd can raise a hard limit and the
        // worker's nice(-2) is refused. What can be checked is the limit systemd was given.
        eprintln!(
            "note: this machine withholds CAP_SYS_RESOURCE from root: systemd cannot raise \
             RLIMIT_NICE, so the worker's nice -2 is checked as the unit's LimitNICE only"
        );
        let shown = c.exec(
            None,
            &["systemctl", "show", "-p", "LimitNICE", SURICATA_UNIT],
        );
        assert_eq!(
            String::from_utf8_lossy(&shown.stdout).trim(),
            "LimitNICE=22"
        );
        let refused = "E: threads: Error setting nice value -2 for thread W#01-eth0: \
                       Operation not permitted\n";
        assert!(log.contains(refused), "{log}");
        log = log.replace(refused, "");
    }
    for complaint in [
        "SIOCETHTOOL",
        "Operation not permitted",
        "Permission denied",
    ] {
        assert!(!log.contains(complaint), "{complaint}:\n{log}");
    }
    let features = c.exec(None, &["ethtool", "-k", "eth0"]);
    let features = String::from_utf8_lossy(&features.stdout);
    for feature in [
        "scatter-gather: off",
        "tcp-segmentation-offload: off",
        "generic-segmentation-offload: off",
        "generic-receive-offload: off",
    ] {
        assert!(features.contains(feature), "{feature}:\n{features}");
    }
}

/// The sensor of `scenario` (nixos/tests/eval.nix) booted in the container root, which must
/// hold `programs` (/usr/bin), with its bus connected and its capture link up: the evaluation,
/// the container and the container's systemd. `None`, said, when the machine lacks something.
async fn boot_sensor(
    scenario: &str,
    programs: &[&str],
) -> Option<(serde_json::Value, Container, Systemd)> {
    let sensor = support::or_skip(support::nixos::evaluate(&format!("scenarios.{scenario}")))?;
    for program in programs {
        if !Container::root().join("usr/bin").join(program).exists() {
            eprintln!(
                "skipped: the container root {} has no /usr/bin/{program} (rebuild it with \
                 tests/nspawn/make-root.sh)",
                Container::root().display()
            );
            return None;
        }
    }
    let vector = support::or_skip(ids2_agent::vector::locate())?;
    let agent = workspace_binary("ids2-agent", "IDS2_AGENT_BIN");
    let c = Container::boot_with(|dir, root| sensor_layout(&sensor, dir, root, [&agent, &vector]))?;
    let systemd = c.systemd().await.with_job_timeout(Duration::from_secs(90));
    add_capture_link(&c);
    Some((sensor, c, systemd))
}

/// Starts ids2-agent.service and waits for the Suricata it starts to capture.
async fn start_agent(c: &Container, systemd: &Systemd) {
    let started = systemd.start_unit("ids2-agent.service").await;
    if !matches!(started, Ok(JobResult::Done)) {
        fail_with_logs(c, &format!("ids2-agent.service: {started:?}"));
    }
    wait_capturing(c, systemd, 1).await;
}

/// Waits for suricata.service to run and its journal to say `Engine started` `starts` times
/// (once per start of the unit).
async fn wait_capturing(c: &Container, systemd: &Systemd, starts: usize) {
    // The agent starts Suricata after its first apply; nixpkgs' pre-start `suricata -T` runs
    // on the rendered config, which lists the (empty) downloaded set.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = systemd.unit_state(SURICATA_UNIT).await.unwrap();
        if state == (ActiveState::Active, SubState("running".into())) {
            break;
        }
        if state.0 == ActiveState::Failed || Instant::now() > deadline {
            fail_with_logs(c, &format!("suricata.service is not running: {state:?}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_for(
        c,
        Duration::from_secs(60),
        "Suricata's engine running",
        || (c.journal(SURICATA_UNIT).matches("Engine started").count() >= starts).then_some(()),
    )
    .await;
}

/// The capture link: eth0, one end of a veth pair in the container's own namespace. Echo
/// requests to a neighbour that never answers leave through it.
fn add_capture_link(c: &Container) {
    for command in [
        "ip link add eth0 type veth peer name peer0",
        "ip addr add 192.0.2.1/24 dev eth0",
        "ip link set peer0 up",
        "ip link set eth0 up",
        "ip neigh add 192.0.2.2 lladdr 02:00:00:00:00:02 dev eth0",
    ] {
        let out = c.net(&command.split_whitespace().collect::<Vec<_>>());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{command}: {err}");
    }
}

/// Vector's main PID once it runs and is not `not`, with its command line.
async fn vector_process(
    c: &Container,
    systemd: &Systemd,
    not: Option<u32>,
    limit: Duration,
) -> (u32, String) {
    let deadline = Instant::now() + limit;
    loop {
        let state = systemd.unit_state(VECTOR_UNIT).await.unwrap();
        if state == (ActiveState::Active, SubState("running".into())) {
            if let Some(pid) = systemd.main_pid(VECTOR_UNIT).await.unwrap() {
                let cmdline = fs::read(c.path(&format!("/proc/{pid}/cmdline")))
                    .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                    .unwrap_or_default();
                if Some(pid) != not && cmdline.contains("vector.toml") {
                    return (pid, cmdline);
                }
            }
        }
        if Instant::now() > deadline {
            fail_with_logs(c, &format!("vector.service (not PID {not:?}): {state:?}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Appends filler lines (an event type of their own) until eve.json passes `bytes`.
fn pad_eve(c: &Container, bytes: usize) {
    let line = format!(
        "{{\"event_type\":\"ids2_test_filler\",\"pad\":\"{}\"}}\n",
        "x".repeat(1000)
    );
    append_eve(c, &line.repeat(bytes / line.len() + 1));
}

/// Appends `text` (whole lines) to the container's eve.json in one write (O_APPEND, as
/// Suricata's own lines go in).
fn append_eve(c: &Container, text: &str) {
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .open(c.path(&format!("{LOGS}/eve.json")))
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// The sensor's units as the NixOS module makes them for the Pi (evaluated, not copied), with
/// Suricata started the way nixpkgs starts it plus the module's overrides and the agent's
/// user and groups as the module declares them, booted under systemd with no downloaded rule
/// set and no network. The agent starts, renders, checks and starts Suricata over D-Bus
/// (polkit) as user ids2. Suricata runs as user suricata with only CAP_NET_RAW, alerts on an
/// ids2 local rule, and answers the agent's user on its socket: the agent's size-based EVE
/// rotation (`reopen-log-files`) leaves Suricata writing the new eve.json while Vector reads
/// both files, and `ids2-agent rules update` (`reload-rules`) brings in the downloaded set
/// without a restart.
#[tokio::test]
async fn sensor_units_run_suricata_unprivileged_on_the_local_rules() {
    // The Pi's configuration (nixos/pi5.nix, nixos/site.nix) with nixos/tests/container.nix.
    let Some((sensor, c, systemd)) = boot_sensor("container", &["suricata"]).await else {
        return;
    };

    // No downloaded set (the module's stand-in, if any, holds no rule).
    let rule_set = c.path("/var/lib/ids2/rules/suricata.rules");
    let set = fs::read_to_string(&rule_set).unwrap_or_default();
    assert!(
        set.lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')),
        "{set}"
    );

    start_agent(&c, &systemd).await;

    let pid = systemd
        .main_pid(SURICATA_UNIT)
        .await
        .unwrap()
        .expect("a main PID");
    let ids = Ids::read(&c);
    let status = fs::read_to_string(c.path(&format!("/proc/{pid}/status"))).unwrap();
    assert_unprivileged(&status, &ids);
    assert_nice_and_offloads(&c, pid);
    // The socket belongs to Suricata's user and group (0660): the agent's user is a member.
    let socket = fs::metadata(c.path(SOCKET)).expect("Suricata's unix socket");
    assert_eq!(socket.uid().to_string(), ids.suricata_uid);
    assert_eq!(socket.gid().to_string(), ids.suricata_gid);
    assert_eq!(socket.mode() & 0o777, 0o660);

    // An ids2 local rule fires although no downloaded set exists.
    raise_alert(&c, None, LOCAL_RULE_SID, "an alert of the local rule").await;

    // The agent rotates eve.json at logs.eve_rotate_mb (1 MiB here) and has Suricata reopen
    // its logs over the socket, as user ids2. Filler makes the file that big now.
    pad_eve(&c, 1 << 20);
    let rotated = c.path(&format!("{LOGS}/eve.json.1"));
    wait_for(&c, Duration::from_secs(20), "the agent's rotation", || {
        rotated.exists().then_some(())
    })
    .await;
    // Suricata opens a new eve.json at its next write (stats every 8 s).
    wait_for(
        &c,
        Duration::from_secs(30),
        "Suricata writing the new eve.json",
        || (!eve_lines(&c, "stats").is_empty()).then_some(()),
    )
    .await;
    let eve = fs::metadata(c.path(&format!("{LOGS}/eve.json"))).unwrap();
    assert_eq!(eve.uid().to_string(), ids.suricata_uid);
    assert_eq!(
        eve.gid().to_string(),
        ids.ids2_gid,
        "the log tmpfs is setgid ids2"
    );
    assert_eq!(eve.mode() & 0o777, 0o640);
    assert!(
        eve_lines(&c, "ids2_test_filler").is_empty(),
        "the filler is in eve.json.1"
    );
    wait_metric(&c, "ids2_eve_rotations_total", 1.0, Duration::from_secs(10)).await;
    assert_eq!(metric(&c, "ids2_eve_rotation_failures_total"), Some(0.0));
    // Vector (user vector, group ids2, no capabilities) read both files, the filler included.
    wait_for(
        &c,
        Duration::from_secs(30),
        "Vector reading eve.json and eve.json.1",
        || (vector_eve_events(&c) >= 1000.0).then_some(()),
    )
    .await;
    let vector_pid = systemd
        .main_pid(VECTOR_UNIT)
        .await
        .unwrap()
        .expect("Vector runs");
    let status = fs::read_to_string(c.path(&format!("/proc/{vector_pid}/status"))).unwrap();
    let vector_uid = container_id(&c, "/etc/passwd", "vector").to_string();
    assert_eq!(
        status_field(&status, "Uid"),
        [vector_uid.as_str(); 4],
        "{status}"
    );
    assert!(
        status_field(&status, "Groups").contains(&ids.ids2_gid),
        "{status}"
    );
    assert_eq!(
        status_field(&status, "CapEff"),
        ["0000000000000000"],
        "{status}"
    );

    // The downloaded set arrives (a local source stands in for the download): the agent's user
    // updates the rules, and Suricata loads them on `reload-rules`, without a restart.
    let config = &sensor["etc"]["ids2/config.yaml"]["value"];
    let source = c.path(config["fleet"]["rules"]["sources"][0].as_str().unwrap());
    fs::create_dir_all(source.parent().unwrap()).unwrap();
    fs::write(
        &source,
        format!(
            "alert icmp any any -> any any (msg:\"IDS2 nspawn test: rule of the downloaded \
             set\"; itype:8; content:\"{SET_RULE_PATTERN}\"; sid:{SET_RULE_SID}; rev:1;)\n"
        ),
    )
    .unwrap();
    let update = c.exec(
        Some("ids2"),
        &[
            "ids2-agent",
            "rules",
            "update",
            "--config",
            "/etc/ids2/config.yaml",
        ],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&update.stdout),
        String::from_utf8_lossy(&update.stderr)
    );
    assert!(update.status.success(), "rules update as ids2:\n{said}");
    assert!(said.contains("Suricata reloaded"), "{said}");
    eprintln!("ids2-agent rules update, as ids2:\n{said}");
    let set = fs::read_to_string(&rule_set).unwrap();
    assert!(set.contains(&format!("sid:{SET_RULE_SID}")), "{set}");
    let now = systemd.main_pid(SURICATA_UNIT).await.unwrap();
    assert_eq!(
        now,
        Some(pid),
        "Suricata restarted; it must reload live:\n{said}"
    );
    raise_alert(
        &c,
        Some(SET_RULE_PATTERN),
        SET_RULE_SID,
        "an alert of the downloaded set",
    )
    .await;
}

/// The Redis copy under systemd, for a sensor whose Redis comes up after Vector (the scenario
/// container-redis.nix: the same sensor with `shipping.redis`, services.redis.servers.ids2 on
/// port 6380). vector.service's start script (`ids2-agent vector-args`) starts Vector without
/// the copy and says why in the unit's journal; once redis-ids2.service answers, the agent sees
/// Vector run no Redis sink and restarts it with `vector-redis.toml`, and an alert reaches the
/// Redis list as its ECS document. Redis is Debian's redis-server under the module's unit;
/// only its redis.conf comes from a stand-in ([`REDIS_PRESTART`]).
#[tokio::test]
async fn sensor_vector_takes_the_redis_copy_once_redis_answers() {
    let Some((sensor, c, systemd)) =
        boot_sensor("container-redis", &["suricata", "redis-server"]).await
    else {
        return;
    };
    let config = &sensor["etc"]["ids2/config.yaml"]["value"];
    let key = config["shipping"]["redis"]["key"]
        .as_str()
        .map_or_else(ids2_agent::config::default_redis_key, str::to_string);
    let port = sensor["redis"]["ids2"]["port"].to_string();

    start_agent(&c, &systemd).await;
    let (first, cmdline) = vector_process(&c, &systemd, None, Duration::from_secs(90)).await;
    assert!(!cmdline.contains("vector-redis.toml"), "{cmdline}");
    let journal = c.journal(VECTOR_UNIT);
    assert!(
        journal.contains(&format!(
            "Vector starts without the Redis copy (Redis at 127.0.0.1:{port}: Connection refused"
        )),
        "{journal}"
    );

    let started = systemd.start_unit(REDIS_UNIT).await;
    if !matches!(started, Ok(JobResult::Done)) {
        fail_with_logs(&c, &format!("{REDIS_UNIT}: {started:?}"));
    }
    let redis = c.exec(None, &["redis-cli", "-p", &port, "PING"]);
    assert_eq!(String::from_utf8_lossy(&redis.stdout).trim(), "PONG");
    // The agent looks every 10 s; Vector then restarts. The domain is unreachable here, and
    // Vector's stop gives up on its requests in flight after the start script's 15 s (its own
    // default, 60 s, made this restart outlast the limit).
    let (_, cmdline) = vector_process(&c, &systemd, Some(first), Duration::from_secs(60)).await;
    assert!(cmdline.contains("/current/vector-redis.toml"), "{cmdline}");
    wait_metric(&c, "ids2_redis_copy_up", 1.0, Duration::from_secs(30)).await;

    raise_alert(&c, None, LOCAL_RULE_SID, "an alert of the local rule").await;
    let sid = LOCAL_RULE_SID.to_string();
    let doc = wait_for(
        &c,
        Duration::from_secs(30),
        "the alert's ECS document in the Redis list",
        || {
            let out = c.exec(None, &["redis-cli", "-p", &port, "LRANGE", &key, "0", "-1"]);
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|d| d["rule"]["id"] == sid.as_str())
        },
    )
    .await;
    assert_eq!(doc["event"]["dataset"], "suricata.alert", "{doc}");
    assert_eq!(doc["event"]["kind"], "alert", "{doc}");
    assert_eq!(doc["observer"]["hostname"], config["sensor"]["id"], "{doc}");
    assert!(doc["source"]["ip"].is_string(), "{doc}");
}

/// The domain a container's sensor ships to: osmem-server (the OpenSearch-API emulator) on the
/// config's endpoint in the container's network namespace, with the index templates
/// `ids2-provision opensearch setup --templates-only` installs. Killed on drop; in memory, so a
/// new one starts empty.
struct Domain {
    _server: ids2_lab::osmem::Osmem,
}

impl Domain {
    fn start(
        c: &Container,
        emulator: &Path,
        provision: &Path,
        endpoint: &str,
        prefix: &str,
    ) -> Self {
        let mut in_container = Command::new("nsenter");
        in_container
            .arg(format!("--target={}", c.pid1))
            .args(["--net", "--"])
            .arg(emulator);
        let server = ids2_lab::osmem::Osmem::start_on(
            in_container,
            endpoint.strip_prefix("http://").unwrap(),
        )
        .expect("osmem-server in the container's network namespace");
        let secrets = tempfile::tempdir().unwrap();
        let password = secrets.path().join("provision-password");
        fs::write(&password, "unused: the emulator ignores authentication\n").unwrap();
        let setup = c.net(&[
            provision.to_str().unwrap(),
            "opensearch",
            "setup",
            "--templates-only",
            "--endpoint",
            endpoint,
            "--auth",
            "basic",
            "--username",
            "ids2",
            "--password-file",
            password.to_str().unwrap(),
            "--index-prefix",
            prefix,
            "--timeout-secs",
            "30",
        ]);
        assert!(
            setup.status.success(),
            "ids2-provision opensearch setup:\n{}",
            String::from_utf8_lossy(&setup.stderr)
        );
        Domain { _server: server }
    }
}

/// The `container-domain` sensor, booted, with what its shipping tests need: the emulator and
/// `ids2-provision` to stand up a domain at the endpoint its config names, and the sensor's id
/// and index prefix from the evaluated config.
struct DomainSensor {
    c: Container,
    systemd: Systemd,
    emulator: PathBuf,
    provision: PathBuf,
    sensor_id: String,
    endpoint: String,
    prefix: String,
}

impl DomainSensor {
    /// Booted, a domain up, the agent started and an alert of the local rule raised; `None`
    /// after saying what is missing.
    async fn start() -> Option<(Self, Domain)> {
        let emulator = support::or_skip(ids2_lab::osmem::locate())?;
        let provision = workspace_binary("ids2-provision", "IDS2_PROVISION_BIN");
        let (sensor, c, systemd) = boot_sensor("container-domain", &["suricata"]).await?;
        let config = &sensor["etc"]["ids2/config.yaml"]["value"];
        let sensor = DomainSensor {
            c,
            systemd,
            emulator,
            provision,
            sensor_id: config["sensor"]["id"].as_str().unwrap().to_string(),
            endpoint: config["opensearch"]["endpoint"]
                .as_str()
                .unwrap()
                .to_string(),
            prefix: config["opensearch"]["index_prefix"]
                .as_str()
                .map_or_else(ids2_agent::config::default_index_prefix, str::to_string),
        };
        let domain = sensor.domain();
        start_agent(&sensor.c, &sensor.systemd).await;
        raise_alert(
            &sensor.c,
            None,
            LOCAL_RULE_SID,
            "an alert of the local rule",
        )
        .await;
        Some((sensor, domain))
    }

    /// `<endpoint>/<prefix>-<pattern>`: an index pattern of the domain.
    fn url(&self, pattern: &str) -> String {
        format!("{}/{}-{pattern}", self.endpoint, self.prefix)
    }

    /// A new (empty) domain: the emulator in the container's network namespace, holding the
    /// index templates.
    fn domain(&self) -> Domain {
        Domain::start(
            &self.c,
            &self.emulator,
            &self.provision,
            &self.endpoint,
            &self.prefix,
        )
    }
}

/// Hits of a query on `<endpoint>/<prefix>-<index>` (up to 100).
fn search(c: &Container, url: &str, query: serde_json::Value) -> Vec<serde_json::Value> {
    hits(c, url, 100, serde_json::json!({ "query": query }))
}

/// The first `size` hits of a `_search` with `body` on `url` (an index pattern) after a
/// refresh, asked from inside the container's network namespace (none when the domain does not
/// answer).
fn hits(c: &Container, url: &str, size: usize, body: serde_json::Value) -> Vec<serde_json::Value> {
    let _ = c.net(&["curl", "-sf", "-XPOST", &format!("{url}/_refresh")]);
    let out = c.net(&[
        "curl",
        "-sf",
        "-XPOST",
        &format!("{url}/_search?size={size}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        &body.to_string(),
    ]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["hits"]["hits"].as_array().cloned())
        .unwrap_or_default()
}

/// Pings out until the local rule has more than `before` alerts (it alerts once per source in
/// 10 s, its threshold), for up to 40 s; its alert lines then.
async fn alert_again(c: &Container, before: usize, what: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        ping_out(c, None);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let lines = alert_lines(c, LOCAL_RULE_SID);
        if lines.len() > before {
            return lines;
        }
        if Instant::now() > deadline {
            fail_with_logs(c, &format!("{what}: none within 40 s"));
        }
    }
}

/// The raw EVE lines of alerts of rule `sid` in the container's eve.json.
fn alert_lines(c: &Container, sid: u64) -> Vec<String> {
    fs::read_to_string(c.path(&format!("{LOGS}/eve.json")))
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["event_type"] == "alert" && v["alert"]["signature_id"] == sid)
        })
        .map(str::to_string)
        .collect()
}

/// The sensor ships under systemd: the module's hardened vector.service, started by the agent
/// with the SigV4 credentials it loads (stand-in keys), sends an alert and the heartbeats to the
/// domain its config names (the scenario container-domain.nix), here osmem-server, the
/// OpenSearch-API emulator, in the container's network namespace (it ignores SigV4), holding
/// the templates `ids2-provision opensearch setup` installs. Then the domain goes away, an alert
/// raised meanwhile is read by Vector, Vector is SIGKILLed and systemd restarts it, and once a
/// domain answers again that alert arrives: the disk buffer and the checkpoints live where the
/// unit lets Vector write and keep them.
#[tokio::test]
async fn sensor_ships_alerts_and_heartbeats_to_the_domain() {
    let Some((sensor, domain)) = DomainSensor::start().await else {
        return;
    };
    let DomainSensor {
        c,
        systemd,
        sensor_id,
        ..
    } = &sensor;
    let alerts = sensor.url("suricata.alert-*");
    let first = alert_lines(c, LOCAL_RULE_SID);
    let id = ids2_lab::ship::document_id(sensor_id, &first[0]);
    let hit = wait_for(
        c,
        Duration::from_secs(60),
        "the alert's document in the domain",
        || {
            search(
                c,
                &alerts,
                serde_json::json!({ "ids": { "values": [&id] } }),
            )
            .into_iter()
            .next()
        },
    )
    .await;
    let doc = &hit["_source"];
    assert_eq!(doc["event"]["kind"], "alert", "{hit}");
    assert_eq!(doc["rule"]["id"], LOCAL_RULE_SID.to_string(), "{hit}");
    assert_eq!(doc["observer"]["hostname"], sensor_id.as_str(), "{hit}");
    let heartbeat = wait_for(
        c,
        Duration::from_secs(60),
        "a heartbeat in the domain",
        || {
            search(
                c,
                &sensor.url("heartbeat-*"),
                serde_json::json!({ "term": { "observer.hostname": sensor_id } }),
            )
            .into_iter()
            .next()
        },
    )
    .await;
    assert!(
        heartbeat["_source"]["@timestamp"].is_string(),
        "{heartbeat}"
    );
    let journal = c.journal(VECTOR_UNIT);
    assert!(!journal.contains("Response contained errors"), "{journal}");

    // The domain goes away. An alert raised now is read by Vector (every EVE line so far),
    // then Vector's main process is SIGKILLed; systemd starts it again (Restart=always).
    drop(domain);
    let lines = alert_again(c, first.len(), "a second alert").await;
    let written = fs::read_to_string(c.path(&format!("{LOGS}/eve.json")))
        .unwrap()
        .lines()
        .count() as f64;
    wait_for(
        c,
        Duration::from_secs(30),
        "Vector reading the second alert",
        || (vector_eve_events(c) >= written).then_some(()),
    )
    .await;
    let (killed, _) = vector_process(c, systemd, None, Duration::from_secs(5)).await;
    let out = c.exec(
        None,
        &[
            "systemctl",
            "kill",
            "--kill-whom=main",
            "--signal=KILL",
            VECTOR_UNIT,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    vector_process(c, systemd, Some(killed), Duration::from_secs(60)).await;

    // A domain answers again (empty: the emulator keeps nothing); the alerts raised while it was
    // away arrive under their deterministic ids.
    let _domain = sensor.domain();
    let ids: Vec<String> = lines[first.len()..]
        .iter()
        .map(|l| ids2_lab::ship::document_id(sensor_id, l))
        .collect();
    wait_for(
        c,
        Duration::from_secs(150),
        "the alerts raised while the domain was away",
        || {
            let found = search(c, &alerts, serde_json::json!({ "ids": { "values": &ids } }));
            (found.len() == ids.len()).then_some(())
        },
    )
    .await;
}

/// Appends EVE lines `ids` (distinct by their flow id), ~1 KB each, of an event type of their
/// own, stamped `timestamp`, in one write.
fn stream_eve(c: &Container, timestamp: &str, ids: std::ops::Range<usize>) {
    let pad = "x".repeat(800);
    let lines: String = ids
        .map(|i| {
            format!(
                "{{\"timestamp\":\"{timestamp}\",\"flow_id\":{i},\"event_type\":\"ids2_test_stream\",\
                 \"src_ip\":\"192.0.2.1\",\"dest_ip\":\"192.0.2.2\",\"proto\":\"ICMP\",\"pad\":\"{pad}\"}}\n"
            )
        })
        .collect();
    append_eve(c, &lines);
}

/// Every line of the container's eve.json and the file the agent rotates it to, distinct.
fn eve_file_lines(c: &Container) -> BTreeSet<String> {
    [format!("{LOGS}/eve.json"), format!("{LOGS}/eve.json.1")]
        .iter()
        .flat_map(|f| {
            fs::read_to_string(c.path(f))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The ids of every document in `<url>` (an index pattern), asked from inside the container.
fn document_ids(c: &Container, url: &str) -> BTreeSet<String> {
    let body = serde_json::json!({ "_source": false, "query": { "match_all": {} } });
    let hits = hits(c, url, 10_000, body);
    assert!(hits.len() < 10_000, "more documents than one page holds");
    hits.iter()
        .filter_map(|h| h["_id"].as_str().map(str::to_string))
        .collect()
}

/// 600 EVE lines (flow ids `from`..), then `systemctl restart ids2-agent.service` with echo
/// requests going out meanwhile; returns once the new agent's Suricata captures (its
/// `starts`-th start), Vector runs as a new process, and the local rule has alerted again.
async fn restart_agent_mid_stream(c: &Container, systemd: &Systemd, from: usize, starts: usize) {
    let alerts = alert_lines(c, LOCAL_RULE_SID);
    let stamp: serde_json::Value = serde_json::from_str(&alerts[0]).unwrap();
    let agent = systemd.main_pid("ids2-agent.service").await.unwrap();
    let (vector, _) = vector_process(c, systemd, None, Duration::from_secs(5)).await;
    stream_eve(c, stamp["timestamp"].as_str().unwrap(), from..from + 600);
    let restarted = std::thread::scope(|scope| {
        // Traffic while the agent stops and starts the pipeline: 8 rounds of 3 echo requests.
        scope.spawn(|| (0..8).for_each(|_| ping_out(c, None)));
        c.exec(None, &["systemctl", "restart", "ids2-agent.service"])
    });
    assert!(
        restarted.status.success(),
        "{}",
        String::from_utf8_lossy(&restarted.stderr)
    );
    assert_ne!(systemd.main_pid("ids2-agent.service").await.unwrap(), agent);
    wait_capturing(c, systemd, starts).await;
    vector_process(c, systemd, Some(vector), Duration::from_secs(30)).await;
    alert_again(c, alerts.len(), "an alert after the restart").await;
}

/// Waits until `<url>` (an index pattern) holds a document for each of `lines`, under the id of
/// the line, and checks that it holds none of a line eve.json does not hold (a line read in
/// part, or two read as one, would make one; a line read twice keeps its id, so stays one
/// document). The number of documents.
async fn wait_shipped(
    c: &Container,
    url: &str,
    sensor_id: &str,
    lines: &BTreeSet<String>,
) -> usize {
    let id = |line: &String| ids2_lab::ship::document_id(sensor_id, line);
    let want: BTreeSet<String> = lines.iter().map(id).collect();
    let got = wait_for(
        c,
        Duration::from_secs(90),
        "a document for every EVE line written",
        || {
            let got = document_ids(c, url);
            want.is_subset(&got).then_some(got)
        },
    )
    .await;
    // Read after the documents: a line written since is in it, so every document has its line.
    let written: BTreeSet<String> = eve_file_lines(c).iter().map(id).collect();
    let strays: Vec<&String> = got.difference(&written).collect();
    assert!(
        strays.is_empty(),
        "documents of no EVE line: {strays:?}\n{}",
        c.journal(VECTOR_UNIT)
    );
    got.len()
}

/// The sensor upgraded in place: `nixos-rebuild switch` restarts ids2-agent.service when its
/// package changes, and the agent stops Suricata and Vector and starts them again. Twice, each
/// time just after 600 EVE lines land and with echo requests going out, an alert raised before
/// and after: with the domain (the emulator) up, Vector drains what it read while it stops; with
/// the domain away, Vector stops at its 15 s limit with the lines in its disk buffer or behind
/// its checkpoint, and the next Vector ships them once a domain answers. Each time every
/// distinct line of eve.json is one document under the id of its line, and none other.
#[tokio::test]
async fn sensor_agent_restart_ships_every_eve_line_once() {
    let Some((sensor, domain)) = DomainSensor::start().await else {
        return;
    };
    let DomainSensor {
        c,
        systemd,
        sensor_id,
        ..
    } = &sensor;
    let events = sensor.url("suricata.*");
    restart_agent_mid_stream(c, systemd, 0, 2).await;
    let first = eve_file_lines(c);
    let docs = wait_shipped(c, &events, sensor_id, &first).await;
    eprintln!(
        "restart, domain up: {} distinct EVE lines -> {docs} documents",
        first.len()
    );

    drop(domain);
    // A new domain is empty (the emulator keeps nothing): what was shipped before is not sent
    // again, so the lines to find are those written since the domain went away (a line written
    // after `first` may have reached the old domain before it did).
    let before = eve_file_lines(c);
    restart_agent_mid_stream(c, systemd, 600, 3).await;
    let _domain = sensor.domain();
    let second: BTreeSet<String> = eve_file_lines(c).difference(&before).cloned().collect();
    let docs = wait_shipped(c, &events, sensor_id, &second).await;
    eprintln!(
        "restart, domain away: {} distinct EVE lines -> {docs} documents",
        second.len()
    );
}

/// The agent rotates eve.json while the domain is away: ~1.1 MB of EVE lines land at once
/// (past logs.eve_rotate_mb, 1 MiB here), the agent renames the file to eve.json.1 and has
/// Suricata reopen it, and an alert is raised in the new file, all with no domain to ship to.
/// Vector reads both files into its disk buffer meanwhile; once a domain answers, every
/// distinct line written since it went away is one document under the id of its line, and
/// none other. One rotation exactly: a second would overwrite eve.json.1.
#[tokio::test]
async fn sensor_rotation_while_the_domain_is_away_ships_every_line_once() {
    let Some((sensor, domain)) = DomainSensor::start().await else {
        return;
    };
    let DomainSensor { c, sensor_id, .. } = &sensor;
    let events = sensor.url("suricata.*");
    wait_shipped(c, &events, sensor_id, &eve_file_lines(c)).await;

    drop(domain);
    // Taken once the domain is gone: every line after it was written with no domain up.
    let before = eve_file_lines(c);
    let alerts = alert_lines(c, LOCAL_RULE_SID);
    let stamp: serde_json::Value = serde_json::from_str(&alerts[0]).unwrap();
    let rotations = metric(c, "ids2_eve_rotations_total").unwrap_or(0.0);
    stream_eve(c, stamp["timestamp"].as_str().unwrap(), 0..1200);
    wait_metric(
        c,
        "ids2_eve_rotations_total",
        rotations + 1.0,
        Duration::from_secs(30),
    )
    .await;
    // Suricata writes the new eve.json: the rotated file took every alert so far with it.
    alert_again(c, 0, "an alert in the new eve.json").await;
    assert_eq!(metric(c, "ids2_eve_rotation_failures_total"), Some(0.0));

    let _domain = sensor.domain();
    let since: BTreeSet<String> = eve_file_lines(c).difference(&before).cloned().collect();
    let docs = wait_shipped(c, &events, sensor_id, &since).await;
    assert_eq!(
        metric(c, "ids2_eve_rotations_total"),
        Some(rotations + 1.0),
        "one rotation, so eve.json.1 still holds every line of the old file"
    );
    eprintln!(
        "rotation, domain away: {} distinct EVE lines -> {docs} documents",
        since.len()
    );
}
