//! Reachability probes for the rollback guard: ICMP echo and TCP connect.
//!
//! A gateway rarely listens on a TCP port, so hosts and gateways are checked with an ICMP
//! echo. The socket is a raw ICMP socket (the agent has CAP_NET_RAW as it manages links); an
//! unprivileged "ping" datagram socket is the fallback when raw sockets are refused.

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Longest single attempt; attempts repeat until the guard's deadline.
const ATTEMPT: Duration = Duration::from_secs(1);
/// Pause after a failed attempt that returned at once (e.g. connection refused).
const RETRY_PAUSE: Duration = Duration::from_millis(200);

static SEQUENCE: AtomicU16 = AtomicU16::new(1);

/// One reachability check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// ICMP echo; `scope` is the link index for IPv6 link-local addresses (else 0).
    Echo { address: IpAddr, scope: u32 },
    /// TCP connect.
    Connect(SocketAddr),
}

impl Probe {
    /// Retries the probe until it succeeds or `deadline` passes; the error is the last failure.
    pub(crate) async fn until(&self, deadline: Instant) -> Result<(), String> {
        let mut last = String::from("no attempt finished before the deadline");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(last);
            }
            let wait = left.min(ATTEMPT);
            let started = Instant::now();
            match self.once(wait).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            if started.elapsed() < RETRY_PAUSE {
                tokio::time::sleep(
                    RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now())),
                )
                .await;
            }
        }
    }

    async fn once(&self, wait: Duration) -> io::Result<()> {
        match *self {
            Probe::Connect(target) => {
                match tokio::time::timeout(wait, tokio::net::TcpStream::connect(target)).await {
                    Ok(stream) => stream.map(drop),
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no TCP answer within {} ms", wait.as_millis()),
                    )),
                }
            }
            Probe::Echo { address, scope } => {
                tokio::task::spawn_blocking(move || echo(address, scope, wait))
                    .await
                    .map_err(io::Error::other)?
            }
        }
    }
}

/// Sends one echo request and waits up to `wait` for the matching reply.
fn echo(address: IpAddr, scope: u32, wait: Duration) -> io::Result<()> {
    let (domain, protocol, request, reply) = match address {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, 8u8, 0u8),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, 128u8, 129u8),
    };
    let (socket, raw) = match Socket::new(domain, Type::RAW, Some(protocol)) {
        Ok(s) => (s, true),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            (Socket::new(domain, Type::DGRAM, Some(protocol))?, false)
        }
        Err(e) => return Err(e),
    };
    let peer = match address {
        IpAddr::V4(a) => SockAddr::from(SocketAddrV4::new(a, 0)),
        IpAddr::V6(a) => SockAddr::from(SocketAddrV6::new(a, 0, 0, scope)),
    };
    // A connected ICMP socket only receives from that peer and reports ICMP errors
    // (host unreachable) as socket errors, which become the failure's reason.
    socket.connect(&peer)?;

    let ident = (std::process::id() as u16).rotate_left(5);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut packet = [0u8; 16];
    packet[0] = request;
    packet[4..6].copy_from_slice(&ident.to_be_bytes());
    packet[6..8].copy_from_slice(&sequence.to_be_bytes());
    packet[8..].copy_from_slice(b"ids2-net");
    if address.is_ipv4() {
        // The kernel fills in ICMPv6 checksums itself; ICMPv4 ones are ours to compute.
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    socket.send(&packet)?;

    let deadline = Instant::now() + wait;
    let mut buffer = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no ICMP echo reply within {} ms", wait.as_millis()),
            ));
        }
        socket.set_read_timeout(Some(left))?;
        let n = match (&socket).read(&mut buffer) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        // Raw IPv4 sockets deliver the IP header too; its length is in the low nibble.
        let offset = if raw && address.is_ipv4() {
            usize::from(buffer[0] & 0x0f) * 4
        } else {
            0
        };
        let Some(icmp) = buffer[..n].get(offset..offset + 8) else {
            continue;
        };
        // Datagram ping sockets rewrite the identifier and demultiplex replies themselves.
        let ours = !raw || icmp[4..6] == ident.to_be_bytes();
        if icmp[0] == reply && ours && icmp[6..8] == sequence.to_be_bytes() {
            return Ok(());
        }
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement 220d).
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
    }

    #[test]
    fn checksum_of_packet_with_its_checksum_is_zero() {
        let mut packet = [
            8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'i', b'd', b's', b'2', 1, 2, 3,
        ];
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(checksum(&packet), 0);
    }

    #[tokio::test]
    async fn tcp_probe_reaches_a_loopback_listener_and_fails_once_it_is_gone() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let probe = Probe::Connect(target);
        let soon = || Instant::now() + Duration::from_secs(2);
        assert_eq!(probe.until(soon()).await, Ok(()));
        drop(listener);
        let err = probe
            .until(Instant::now() + Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(err.contains("refused"), "{err}");
    }
}
