//! A minimal MaxMind DB (`.mmdb`, format 2.0) writer for tests: an IPv6 search tree with IPv4
//! networks under `::/96`, 32-bit records, and a data section holding maps, arrays, strings,
//! doubles and unsigned integers. Enough to build GeoLite2-City / GeoLite2-ASN shaped databases
//! that the `maxminddb` reader (and Vector's geoip table) open like the real ones.

use std::net::IpAddr;

/// A value in the data section.
#[derive(Debug, Clone)]
pub enum Data {
    Str(&'static str),
    F64(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'static str, Data)>),
    Arr(Vec<Data>),
}

fn control(out: &mut Vec<u8>, ty: u8, size: usize) {
    let (first, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if ty <= 7 {
        out.push((ty << 5) | first);
    } else {
        out.push(first);
        out.push(ty - 7);
    }
    out.extend(extra);
}

fn uint(out: &mut Vec<u8>, ty: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, ty, 8 - skip);
    out.extend(&bytes[skip..]);
}

impl Data {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Data::Str(s) => {
                control(out, 2, s.len());
                out.extend(s.as_bytes());
            }
            Data::F64(f) => {
                control(out, 3, 8);
                out.extend(f.to_be_bytes());
            }
            Data::U16(v) => uint(out, 5, u64::from(*v)),
            Data::U32(v) => uint(out, 6, u64::from(*v)),
            Data::U64(v) => uint(out, 9, *v),
            Data::Map(pairs) => {
                control(out, 7, pairs.len());
                for (k, v) in pairs {
                    Data::Str(k).encode(out);
                    v.encode(out);
                }
            }
            Data::Arr(items) => {
                control(out, 11, items.len());
                for v in items {
                    v.encode(out);
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(u32),
    Data(u32),
}

/// Builds a database: insert networks with their records, then [`Writer::finish`].
pub struct Writer {
    database_type: &'static str,
    nodes: Vec<[Rec; 2]>,
    data: Vec<u8>,
}

impl Writer {
    /// An empty database whose metadata says `database_type` (e.g. `GeoLite2-City`).
    pub fn new(database_type: &'static str) -> Self {
        Self {
            database_type,
            nodes: vec![[Rec::Empty; 2]],
            data: Vec::new(),
        }
    }

    /// Maps `network/prefix` (IPv4 or IPv6) to `record`. Networks must not nest.
    pub fn insert(&mut self, network: IpAddr, prefix: u8, record: &Data) {
        let (bits, len) = match network {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 96 + u32::from(prefix)),
            IpAddr::V6(v6) => (u128::from(v6), u32::from(prefix)),
        };
        let offset = self.data.len() as u32;
        record.encode(&mut self.data);
        let mut node = 0usize;
        for i in 0..len {
            let bit = ((bits >> (127 - i)) & 1) as usize;
            if i + 1 == len {
                self.nodes[node][bit] = Rec::Data(offset);
                break;
            }
            node = match self.nodes[node][bit] {
                Rec::Node(n) => n as usize,
                Rec::Empty => {
                    self.nodes.push([Rec::Empty; 2]);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Rec::Node(n as u32);
                    n
                }
                Rec::Data(_) => panic!("networks nest"),
            };
        }
    }

    /// The database file's bytes.
    pub fn finish(self) -> Vec<u8> {
        let count = self.nodes.len() as u32;
        let mut out = Vec::new();
        for node in &self.nodes {
            for rec in node {
                let v = match rec {
                    Rec::Empty => count,
                    Rec::Node(n) => *n,
                    Rec::Data(off) => count + 16 + off,
                };
                out.extend(v.to_be_bytes());
            }
        }
        out.extend([0u8; 16]);
        out.extend(&self.data);
        out.extend(b"\xAB\xCD\xEFMaxMind.com");
        Data::Map(vec![
            ("binary_format_major_version", Data::U16(2)),
            ("binary_format_minor_version", Data::U16(0)),
            ("build_epoch", Data::U64(1_700_000_000)),
            ("database_type", Data::Str(self.database_type)),
            (
                "description",
                Data::Map(vec![("en", Data::Str("ids2 test"))]),
            ),
            ("ip_version", Data::U16(6)),
            ("languages", Data::Arr(vec![Data::Str("en")])),
            ("node_count", Data::U32(count)),
            ("record_size", Data::U16(32)),
        ])
        .encode(&mut out);
        out
    }
}
