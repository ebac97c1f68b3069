//! What the lab's tests need that a machine may lack, each check printing the test's SKIP line
//! when it is missing (`.ci/install-deps` installs all of it, and CI runs as root).

use ids2_agent::suricata::Suricata;

/// Root, for `why` (namespaces, raw sockets, …); false, after the SKIP line, without it.
pub fn root(test: &str, why: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("SKIP {test}: needs root ({why})");
    }
    root
}

/// Suricata 7 (`$IDS2_SURICATA` or `suricata` on PATH); None, after the SKIP line, without it.
pub fn suricata(test: &str) -> Option<Suricata> {
    let found = Suricata::locate().ok().flatten();
    if found.is_none() {
        eprintln!("SKIP {test}: needs suricata (.ci/install-deps)");
    }
    found
}
