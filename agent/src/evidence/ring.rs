//! Suricata's `pcap-log` ring as it lies on disk: one file per worker thread and time, named
//! `ring.<thread>.<secs>.<usecs>.pcap`, `.lz4` appended when compressed; Suricata deletes the
//! oldest of a thread's files once it has `max-files`.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::pcap::{Reader, Record};

/// Suricata's `pcap-log.filename` (`%n` the thread number, `%t` the time of the file's first
/// packet, `secs.usecs` with `ts-format: usec`, so two files of one second never collide).
pub const FILENAME_PATTERN: &str = "ring.%n.%t.pcap";

/// One ring file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingFile {
    /// Where it is.
    pub path: PathBuf,
    /// Suricata's thread number.
    pub thread: u32,
    /// Time of its first packet, microseconds since the epoch (from its name).
    pub start_us: i64,
    /// Whether it is lz4 frames.
    pub lz4: bool,
}

impl RingFile {
    /// Reads a ring file name; `None` for any other file.
    pub fn parse(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        let rest = name.strip_prefix("ring.")?;
        let (rest, lz4) = match rest.strip_suffix(".pcap.lz4") {
            Some(r) => (r, true),
            None => (rest.strip_suffix(".pcap")?, false),
        };
        let mut parts = rest.split('.');
        let thread = parts.next()?.parse().ok()?;
        let secs: i64 = parts.next()?.parse().ok()?;
        let usecs: i64 = match parts.next() {
            Some(u) => u.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() || !(0..1_000_000).contains(&usecs) {
            return None;
        }
        Some(Self {
            path: path.to_path_buf(),
            thread,
            start_us: secs * 1_000_000 + usecs,
            lz4,
        })
    }

    /// Opens it for reading records.
    pub fn open(&self) -> io::Result<Reader<Box<dyn Read>>> {
        let file = BufReader::with_capacity(1 << 16, File::open(&self.path)?);
        let inner: Box<dyn Read> = if self.lz4 {
            Box::new(TornTolerant(lz4_flex::frame::FrameDecoder::new(file)))
        } else {
            Box::new(file)
        };
        Reader::new(inner)
    }
}

/// Suricata keeps the newest file's lz4 frame open (and its last block in memory), so its tail
/// is not yet valid lz4: the decoder's error there is read as the end of what is written.
struct TornTolerant<R>(R);

impl<R: Read> Read for TornTolerant<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Ok(0),
            other => other,
        }
    }
}

/// The ring's packets in time order, with the worker and link type of each: a worker's files
/// are read one after another, and the workers, whose files overlap in time, are merged by
/// packet time (a flow's packets can be split between workers: an ICMP error is hashed apart
/// from the flow it belongs to).
pub struct Packets {
    streams: Vec<Stream>,
    /// Files opened so far.
    pub files_read: u64,
}

struct Stream {
    thread: u32,
    files: std::collections::VecDeque<RingFile>,
    reader: Option<(u32, Reader<Box<dyn Read>>)>,
    head: Option<(u32, Record)>,
}

impl Packets {
    /// The packets of `files` (as [`list`] gives them).
    pub fn new(files: &[RingFile]) -> Self {
        let mut streams: Vec<Stream> = Vec::new();
        for f in files {
            match streams.iter_mut().find(|s| s.thread == f.thread) {
                Some(s) => s.files.push_back(f.clone()),
                None => streams.push(Stream {
                    thread: f.thread,
                    files: [f.clone()].into(),
                    reader: None,
                    head: None,
                }),
            }
        }
        Self {
            streams,
            files_read: 0,
        }
    }

    /// Fills each stream's head; a file that vanished (Suricata wrapped the ring) or is not a
    /// pcap yet (just opened, header still buffered) has nothing to give.
    fn fill(&mut self) {
        for s in &mut self.streams {
            while s.head.is_none() {
                if let Some((linktype, r)) = &mut s.reader {
                    match r.next_record() {
                        Some(rec) => s.head = Some((*linktype, rec)),
                        None => s.reader = None,
                    }
                    continue;
                }
                let Some(f) = s.files.pop_front() else { break };
                if let Ok(r) = f.open() {
                    self.files_read += 1;
                    s.reader = Some((r.header.linktype, r));
                }
            }
        }
    }
}

impl Iterator for Packets {
    /// (worker, link type, packet).
    type Item = (u32, u32, Record);

    fn next(&mut self) -> Option<Self::Item> {
        self.fill();
        let s = self
            .streams
            .iter_mut()
            .filter(|s| s.head.is_some())
            .min_by_key(|s| s.head.as_ref().map(|(_, r)| r.ts_us))?;
        let (linktype, rec) = s.head.take()?;
        Some((s.thread, linktype, rec))
    }
}

/// The ring files in `dir`, oldest first (by the time in their names, then thread).
pub fn list(dir: &Path) -> io::Result<Vec<RingFile>> {
    let mut files: Vec<RingFile> = std::fs::read_dir(dir)?
        .filter_map(|e| RingFile::parse(&e.ok()?.path()))
        .collect();
    files.sort_by_key(|f| (f.start_us, f.thread));
    Ok(files)
}

/// How far back the ring reaches at `now_us`, in seconds: from its oldest file's first packet.
/// `None` when the ring is empty.
pub fn wrap_age_secs(files: &[RingFile], now_us: i64) -> Option<f64> {
    let oldest = files.iter().map(|f| f.start_us).min()?;
    Some(((now_us - oldest).max(0)) as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_as_suricata_writes_them() {
        let f = RingFile::parse(Path::new("/l/ring.1.1451761681.370332.pcap.lz4")).unwrap();
        assert_eq!(
            (f.thread, f.start_us, f.lz4),
            (1, 1_451_761_681_370_332, true)
        );
        let f = RingFile::parse(Path::new("ring.12.1451761681.pcap")).unwrap();
        assert_eq!(
            (f.thread, f.start_us, f.lz4),
            (12, 1_451_761_681_000_000, false)
        );
        for other in [
            "eve.json",
            "ring.1.x.pcap",
            "ring.1.2.3.4.pcap",
            "ring.1.2.pcap.gz",
            "log.pcap.1",
        ] {
            assert!(RingFile::parse(Path::new(other)).is_none(), "{other}");
        }
        let files = vec![
            RingFile::parse(Path::new("ring.1.20.0.pcap")).unwrap(),
            RingFile::parse(Path::new("ring.2.10.500000.pcap")).unwrap(),
        ];
        assert_eq!(wrap_age_secs(&files, 30_000_000), Some(19.5));
        assert_eq!(wrap_age_secs(&[], 30_000_000), None);
    }
}
