//! A real OpenSSH server on loopback for tests (Debian's `openssh-server`): its own host key,
//! one throwaway client key authorized for root, in a private mount namespace whose `/run`
//! holds sshd's privilege-separation directory, so the host's `/run` is never touched. Killed
//! on drop. Needs root (the mount namespace, and sshd's privilege separation).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's sshd.
const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd.
pub struct Sshd {
    child: Child,
    /// The port on 127.0.0.1.
    pub port: u16,
    /// The client's private key (authorized for root).
    pub client_key: PathBuf,
    /// A known_hosts file for the client (empty: the host key is accepted on first use).
    pub known_hosts: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn keygen(path: &Path) -> Result<(), String> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
    out.status
        .success()
        .then_some(())
        .ok_or_else(|| format!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr)))
}

impl Sshd {
    /// Starts sshd, or says why it cannot (for a skip message).
    pub fn start() -> Result<Self, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("needs root (sshd in a private mount namespace)".into());
        }
        if !Path::new(SSHD).is_file() {
            return Err(format!("needs {SSHD} (Debian openssh-server)"));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        let (host_key, client_key) = (d.join("host_key"), d.join("client_key"));
        keygen(&host_key)?;
        keygen(&client_key)?;
        let authorized = d.join("authorized_keys");
        std::fs::copy(d.join("client_key.pub"), &authorized).map_err(|e| e.to_string())?;
        let known_hosts = d.join("known_hosts");
        std::fs::write(&known_hosts, "").map_err(|e| e.to_string())?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n\
                 StrictModes no\nPidFile none\nLogLevel ERROR\n",
                host_key.display(),
                authorized.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = d.join("sshd.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let script = format!(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/sshd && exec {SSHD} -D -e -f '{}'",
            config.display()
        );
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        let mut sshd = Self {
            child,
            port,
            client_key,
            known_hosts,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if Instant::now() > deadline || sshd.child.try_wait().ok().flatten().is_some() {
                return Err(format!("sshd did not listen: {}", sshd.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(sshd)
    }

    /// What sshd has logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
