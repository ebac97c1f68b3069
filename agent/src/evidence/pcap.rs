//! The classic pcap format, read (plain or in Suricata's lz4 frames) and written by hand: 24 bytes
//! of file header and 16 per record are all it takes, and it keeps libpcap off the sensor.
//! Also the few headers a packet needs decoded to say which flow it belongs to.

use std::io::{self, Read, Write};
use std::net::IpAddr;

// Link types this decoder understands (the values of pcap's `network` field).
const LINKTYPE_NULL: u32 = 0;
/// Ethernet, what a sensor captures.
pub const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_RAW_OLD: u32 = 12;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Largest record accepted: a bad length in a torn file must not allocate gigabytes.
const MAX_RECORD: u32 = 256 * 1024;

/// A pcap file's header values that matter to a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The link type of every record.
    pub linktype: u32,
    /// Whether record timestamps are in nanoseconds (else microseconds).
    pub nanos: bool,
    swapped: bool,
}

/// One record: its time in microseconds since the epoch, its original length and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Capture time, microseconds since the Unix epoch.
    pub ts_us: i64,
    /// Length on the wire.
    pub orig_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// Reads pcap records from a byte stream; a torn tail (a file Suricata is still writing, or an
/// lz4 frame not yet closed) ends the stream rather than failing it.
pub struct Reader<R> {
    inner: R,
    /// The file header.
    pub header: Header,
}

impl<R: Read> Reader<R> {
    /// Reads the file header.
    pub fn new(mut inner: R) -> io::Result<Self> {
        let mut h = [0u8; 24];
        inner.read_exact(&mut h)?;
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (swapped, nanos) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not a pcap file (magic {other:#010x})"),
                ))
            }
        };
        let u32_at = |i: usize| read_u32([h[i], h[i + 1], h[i + 2], h[i + 3]], swapped);
        Ok(Self {
            inner,
            header: Header {
                linktype: u32_at(20) & 0x0fff_ffff,
                nanos,
                swapped,
            },
        })
    }

    /// The next record, `None` at the end (or at a torn tail).
    pub fn next_record(&mut self) -> Option<Record> {
        let mut h = [0u8; 16];
        self.inner.read_exact(&mut h).ok()?;
        let s = self.header.swapped;
        let f = |i: usize| read_u32([h[i], h[i + 1], h[i + 2], h[i + 3]], s);
        let (sec, frac, incl, orig) = (f(0), f(4), f(8), f(12));
        if incl > MAX_RECORD {
            return None;
        }
        let mut data = vec![0u8; incl as usize];
        self.inner.read_exact(&mut data).ok()?;
        let frac_us = if self.header.nanos { frac / 1000 } else { frac };
        Some(Record {
            ts_us: i64::from(sec) * 1_000_000 + i64::from(frac_us),
            orig_len: orig,
            data,
        })
    }
}

fn read_u32(b: [u8; 4], swapped: bool) -> u32 {
    if swapped {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// Writes a microsecond pcap in this host's byte order.
pub struct Writer<W> {
    inner: W,
}

impl<W: Write> Writer<W> {
    /// Writes the file header.
    pub fn new(mut inner: W, linktype: u32) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&MAX_RECORD.to_le_bytes());
        h.extend_from_slice(&linktype.to_le_bytes());
        inner.write_all(&h)?;
        Ok(Self { inner })
    }

    /// Appends one record.
    pub fn write(&mut self, r: &Record) -> io::Result<()> {
        let sec = u32::try_from(r.ts_us.div_euclid(1_000_000)).unwrap_or(0);
        let us = r.ts_us.rem_euclid(1_000_000) as u32;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&sec.to_le_bytes());
        h[4..8].copy_from_slice(&us.to_le_bytes());
        h[8..12].copy_from_slice(&(r.data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&r.orig_len.to_le_bytes());
        self.inner.write_all(&h)?;
        self.inner.write_all(&r.data)
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

/// The addresses, IP protocol and ports of a packet (ports 0 where the protocol has none, and
/// for IP fragments after the first, which carry no transport header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP).
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// For an ICMP destination unreachable (ICMPv6: type 1) quoting a TCP or UDP packet, that
    /// packet's tuple: Suricata files such an error under the quoted packet's flow.
    pub quoted: Option<Quoted>,
}

/// The TCP or UDP packet an ICMP error quotes (as it was sent, before the error came back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// 6 (TCP) or 17 (UDP).
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// Decodes the flow tuple of a captured frame of link type `linktype`; `None` for what is not
/// IP (ARP, a truncated header, an unknown link type).
pub fn tuple(linktype: u32, frame: &[u8]) -> Option<Tuple> {
    let (ethertype, ip) = match linktype {
        LINKTYPE_ETHERNET => {
            let mut et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
            let mut off = 14;
            // 802.1Q / 802.1ad tags, at most two deep (QinQ).
            for _ in 0..2 {
                if et == 0x8100 || et == 0x88a8 {
                    et = u16::from_be_bytes([*frame.get(off + 2)?, *frame.get(off + 3)?]);
                    off += 4;
                }
            }
            (Some(et), frame.get(off..)?)
        }
        LINKTYPE_LINUX_SLL => (
            Some(u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?])),
            frame.get(16..)?,
        ),
        LINKTYPE_LINUX_SLL2 => (
            Some(u16::from_be_bytes([*frame.first()?, *frame.get(1)?])),
            frame.get(20..)?,
        ),
        LINKTYPE_RAW | LINKTYPE_RAW_OLD => (None, frame),
        // BSD loopback: a 4-byte address family in the capturing host's order.
        LINKTYPE_NULL => (None, frame.get(4..)?),
        _ => return None,
    };
    match (ethertype, ip.first()? >> 4) {
        (Some(0x0800) | None, 4) => ipv4(ip, true),
        (Some(0x86dd) | None, 6) => ipv6(ip, true),
        _ => None,
    }
}

/// `outer`: the captured packet, whose ICMP errors are read for the packet they quote (not a
/// quoted packet, so a hostile chain of errors quoting errors is read one level deep).
fn ipv4(ip: &[u8], outer: bool) -> Option<Tuple> {
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let proto = *ip.get(9)?;
    let src = IpAddr::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?);
    let dst = IpAddr::from(<[u8; 4]>::try_from(ip.get(16..20)?).ok()?);
    let frag_offset = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1fff;
    let l4 = if frag_offset == 0 {
        ip.get(ihl..)
    } else {
        None
    };
    Some(with_ports(src, dst, proto, l4, outer))
}

fn ipv6(ip: &[u8], outer: bool) -> Option<Tuple> {
    let src = IpAddr::from(<[u8; 16]>::try_from(ip.get(8..24)?).ok()?);
    let dst = IpAddr::from(<[u8; 16]>::try_from(ip.get(24..40)?).ok()?);
    let (mut next, mut off) = (*ip.get(6)?, 40usize);
    // Extension headers; bounded, a hostile chain cannot loop.
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                next = *ip.get(off)?;
                off += (usize::from(*ip.get(off + 1)?) + 1) * 8;
            }
            44 => {
                let frag_offset = u16::from_be_bytes([*ip.get(off + 2)?, *ip.get(off + 3)?]) >> 3;
                next = *ip.get(off)?;
                off += 8;
                if frag_offset != 0 {
                    return Some(with_ports(src, dst, next, None, outer));
                }
            }
            _ => break,
        }
    }
    Some(with_ports(src, dst, next, ip.get(off..), outer))
}

fn with_ports(src: IpAddr, dst: IpAddr, proto: u8, l4: Option<&[u8]>, outer: bool) -> Tuple {
    let ports = match (proto, l4) {
        (6 | 17 | 132 | 136, Some(l4)) if l4.len() >= 4 => (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        ),
        _ => (0, 0),
    };
    // Destination unreachable: ICMP type 3, ICMPv6 type 1; the quoted packet follows the
    // 8-byte ICMP header.
    let quoted = match (proto, l4) {
        (1, Some(l4)) if outer && l4.first() == Some(&3) => {
            l4.get(8..).and_then(|q| ipv4(q, false)).and_then(quote)
        }
        (58, Some(l4)) if outer && l4.first() == Some(&1) => {
            l4.get(8..).and_then(|q| ipv6(q, false)).and_then(quote)
        }
        _ => None,
    };
    Tuple {
        src,
        dst,
        proto,
        sport: ports.0,
        dport: ports.1,
        quoted,
    }
}

/// The quoted packet's tuple, if it is TCP or UDP with its ports (the 8 bytes an ICMP error
/// must carry hold them).
fn quote(t: Tuple) -> Option<Quoted> {
    matches!(t.proto, 6 | 17).then_some(Quoted {
        src: t.src,
        dst: t.dst,
        proto: t.proto,
        sport: t.sport,
        dport: t.dport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth_ipv4_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0u8; 16]);
        f
    }

    #[test]
    fn writes_and_reads_back_records() {
        let frame = eth_ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80);
        let rec = Record {
            ts_us: 1_700_000_000_123_456,
            orig_len: 60,
            data: frame.clone(),
        };
        let mut w = Writer::new(Vec::new(), LINKTYPE_ETHERNET).unwrap();
        w.write(&rec).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = Reader::new(bytes.as_slice()).unwrap();
        assert_eq!(r.header.linktype, LINKTYPE_ETHERNET);
        assert_eq!(r.next_record(), Some(rec));
        assert_eq!(r.next_record(), None);
        let t = tuple(LINKTYPE_ETHERNET, &frame).unwrap();
        assert_eq!(
            (
                t.src.to_string(),
                t.dst.to_string(),
                t.proto,
                t.sport,
                t.dport
            ),
            ("10.0.0.1".into(), "10.0.0.2".into(), 6, 40000, 80)
        );
    }

    #[test]
    fn a_torn_tail_ends_the_stream_and_garbage_is_refused() {
        let frame = eth_ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
        let rec = Record {
            ts_us: 5,
            orig_len: 60,
            data: frame,
        };
        let mut w = Writer::new(Vec::new(), LINKTYPE_ETHERNET).unwrap();
        w.write(&rec).unwrap();
        w.write(&rec).unwrap();
        let mut bytes = w.finish().unwrap();
        bytes.truncate(bytes.len() - 3);
        let mut r = Reader::new(bytes.as_slice()).unwrap();
        assert!(r.next_record().is_some());
        assert!(r.next_record().is_none());
        assert!(Reader::new(&b"not a pcap file at all, no"[..]).is_err());
    }

    #[test]
    fn vlan_tags_and_later_fragments_are_understood() {
        let plain = eth_ipv4_tcp([192, 0, 2, 1], [192, 0, 2, 2], 5, 6);
        let mut tagged = plain[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        tagged.extend_from_slice(&plain[12..]);
        assert_eq!(
            tuple(LINKTYPE_ETHERNET, &tagged),
            tuple(LINKTYPE_ETHERNET, &plain)
        );
        let mut frag = plain.clone();
        frag[14 + 7] = 10; // fragment offset 10: no TCP header in this one
        assert_eq!(tuple(LINKTYPE_ETHERNET, &frag).unwrap().sport, 0);
        assert_eq!(
            tuple(LINKTYPE_RAW, &plain[14..]),
            tuple(LINKTYPE_ETHERNET, &plain)
        );
        assert!(tuple(LINKTYPE_ETHERNET, &plain[..20]).is_none());
    }

    /// An IPv4 ICMP message of `icmp_type` from `src` to `dst` quoting `inner` (an IP packet).
    fn icmp(src: [u8; 4], dst: [u8; 4], icmp_type: u8, inner: &[u8]) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(&[icmp_type, 3, 0, 0, 0, 0, 0, 0]);
        ip.extend_from_slice(inner);
        ip
    }

    #[test]
    fn an_unreachable_names_the_packet_it_quotes_one_level_deep() {
        let mut probe = eth_ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 40000, 53);
        probe[14 + 9] = 17;
        let back = icmp([10, 0, 0, 2], [10, 0, 0, 1], 3, &probe[14..42]);
        let t = tuple(LINKTYPE_RAW, &back).unwrap();
        assert_eq!((t.proto, t.sport, t.dport), (1, 0, 0));
        let q = t.quoted.expect("the quoted UDP probe");
        assert_eq!(
            (
                q.src.to_string(),
                q.dst.to_string(),
                q.proto,
                q.sport,
                q.dport
            ),
            ("10.0.0.1".into(), "10.0.0.2".into(), 17, 40000, 53)
        );
        // An echo request quotes nothing; an error quoting an error is read one level deep.
        assert!(tuple(
            LINKTYPE_RAW,
            &icmp([10, 0, 0, 1], [10, 0, 0, 2], 8, &[0; 8])
        )
        .unwrap()
        .quoted
        .is_none());
        let nested = icmp([10, 0, 0, 3], [10, 0, 0, 2], 3, &back);
        assert!(tuple(LINKTYPE_RAW, &nested).unwrap().quoted.is_none());
    }
}
