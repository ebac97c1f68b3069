//! The victim's small real services, served from a thread inside the victim namespace: HTTP on
//! 80 (a basic-auth area under `/admin`), HTTPS on 443 (self-signed, for the benign TLS
//! baseline), DNS on UDP 53, an FTP-style login on 21; and on 22 Debian's real OpenSSH server
//! when it is installed (SSH brute force needs real key exchanges and refusals), else an
//! SSH-like banner.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use tokio_rustls::rustls;

use super::netns::{Lan, VICTIM_IP};
use super::LabError;

/// Largest request head the HTTP service reads.
const MAX_HEAD: usize = 16 * 1024;

/// The services' TLS identity, shared with the baseline client that trusts it.
pub struct Identity {
    /// DER certificate (self-signed, SAN = the victim's address).
    pub cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl Identity {
    /// A fresh self-signed certificate for the victim's address.
    pub fn generate() -> Result<Self, LabError> {
        let ck = rcgen::generate_simple_self_signed(vec![VICTIM_IP.to_string()])
            .map_err(|e| LabError::Tls(e.to_string()))?;
        Ok(Self {
            cert_der: ck.cert.der().to_vec(),
            key_der: ck.signing_key.serialize_der(),
        })
    }
}

/// Where Debian installs the OpenSSH server.
pub const SSHD: &str = "/usr/sbin/sshd";
/// How long sshd may take to listen.
const SSHD_START: Duration = Duration::from_secs(10);

/// The running services; dropping it stops them.
pub struct Victim {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    sshd: Option<Sshd>,
}

impl Victim {
    /// Starts the services in namespace `ns`; returns once they are all listening.
    pub fn start(ns: &str, identity: &Identity) -> Result<Self, LabError> {
        let sshd = if Path::new(SSHD).is_file() {
            Some(Sshd::start(ns)?)
        } else {
            None
        };
        let banner_on_22 = sshd.is_none();
        let tls = tls_acceptor(identity)?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns = ns.to_string();
        let thread = std::thread::Builder::new()
            .name("lab-victim".into())
            .spawn(move || {
                let result = (|| {
                    Lan::enter(&ns)?;
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| LabError::Service("runtime", e))?;
                    rt.block_on(async move {
                        let bound = bind_all(banner_on_22).await;
                        match bound {
                            Ok(listeners) => {
                                let _ = ready_tx.send(Ok(()));
                                tokio::select! {
                                    _ = serve(listeners, tls) => {}
                                    _ = stop_rx => {}
                                }
                            }
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                            }
                        }
                    });
                    Ok::<(), LabError>(())
                })();
                if let Err(e) = result {
                    eprintln!("lab victim: {e}");
                }
            })
            .map_err(|e| LabError::Service("thread", e))?;
        let victim = Self {
            stop: Some(stop_tx),
            thread: Some(thread),
            sshd,
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(victim),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LabError::Service(
                "start",
                std::io::Error::other("the victim thread ended before listening"),
            )),
        }
    }
}

impl Victim {
    /// What answers on port 22: Debian's sshd or the lab's SSH-like banner.
    pub fn ssh_server(&self) -> &'static str {
        if self.sshd.is_some() {
            "sshd"
        } else {
            "banner"
        }
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Sshd's own Drop stops it.
        self.sshd.take();
    }
}

/// Debian's OpenSSH server in the victim namespace, refusing every password: its own host key
/// and config in a temp dir, `UsePAM no`, root logins off, and no user it knows a password of.
/// Its privilege-separation directory `/run/sshd` lives on a tmpfs in a mount namespace of its
/// own, so nothing on the host changes.
struct Sshd {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Sshd {
    fn start(ns: &str) -> Result<Self, LabError> {
        let dir = tempfile::Builder::new()
            .prefix("ids2-lab-sshd-")
            .tempdir()
            .map_err(|e| LabError::Service("create sshd's directory", e))?;
        let key = dir.path().join("ssh_host_ed25519_key");
        crate::command_output(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key),
        )?;
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port 22\nListenAddress {VICTIM_IP}\nHostKey {}\nPasswordAuthentication yes\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication no\nUsePAM no\n\
                 PermitRootLogin no\nStrictModes no\nPidFile none\nMaxStartups 64:30:128\n\
                 LogLevel ERROR\n",
                key.display()
            ),
        )
        .map_err(|e| LabError::Service("write sshd_config", e))?;
        let log = dir.path().join("sshd.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| LabError::Service("create sshd.log", e))?;
        let script = format!(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/sshd && exec {SSHD} -D -e -f '{}'",
            config.display()
        );
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "unshare",
                "--mount",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                log_file
                    .try_clone()
                    .map_err(|e| LabError::Service("open sshd.log", e))?,
            )
            .spawn()
            .map_err(|source| LabError::Spawn {
                program: "ip netns exec … sshd".into(),
                source,
            })?;
        let mut sshd = Self { child, _dir: dir };
        let deadline = Instant::now() + SSHD_START;
        loop {
            if listening_on_22(sshd.child.id()) {
                return Ok(sshd);
            }
            let exited = sshd.child.try_wait().ok().flatten().is_some();
            if exited || Instant::now() > deadline {
                return Err(LabError::Command {
                    command: format!("{SSHD} -D -f {}", config.display()),
                    stderr: std::fs::read_to_string(&log).unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when process `pid`'s network namespace has a TCP socket listening on port 22
/// (`/proc/PID/net/tcp` lists the sockets of the namespace the process is in).
fn listening_on_22(pid: u32) -> bool {
    let table = PathBuf::from(format!("/proc/{pid}/net/tcp"));
    std::fs::read_to_string(table).is_ok_and(|t| {
        t.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(":0016") && f[3] == "0A"
        })
    })
}

struct Listeners {
    http: TcpListener,
    https: TcpListener,
    ftp: TcpListener,
    ssh: Option<TcpListener>,
    dns: UdpSocket,
}

async fn bind_all(banner_on_22: bool) -> Result<Listeners, LabError> {
    let at = |port| SocketAddr::new(IpAddr::V4(VICTIM_IP), port);
    let tcp = |port| async move {
        TcpListener::bind(at(port))
            .await
            .map_err(|e| LabError::Service("bind a victim TCP port", e))
    };
    Ok(Listeners {
        // Every address of the victim's, so it also answers as the C2 server (`netns::C2_IP`).
        http: TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, 80))
            .await
            .map_err(|e| LabError::Service("bind a victim TCP port", e))?,
        https: tcp(443).await?,
        ftp: tcp(21).await?,
        ssh: if banner_on_22 {
            Some(tcp(22).await?)
        } else {
            None
        },
        dns: UdpSocket::bind(at(53))
            .await
            .map_err(|e| LabError::Service("bind the victim DNS port", e))?,
    })
}

fn tls_acceptor(identity: &Identity) -> Result<tokio_rustls::TlsAcceptor, LabError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rustls::pki_types::CertificateDer::from(identity.cert_der.clone());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(identity.key_der.clone().into());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(vec![cert], key))
        .map_err(|e| LabError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve(l: Listeners, tls: tokio_rustls::TlsAcceptor) {
    let http = async {
        while let Ok((conn, _)) = l.http.accept().await {
            tokio::spawn(http_conn(conn));
        }
    };
    let https = async {
        while let Ok((conn, _)) = l.https.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                if let Ok(stream) = tls.accept(conn).await {
                    http_conn(stream).await;
                }
            });
        }
    };
    let ftp = async {
        while let Ok((conn, _)) = l.ftp.accept().await {
            tokio::spawn(ftp_conn(conn));
        }
    };
    let ssh = async {
        let Some(ssh) = &l.ssh else { return };
        while let Ok((mut conn, _)) = ssh.accept().await {
            tokio::spawn(async move {
                let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.2p1 ids2-lab\r\n").await;
                let mut buf = [0u8; 256];
                let _ = conn.read(&mut buf).await;
            });
        }
    };
    let dns = async {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = l.dns.recv_from(&mut buf).await {
            if let Some(answer) = dns_answer(&buf[..n]) {
                let _ = l.dns.send_to(&answer, peer).await;
            }
        }
    };
    tokio::join!(http, https, ftp, ssh, dns);
}

/// One request per connection: `/` is a page, `/admin` wants basic auth it never grants.
async fn http_conn<S: tokio::io::AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/");
    let (status, extra, body) = if path == "/" || path.starts_with("/?") {
        ("200 OK", "", "<html><body>ids2 lab victim</body></html>\n")
    } else if path.starts_with("/admin") {
        (
            "401 Unauthorized",
            "WWW-Authenticate: Basic realm=\"lab admin\"\r\n",
            "unauthorized\n",
        )
    } else if path.starts_with("/api/") {
        ("200 OK", "", "{\"tasks\":[]}\n")
    } else {
        ("404 Not Found", "", "not found\n")
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nServer: ids2-lab\r\nContent-Type: text/html\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// An FTP-style login that refuses every password.
async fn ftp_conn(conn: tokio::net::TcpStream) {
    let (read, mut write) = conn.into_split();
    let mut lines = BufReader::new(read.take(4096)).lines();
    if write
        .write_all(b"220 ids2 lab FTP ready\r\n")
        .await
        .is_err()
    {
        return;
    }
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "USER" => b"331 Password required\r\n",
            "PASS" => b"530 Login incorrect.\r\n",
            "QUIT" => {
                let _ = write.write_all(b"221 Goodbye.\r\n").await;
                return;
            }
            _ => b"500 Unknown command.\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// Answers an A query with the victim's address and a TXT query with a short text; anything
/// else gets NOTIMP. Returns `None` for what is not a query.
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    let mut end = 12;
    loop {
        let len = *query.get(end)? as usize;
        end += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        end += len;
    }
    let question = query.get(12..end + 4)?;
    let qtype = u16::from_be_bytes([question[question.len() - 4], question[question.len() - 3]]);
    let mut r = Vec::with_capacity(64 + question.len());
    r.extend_from_slice(&query[0..2]);
    let rdata: Option<Vec<u8>> = match qtype {
        1 => Some(VICTIM_IP.octets().to_vec()),
        16 => Some([&[2u8][..], b"ok"].concat()),
        _ => None,
    };
    // QR, RD copied, RA; rcode 4 (NOTIMP) when there is no answer.
    r.extend_from_slice(&[
        0x81 | (query[2] & 0x01),
        if rdata.is_some() { 0x80 } else { 0x84 },
    ]);
    r.extend_from_slice(&[0, 1, 0, u8::from(rdata.is_some()), 0, 0, 0, 0]);
    r.extend_from_slice(question);
    if let Some(rdata) = rdata {
        r.extend_from_slice(&[0xc0, 12]); // name: pointer to the question
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 60]); // IN, TTL 60
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulate;

    #[test]
    fn dns_answers_a_and_txt() {
        let q = emulate_query("www.lab", 1);
        let a = dns_answer(&q).unwrap();
        assert_eq!(&a[..2], &q[..2]);
        assert_eq!(a[3] & 0x0f, 0, "rcode");
        assert_eq!(&a[a.len() - 4..], &VICTIM_IP.octets());
        let t = dns_answer(&emulate_query("x.lab", 16)).unwrap();
        assert_eq!(&t[t.len() - 3..], b"\x02ok");
        let mx = dns_answer(&emulate_query("x.lab", 15)).unwrap();
        assert_eq!(mx[3] & 0x0f, 4, "NOTIMP");
        assert!(dns_answer(&a).is_none(), "responses are not answered");
        assert!(dns_answer(&q[..10]).is_none());
    }

    fn emulate_query(name: &str, qtype: u16) -> Vec<u8> {
        emulate::packets::dns_query(0x4242, name, qtype)
    }
}
