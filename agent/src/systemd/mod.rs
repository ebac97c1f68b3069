//! Host control through systemd over D-Bus (zbus): start/stop/restart/reload units and wait
//! for their jobs, read unit state, mount the log tmpfs as a transient mount unit and verify
//! it with the kernel, and set runtime resource limits for the resource controller.
//!
//! The seams are the bus address (`connect_at`) and the `/proc/<pid>` directory of a process
//! in the mount namespace systemd manages (`with_proc_dir`), so tests drive a real systemd
//! booted in a container.

mod error;
pub mod mount;
pub mod proxy;

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedObjectPath, Variant};

pub use error::SystemdError;
use proxy::{JobRemovedStream, ManagerProxy, ServiceProxy, UnitProxy};

use crate::config::Settings;

/// How long to wait for a job by default. systemd's own start/stop timeouts (90 s by default)
/// end a stuck job first; this bound only guards against a systemd that never answers.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// The permission mode of the log tmpfs (owner rwx, group rx): Suricata writes, Vector reads.
pub const LOG_TMPFS_MODE: u32 = 0o750;

/// A connection to one systemd instance.
pub struct Systemd {
    conn: Connection,
    manager: ManagerProxy<'static>,
    proc_dir: PathBuf,
    job_timeout: Duration,
}

/// How a job ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobResult {
    /// The job ran to completion.
    Done,
    /// systemd skipped the job because it did not apply to the unit's current state.
    Skipped,
}

/// `ActiveState` of a unit (org.freedesktop.systemd1(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActiveState {
    /// Started and running.
    Active,
    /// Active and reloading its configuration.
    Reloading,
    /// Stopped.
    Inactive,
    /// Stopped after a failure.
    Failed,
    /// Starting.
    Activating,
    /// Stopping.
    Deactivating,
    /// A state this code does not know (newer systemd), kept verbatim.
    Other(String),
}

impl ActiveState {
    fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "reloading" => Self::Reloading,
            "inactive" => Self::Inactive,
            "failed" => Self::Failed,
            "activating" => Self::Activating,
            "deactivating" => Self::Deactivating,
            other => Self::Other(other.to_string()),
        }
    }

    /// The name systemd uses.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "active",
            Self::Reloading => "reloading",
            Self::Inactive => "inactive",
            Self::Failed => "failed",
            Self::Activating => "activating",
            Self::Deactivating => "deactivating",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for ActiveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `SubState` of a unit: type-specific ("running", "exited", "mounted", "dead", ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubState(pub String);

impl fmt::Display for SubState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runtime resource limits of a unit as systemd reports them; `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    /// `CPUQuotaPerSecUSec`: CPU time per second of wall time, in µs (1 000 000 = one core).
    pub cpu_quota_per_sec_usec: Option<u64>,
    /// `MemoryHigh`: the memory throttling threshold in bytes.
    pub memory_high_bytes: Option<u64>,
}

/// What `unit status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitStatus {
    /// The unit name.
    pub name: String,
    /// `LoadState`.
    pub load_state: String,
    /// `ActiveState`.
    pub active: ActiveState,
    /// `SubState`.
    pub sub: SubState,
    /// The main PID of a service, when it has one.
    pub main_pid: Option<u32>,
    /// The unit type's `Result` ("success", "exit-code", ...), when the type has one.
    pub result: Option<String>,
    /// Resource limits, for unit types that have resource control.
    pub limits: Option<ResourceLimits>,
}

impl fmt::Display for UnitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}, {} ({})",
            self.name, self.load_state, self.active, self.sub
        )?;
        if let Some(pid) = self.main_pid {
            write!(f, ", main pid {pid}")?;
        }
        if let Some(result) = &self.result {
            write!(f, ", result {result}")?;
        }
        if let Some(limits) = self.limits {
            match limits.cpu_quota_per_sec_usec {
                Some(usec) => write!(f, ", cpu quota {}%", usec / 10_000)?,
                None => write!(f, ", cpu quota none")?,
            }
            match limits.memory_high_bytes {
                Some(bytes) => write!(f, ", memory high {bytes} bytes")?,
                None => write!(f, ", memory high none")?,
            }
        }
        Ok(())
    }
}

/// What `ensure_tmpfs` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TmpfsOutcome {
    /// The tmpfs was mounted by starting this transient mount unit.
    Mounted {
        /// The mount unit.
        unit: String,
    },
    /// The wanted tmpfs was already there; nothing was changed.
    AlreadyMounted {
        /// The mount unit name for the path.
        unit: String,
    },
}

#[derive(Clone, Copy)]
enum JobKind {
    Start,
    Stop,
    Restart,
    Reload,
}

impl JobKind {
    fn verb(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::Reload => "reload",
        }
    }
}

/// The unit-type interface holding `Result` and the resource-control properties.
fn type_interface(unit: &str) -> Option<&'static str> {
    match unit.rsplit_once('.')?.1 {
        "service" => Some("org.freedesktop.systemd1.Service"),
        "socket" => Some("org.freedesktop.systemd1.Socket"),
        "mount" => Some("org.freedesktop.systemd1.Mount"),
        "swap" => Some("org.freedesktop.systemd1.Swap"),
        "slice" => Some("org.freedesktop.systemd1.Slice"),
        "scope" => Some("org.freedesktop.systemd1.Scope"),
        _ => None,
    }
}

/// systemd reports "no limit" as the maximum u64 ("infinity").
fn limit(value: u64) -> Option<u64> {
    (value != u64::MAX).then_some(value)
}

impl Systemd {
    /// Connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` or the standard socket).
    pub async fn connect() -> Result<Self, SystemdError> {
        let conn = zbus::connection::Builder::system()
            .build()
            .await
            .map_err(|dbus| SystemdError::Connect {
                address: "the system bus".into(),
                dbus,
            })?;
        Self::with_connection(conn, "the system bus").await
    }

    /// Connects to the bus at a D-Bus address, e.g. `unix:path=/run/dbus/system_bus_socket`.
    pub async fn connect_at(address: &str) -> Result<Self, SystemdError> {
        let conn = zbus::connection::Builder::address(address)
            .build()
            .await
            .map_err(|dbus| SystemdError::Connect {
                address: address.into(),
                dbus,
            })?;
        Self::with_connection(conn, address).await
    }

    async fn with_connection(conn: Connection, address: &str) -> Result<Self, SystemdError> {
        let manager = ManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|dbus| SystemdError::Connect {
                address: address.into(),
                dbus,
            })?;
        Ok(Self {
            conn,
            manager,
            proc_dir: PathBuf::from("/proc/self"),
            job_timeout: DEFAULT_JOB_TIMEOUT,
        })
    }

    /// Verifies mounts through `<proc_dir>/mountinfo` and `<proc_dir>/root` instead of this
    /// process's own: pass `/proc/<pid>` of a process in the mount namespace systemd manages
    /// when that is not ours (systemd in a container).
    pub fn with_proc_dir(mut self, proc_dir: PathBuf) -> Self {
        self.proc_dir = proc_dir;
        self
    }

    /// Bounds how long start/stop/restart/reload wait for their job.
    pub fn with_job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = timeout;
        self
    }

    /// `SystemState` of the manager: "starting", "running", "degraded", ...
    pub async fn system_state(&self) -> Result<String, SystemdError> {
        self.manager
            .system_state()
            .await
            .map_err(|dbus| SystemdError::Call {
                unit: "the service manager".into(),
                action: "read the state of",
                dbus,
            })
    }

    /// Starts a unit and waits for the job to finish.
    pub async fn start_unit(&self, name: &str) -> Result<JobResult, SystemdError> {
        self.run_job(JobKind::Start, name).await
    }

    /// Stops a unit and waits for the job to finish.
    pub async fn stop_unit(&self, name: &str) -> Result<JobResult, SystemdError> {
        self.run_job(JobKind::Stop, name).await
    }

    /// Restarts a unit and waits for the job to finish.
    pub async fn restart_unit(&self, name: &str) -> Result<JobResult, SystemdError> {
        self.run_job(JobKind::Restart, name).await
    }

    /// Reloads a unit's configuration (its `ExecReload=`) and waits for the job to finish.
    pub async fn reload_unit(&self, name: &str) -> Result<JobResult, SystemdError> {
        self.run_job(JobKind::Reload, name).await
    }

    async fn run_job(&self, kind: JobKind, name: &str) -> Result<JobResult, SystemdError> {
        let verb = kind.verb();
        let call_err = |dbus| SystemdError::Call {
            unit: name.into(),
            action: verb,
            dbus,
        };
        // Subscribe before queueing the job: a quick job can finish before the call returns.
        let mut removed = self.manager.receive_job_removed().await.map_err(call_err)?;
        let job = match kind {
            JobKind::Start => self.manager.start_unit(name, "replace").await,
            JobKind::Stop => self.manager.stop_unit(name, "replace").await,
            JobKind::Restart => self.manager.restart_unit(name, "replace").await,
            JobKind::Reload => self.manager.reload_unit(name, "replace").await,
        }
        .map_err(call_err)?;
        self.wait_job(&mut removed, &job, name, verb).await
    }

    async fn wait_job(
        &self,
        removed: &mut JobRemovedStream,
        job: &OwnedObjectPath,
        unit: &str,
        action: &'static str,
    ) -> Result<JobResult, SystemdError> {
        let finished = async {
            while let Some(signal) = removed.next().await {
                // A signal that does not parse is not ours to judge; ours will still come.
                if let Ok(args) = signal.args() {
                    if args.job == *job {
                        return Some(args.result);
                    }
                }
            }
            None
        };
        let result = tokio::time::timeout(self.job_timeout, finished)
            .await
            .map_err(|_| SystemdError::JobTimeout {
                unit: unit.into(),
                action,
                waited: self.job_timeout,
            })?
            .ok_or_else(|| SystemdError::BusClosed {
                unit: unit.into(),
                action,
            })?;
        match result.as_str() {
            "done" => Ok(JobResult::Done),
            "skipped" => Ok(JobResult::Skipped),
            _ => Err(SystemdError::JobFailed {
                unit: unit.into(),
                action,
                unit_result: self.unit_result(unit).await,
                result,
            }),
        }
    }

    /// The unit's `Result` property, best effort: it only enriches an error already reported.
    async fn unit_result(&self, unit: &str) -> Option<String> {
        let proxy = self.type_proxy(unit, "read the result of").await.ok()??;
        proxy.get_property::<String>("Result").await.ok()
    }

    async fn unit_path(
        &self,
        name: &str,
        action: &'static str,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.manager
            .load_unit(name)
            .await
            .map_err(|dbus| SystemdError::Call {
                unit: name.into(),
                action,
                dbus,
            })
    }

    async fn unit_proxy(
        &self,
        name: &str,
        action: &'static str,
    ) -> Result<UnitProxy<'static>, SystemdError> {
        let path = self.unit_path(name, action).await?;
        UnitProxy::builder(&self.conn)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|dbus| SystemdError::Call {
                unit: name.into(),
                action,
                dbus,
            })
    }

    /// A proxy on the unit's type interface (e.g. `...systemd1.Service`), or `None` for unit
    /// types without `Result` and resource-control properties.
    async fn type_proxy(
        &self,
        name: &str,
        action: &'static str,
    ) -> Result<Option<zbus::Proxy<'static>>, SystemdError> {
        let Some(interface) = type_interface(name) else {
            return Ok(None);
        };
        let path = self.unit_path(name, action).await?;
        zbus::proxy::Builder::new(&self.conn)
            .destination("org.freedesktop.systemd1")
            .path(path)
            .interface(interface)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map(Some)
            .map_err(|dbus| SystemdError::Call {
                unit: name.into(),
                action,
                dbus,
            })
    }

    /// `ActiveState` and `SubState` of a unit (loading it first if systemd has not).
    pub async fn unit_state(&self, name: &str) -> Result<(ActiveState, SubState), SystemdError> {
        const ACTION: &str = "read the state of";
        let unit = self.unit_proxy(name, ACTION).await?;
        let call_err = |dbus| SystemdError::Call {
            unit: name.into(),
            action: ACTION,
            dbus,
        };
        let active = unit.active_state().await.map_err(call_err)?;
        let sub = unit.sub_state().await.map_err(call_err)?;
        Ok((ActiveState::parse(&active), SubState(sub)))
    }

    /// Everything `ids2-agent unit status` shows about a unit.
    pub async fn unit_status(&self, name: &str) -> Result<UnitStatus, SystemdError> {
        const ACTION: &str = "read the status of";
        let call_err = |dbus| SystemdError::Call {
            unit: name.into(),
            action: ACTION,
            dbus,
        };
        let unit = self.unit_proxy(name, ACTION).await?;
        let load_state = unit.load_state().await.map_err(call_err)?;
        let (active, sub) = self.unit_state(name).await?;
        let loaded = load_state == "loaded";
        let main_pid = if loaded && name.ends_with(".service") {
            self.main_pid(name).await?
        } else {
            None
        };
        let (result, limits) = if loaded {
            (
                self.unit_result(name).await,
                self.resource_limits(name).await.ok(),
            )
        } else {
            (None, None)
        };
        Ok(UnitStatus {
            name: name.into(),
            load_state,
            active,
            sub,
            main_pid,
            result,
            limits,
        })
    }

    /// The `MainPID` of a running service, `None` when it has no main process.
    pub async fn main_pid(&self, name: &str) -> Result<Option<u32>, SystemdError> {
        const ACTION: &str = "read the main PID of";
        let path = self.unit_path(name, ACTION).await?;
        let call_err = |dbus| SystemdError::Call {
            unit: name.into(),
            action: ACTION,
            dbus,
        };
        let service = ServiceProxy::builder(&self.conn)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(call_err)?;
        Ok(Some(service.main_pid().await.map_err(call_err)?).filter(|pid| *pid != 0))
    }

    /// Sets `CPUQuota` (as `CPUQuotaPerSecUSec`) and/or `MemoryHigh` on a unit; `None` leaves
    /// that property as it is. With `runtime` the change lives under /run and is gone after a
    /// reboot, which is what a throttle wants.
    pub async fn set_unit_properties(
        &self,
        name: &str,
        cpu_quota_percent: Option<u32>,
        memory_high_bytes: Option<u64>,
        runtime: bool,
    ) -> Result<(), SystemdError> {
        if cpu_quota_percent == Some(0) {
            return Err(SystemdError::InvalidQuota { unit: name.into() });
        }
        let mut props: Vec<proxy::Property<'_>> = Vec::new();
        if let Some(percent) = cpu_quota_percent {
            props.push((
                "CPUQuotaPerSecUSec",
                Variant::from(u64::from(percent) * 10_000),
            ));
        }
        if let Some(bytes) = memory_high_bytes {
            props.push(("MemoryHigh", Variant::from(bytes)));
        }
        self.apply_properties(name, props, runtime).await
    }

    /// Removes the CPU quota and the `MemoryHigh` threshold from a unit.
    pub async fn clear_resource_limits(
        &self,
        name: &str,
        runtime: bool,
    ) -> Result<(), SystemdError> {
        let props = vec![
            ("CPUQuotaPerSecUSec", Variant::from(u64::MAX)),
            ("MemoryHigh", Variant::from(u64::MAX)),
        ];
        self.apply_properties(name, props, runtime).await
    }

    async fn apply_properties(
        &self,
        name: &str,
        props: Vec<proxy::Property<'_>>,
        runtime: bool,
    ) -> Result<(), SystemdError> {
        if type_interface(name).is_none() {
            return Err(SystemdError::NoResourceControl { unit: name.into() });
        }
        if props.is_empty() {
            return Ok(());
        }
        self.manager
            .set_unit_properties(name, runtime, &props)
            .await
            .map_err(|dbus| SystemdError::Call {
                unit: name.into(),
                action: "set resource properties on",
                dbus,
            })
    }

    /// The CPU quota and `MemoryHigh` systemd currently applies to a unit.
    pub async fn resource_limits(&self, name: &str) -> Result<ResourceLimits, SystemdError> {
        const ACTION: &str = "read resource properties of";
        let proxy = self
            .type_proxy(name, ACTION)
            .await?
            .ok_or_else(|| SystemdError::NoResourceControl { unit: name.into() })?;
        let call_err = |dbus| SystemdError::Call {
            unit: name.into(),
            action: ACTION,
            dbus,
        };
        let cpu: u64 = proxy
            .get_property("CPUQuotaPerSecUSec")
            .await
            .map_err(call_err)?;
        let memory: u64 = proxy.get_property("MemoryHigh").await.map_err(call_err)?;
        Ok(ResourceLimits {
            cpu_quota_per_sec_usec: limit(cpu),
            memory_high_bytes: limit(memory),
        })
    }

    /// Makes sure a tmpfs of `size_mb` MiB with permission `mode` is mounted at `path`
    /// (nosuid, nodev, noexec), by starting a transient mount unit, then checks the kernel's
    /// mount table. Does nothing when the wanted tmpfs is already there; refuses, changing
    /// nothing, when something else is mounted at `path`.
    pub async fn ensure_tmpfs(
        &self,
        path: &str,
        size_mb: u32,
        mode: u32,
    ) -> Result<TmpfsOutcome, SystemdError> {
        let unit = mount::mount_unit_name(path)?;
        if size_mb == 0 {
            return Err(SystemdError::InvalidSize { size_mb });
        }
        if mode > 0o7777 {
            return Err(SystemdError::InvalidMode { mode });
        }
        if let Some(found) = self.tmpfs_mismatch(path, size_mb, mode)? {
            return match found {
                None => Ok(TmpfsOutcome::AlreadyMounted { unit }),
                Some(found) => Err(SystemdError::MountMismatch {
                    path: path.into(),
                    unit,
                    found,
                }),
            };
        }

        let options = mount::tmpfs_options(size_mb, mode);
        let props: Vec<proxy::Property<'_>> = vec![
            ("Description", Variant::from("ids2 log tmpfs")),
            ("What", Variant::from("tmpfs")),
            ("Where", Variant::from(path)),
            ("Type", Variant::from("tmpfs")),
            ("Options", Variant::from(options.as_str())),
        ];
        const ACTION: &str = "mount";
        let call_err = |dbus| SystemdError::Call {
            unit: unit.clone(),
            action: ACTION,
            dbus,
        };
        let mut removed = self.manager.receive_job_removed().await.map_err(call_err)?;
        let job = self
            .manager
            .start_transient_unit(&unit, "fail", &props, &[])
            .await
            .map_err(call_err)?;
        self.wait_job(&mut removed, &job, &unit, ACTION).await?;

        match self.tmpfs_mismatch(path, size_mb, mode)? {
            Some(None) => Ok(TmpfsOutcome::Mounted { unit }),
            Some(Some(found)) => Err(SystemdError::MountNotVerified {
                path: path.into(),
                unit,
                found,
            }),
            None => Err(SystemdError::MountNotVerified {
                path: path.into(),
                unit,
                found: "nothing is mounted there".into(),
            }),
        }
    }

    /// `None` when nothing is mounted at `path`; `Some(None)` when the wanted tmpfs is;
    /// `Some(Some(differences))` otherwise.
    fn tmpfs_mismatch(
        &self,
        path: &str,
        size_mb: u32,
        mode: u32,
    ) -> Result<Option<Option<String>>, SystemdError> {
        let mountinfo_path = self.proc_dir.join("mountinfo");
        let read_err = |path: PathBuf| move |source| SystemdError::ReadMounts { path, source };
        let mountinfo =
            std::fs::read_to_string(&mountinfo_path).map_err(read_err(mountinfo_path.clone()))?;
        let Some(entry) = mount::find_mount(&mountinfo, path) else {
            return Ok(None);
        };
        // `<proc_dir>/root` resolves paths in that process's mount namespace.
        let dir = self.proc_dir.join("root").join(&path[1..]);
        let root_mode = std::fs::metadata(&dir)
            .map_err(read_err(dir.clone()))?
            .permissions()
            .mode();
        Ok(Some(mount::tmpfs_mismatch(
            &entry, size_mb, mode, root_mode,
        )))
    }
}

impl fmt::Display for TmpfsOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mounted { unit } => write!(f, "{unit}: mounted"),
            Self::AlreadyMounted { unit } => {
                write!(f, "{unit}: already mounted as wanted, nothing changed")
            }
        }
    }
}

/// Connects to `bus` (a D-Bus address) or the system bus.
async fn connect_to(bus: Option<&str>) -> Result<Systemd, SystemdError> {
    match bus {
        Some(address) => Systemd::connect_at(address).await,
        None => Systemd::connect().await,
    }
}

/// `ids2-agent ramdisk ensure`: the log tmpfs from `logs.path` / `logs.size_mb`, mode 0750.
/// `target_pid` names a process in systemd's mount namespace when that is not ours.
pub async fn ensure_log_tmpfs(
    settings: &Settings,
    bus: Option<&str>,
    target_pid: Option<u32>,
) -> Result<TmpfsOutcome, SystemdError> {
    let logs = &settings.config.logs;
    // Validate before connecting, so bad input is reported as such even without a bus.
    mount::mount_unit_name(&logs.path)?;
    let mut systemd = connect_to(bus).await?;
    if let Some(pid) = target_pid {
        systemd = systemd.with_proc_dir(PathBuf::from(format!("/proc/{pid}")));
    }
    systemd
        .ensure_tmpfs(&logs.path, logs.size_mb, LOG_TMPFS_MODE)
        .await
}

/// `ids2-agent unit status NAME`.
pub async fn unit_status(name: &str, bus: Option<&str>) -> Result<UnitStatus, SystemdError> {
    connect_to(bus).await?.unit_status(name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_states_round_trip() {
        for s in [
            "active",
            "reloading",
            "inactive",
            "failed",
            "activating",
            "deactivating",
            "maintenance",
        ] {
            assert_eq!(ActiveState::parse(s).as_str(), s);
        }
        assert_eq!(
            ActiveState::parse("maintenance"),
            ActiveState::Other("maintenance".into())
        );
    }

    #[test]
    fn resource_interfaces_follow_unit_type() {
        assert_eq!(
            type_interface("suricata.service"),
            Some("org.freedesktop.systemd1.Service")
        );
        assert_eq!(
            type_interface("mnt-ram_logs.mount"),
            Some("org.freedesktop.systemd1.Mount")
        );
        assert_eq!(type_interface("multi-user.target"), None);
        assert_eq!(type_interface("noname"), None);
    }

    #[test]
    fn status_shows_limits_in_operator_units() {
        let status = UnitStatus {
            name: "vector.service".into(),
            load_state: "loaded".into(),
            active: ActiveState::Active,
            sub: SubState("running".into()),
            main_pid: Some(42),
            result: Some("success".into()),
            limits: Some(ResourceLimits {
                cpu_quota_per_sec_usec: Some(250_000),
                memory_high_bytes: None,
            }),
        };
        assert_eq!(
            status.to_string(),
            "vector.service: loaded, active (running), main pid 42, result success, \
             cpu quota 25%, memory high none"
        );
    }
}
