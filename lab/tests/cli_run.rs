//! `ids2-lab run` started by a user who is not root: with sudo on PATH it runs itself again
//! under sudo, with the same arguments and the lab's environment variables kept; without sudo it
//! says it needs root (exit 1). The `sudo` here is a stand-in that only prints the arguments it
//! was given (nothing runs as root, and no sudoers policy is needed); as root the test drops to
//! `nobody` with setpriv.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

const LAB: &str = env!("CARGO_BIN_EXE_ids2-lab");

/// Runs `ids2-lab run --duration 1` as a user who is not root, with only `path` on PATH.
fn run_unprivileged(path: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = if nix::unistd::geteuid().is_root() {
        // Found on this PATH: the child's PATH (which Command would search) holds no setpriv.
        let setpriv = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("setpriv"))
            .find(|p| p.is_file())
            .expect("setpriv (util-linux) to drop root");
        let mut c = Command::new(setpriv);
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            LAB,
        ]);
        c
    } else {
        Command::new(LAB)
    };
    cmd.args(["run", "--duration", "1"])
        .env_clear()
        .env("PATH", path)
        .envs(env.iter().copied());
    cmd.output().expect("ids2-lab starts")
}

fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn a_user_with_sudo_gets_the_same_command_under_sudo() {
    let bin = open_dir();
    let sudo = bin.path().join("sudo");
    std::fs::write(&sudo, "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
    std::fs::set_permissions(&sudo, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = run_unprivileged(
        bin.path(),
        &[("IDS2_SURICATA", "/opt/suricata/bin/suricata")],
    );
    let args = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{args}");
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        [
            "--preserve-env=IDS2_SURICATA",
            "--",
            LAB,
            "run",
            "--duration",
            "1"
        ],
        "sudo's arguments"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("running it with sudo"),
        "it says why"
    );
}

#[test]
fn without_sudo_it_says_it_needs_root() {
    let empty = open_dir();
    let out = run_unprivileged(empty.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the lab needs root") && stderr.contains("who can sudo"),
        "{stderr}"
    );
}
