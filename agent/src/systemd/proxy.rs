//! Typed zbus proxies for the parts of systemd's D-Bus API (`org.freedesktop.systemd1(5)`)
//! that the agent uses. Names and signatures follow systemd's documentation exactly.

use zbus::{proxy, OwnedObjectPath, Variant};

/// One `(name, value)` pair of the `a(sv)` property lists systemd takes.
pub type Property<'a> = (&'a str, Variant<'a>);

/// `org.freedesktop.systemd1.Manager` on `/org/freedesktop/systemd1`.
#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub trait Manager {
    /// The object path of a unit, loading it from disk first if needed. (`GetUnit` is not
    /// used: it fails for an inactive unit that systemd has garbage-collected, which makes
    /// reading a stopped unit's state racy.)
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    /// Queues a start job; returns the job's object path.
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    /// Queues a stop job; returns the job's object path.
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    /// Queues a restart job; returns the job's object path.
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    /// Queues a reload job; returns the job's object path.
    fn reload_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    /// Creates and starts a unit that lives only until it stops (or the next boot).
    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[Property<'_>],
        aux: &[(&str, Vec<Property<'_>>)],
    ) -> zbus::Result<OwnedObjectPath>;

    /// Changes unit properties (resource control) at run time; `runtime` keeps the change
    /// under /run so it does not survive a reboot.
    fn set_unit_properties(
        &self,
        name: &str,
        runtime: bool,
        properties: &[Property<'_>],
    ) -> zbus::Result<()>;

    /// Sent when a job finishes; `result` is "done", "canceled", "timeout", "failed",
    /// "dependency" or "skipped".
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;

    /// "initializing", "starting", "running", "degraded", "maintenance" or "stopping".
    #[zbus(property(emits_changed_signal = "false"))]
    fn system_state(&self) -> zbus::Result<String>;
}

/// `org.freedesktop.systemd1.Unit`, on the path `GetUnit`/`LoadUnit` return.
#[proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
pub trait Unit {
    /// "loaded", "not-found", "bad-setting", "error" or "masked".
    #[zbus(property(emits_changed_signal = "false"))]
    fn load_state(&self) -> zbus::Result<String>;

    /// "active", "reloading", "inactive", "failed", "activating", "deactivating", ...
    #[zbus(property(emits_changed_signal = "false"))]
    fn active_state(&self) -> zbus::Result<String>;

    /// The unit-type specific state, e.g. "running" or "mounted".
    #[zbus(property(emits_changed_signal = "false"))]
    fn sub_state(&self) -> zbus::Result<String>;
}

/// `org.freedesktop.systemd1.Service`, on the same path as the service's `Unit` object.
///
/// `Result` and the resource-control properties exist on every unit type with processes
/// (Service, Mount, Socket, ...), so `super` reads those through the type's interface by name.
#[proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
pub trait Service {
    /// PID of the main process, 0 when there is none.
    #[zbus(property(emits_changed_signal = "false"), name = "MainPID")]
    fn main_pid(&self) -> zbus::Result<u32>;
}
