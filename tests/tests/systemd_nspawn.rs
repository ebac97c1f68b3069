//! The `systemd` module and the agent's systemd pipeline backend (units `suricata.service` and
//! `vector.service`, here stand-ins that sleep) against a real systemd: each test boots the cached Debian bookworm
//! root (`tests/nspawn/make-root.sh`) with `systemd-nspawn -b` on a volatile overlay, private
//! network, and talks to the container's system bus through
//! `/proc/<pid>/root/run/dbus/system_bus_socket`. Nothing on the host is mounted or changed;
//! the container is killed and reaped when the test ends, pass or fail.
//!
//! Needs root, `systemd-nspawn` (package systemd-container) and the root file system
//! (`IDS2_NSPAWN_ROOT`, default /var/cache/ids2-tests/bookworm-root); skips with a message
//! when one is missing. `.ci/install-deps` provides all three.

use std::fs;
use std::os::unix::fs::PermissionsExt;
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

const DEFAULT_ROOT: &str = "/var/cache/ids2-tests/bookworm-root";
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
    /// Boots a container, or returns `None` (after saying why) when this machine cannot.
    fn boot() -> Option<Container> {
        let root = std::env::var_os("IDS2_NSPAWN_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
        if let Some(why) = missing_requirement(&root) {
            eprintln!("skipped: {why}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let units = dir.path().join("units");
        fs::create_dir(&units).unwrap();
        fs::write(units.join("ids2-test.service"), TEST_SERVICE).unwrap();
        fs::write(units.join("ids2-fail.service"), FAIL_SERVICE).unwrap();
        for unit in [SURICATA_UNIT, VECTOR_UNIT] {
            fs::write(units.join(unit), PIPELINE_STAND_IN).unwrap();
        }
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
            .arg(format!(
                "--bind-ro={}:/usr/local/lib/systemd/system",
                units.display()
            ))
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
