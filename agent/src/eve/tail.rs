//! Following a growing log file like `tail -F`: new lines as they are appended, a truncated
//! file (copytruncate) from its start, a rotated file (renamed, new one created) drained to
//! its end before the new one is read from its start. Lines are bounded in length. A
//! [`Position`] taken after a poll lets a later tailer resume where this one stopped.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// What the tailer hands to its callback.
#[derive(Debug, PartialEq, Eq)]
pub enum TailEvent<'a> {
    /// A complete line, without its newline.
    Line(&'a [u8]),
    /// A line longer than the limit; its bytes were skipped.
    Oversized,
}

/// Where in which file the last complete line ended: enough to resume after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file; another inode at the same path is a file written since.
    pub ino: u64,
    /// Byte offset just past the last complete line handed out.
    pub offset: u64,
}

impl Position {
    /// `dev ino offset`, the checkpoint file's one line.
    pub fn to_line(self) -> String {
        format!("{} {} {}\n", self.dev, self.ino, self.offset)
    }

    /// Parses [`Position::to_line`]'s output; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let mut it = text.split_whitespace().map(|w| w.parse::<u64>().ok());
        let pos = Position {
            dev: it.next()??,
            ino: it.next()??,
            offset: it.next()??,
        };
        it.next().is_none().then_some(pos)
    }
}

/// Follows one path.
#[derive(Debug)]
pub struct Tailer {
    path: PathBuf,
    max_line: usize,
    start_at_end: bool,
    resume: Option<Position>,
    file: Option<(File, u64, u64)>,
    offset: u64,
    buf: Vec<u8>,
    skipping: bool,
}

const CHUNK: usize = 64 * 1024;

impl Tailer {
    /// A tailer for `path`. With `start_at_end`, a file that exists at the first poll is read
    /// from its current end; files that appear later are always read from the start.
    pub fn new(path: PathBuf, max_line: usize, start_at_end: bool) -> Self {
        Self {
            path,
            max_line,
            start_at_end,
            resume: None,
            file: None,
            offset: 0,
            buf: Vec::new(),
            skipping: false,
        }
    }

    /// Resumes at `pos` at the first poll instead of the start or end: in the same file at its
    /// offset (from 0 if the file is now shorter), in a different file (rotated since) from 0.
    pub fn resume_at(&mut self, pos: Position) {
        self.resume = Some(pos);
    }

    /// Where the last complete line handed out ended; `None` before a file is open and while
    /// the rest of an oversized line is being skipped.
    pub fn position(&self) -> Option<Position> {
        let (_, dev, ino) = self.file.as_ref()?;
        (!self.skipping).then(|| Position {
            dev: *dev,
            ino: *ino,
            offset: self.offset - self.buf.len() as u64,
        })
    }

    /// Reads what is new, up to about `budget` bytes, calling `on` per line. Returns true when
    /// the budget ran out with more data possibly waiting.
    pub fn poll(&mut self, budget: usize, mut on: impl FnMut(TailEvent<'_>)) -> io::Result<bool> {
        let start_at_end = std::mem::replace(&mut self.start_at_end, false);
        let resume = self.resume.take();
        let current = match std::fs::metadata(&self.path) {
            Ok(m) => Some((m.dev(), m.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let rotated = match (&self.file, current) {
            (Some((_, dev, ino)), Some(now)) => (*dev, *ino) != now,
            _ => false,
        };
        if rotated {
            // Whatever the writer put in the old file before it moved on is read first.
            let more = self.read_open(usize::MAX, &mut on)?;
            debug_assert!(!more);
            self.finish_partial(&mut on);
            self.file = None;
        }
        if self.file.is_none() {
            let Some(_) = current else { return Ok(false) };
            let f = match File::open(&self.path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            };
            let m = f.metadata()?;
            self.offset = match resume {
                Some(p) if (p.dev, p.ino) == (m.dev(), m.ino()) && p.offset <= m.len() => p.offset,
                Some(_) => 0,
                None if start_at_end => m.len(),
                None => 0,
            };
            self.buf.clear();
            self.skipping = false;
            self.file = Some((f, m.dev(), m.ino()));
        }
        if let Some((f, _, _)) = &self.file {
            if f.metadata()?.len() < self.offset {
                // Truncated in place: the writer starts over at 0.
                self.finish_partial(&mut on);
                self.offset = 0;
            }
        }
        self.read_open(budget, &mut on)
    }

    fn read_open(&mut self, budget: usize, on: &mut impl FnMut(TailEvent<'_>)) -> io::Result<bool> {
        let Some((mut f, dev, ino)) = self.file.take() else {
            return Ok(false);
        };
        let result = self.read_from(&mut f, budget, on);
        self.file = Some((f, dev, ino));
        result
    }

    fn read_from(
        &mut self,
        f: &mut File,
        budget: usize,
        on: &mut impl FnMut(TailEvent<'_>),
    ) -> io::Result<bool> {
        f.seek(SeekFrom::Start(self.offset))?;
        let mut chunk = vec![0u8; CHUNK];
        let mut read_total = 0usize;
        loop {
            if read_total >= budget {
                return Ok(true);
            }
            let n = f.read(&mut chunk)?;
            if n == 0 {
                return Ok(false);
            }
            read_total += n;
            self.offset += n as u64;
            self.feed(&chunk[..n], on);
        }
    }

    fn feed(&mut self, mut data: &[u8], on: &mut impl FnMut(TailEvent<'_>)) {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            let (line, rest) = (&data[..nl], &data[nl + 1..]);
            data = rest;
            if self.skipping {
                self.skipping = false;
                continue;
            }
            if self.buf.is_empty() {
                if line.len() > self.max_line {
                    on(TailEvent::Oversized);
                } else if !line.is_empty() {
                    on(TailEvent::Line(line));
                }
            } else {
                self.buf.extend_from_slice(line);
                if self.buf.len() > self.max_line {
                    on(TailEvent::Oversized);
                } else {
                    on(TailEvent::Line(&self.buf));
                }
                self.buf.clear();
            }
        }
        if self.skipping || data.is_empty() {
            return;
        }
        if self.buf.len() + data.len() > self.max_line {
            // Counted once now; the rest of the line is dropped as it arrives.
            on(TailEvent::Oversized);
            self.buf.clear();
            self.skipping = true;
        } else {
            self.buf.extend_from_slice(data);
        }
    }

    /// A last line without its newline (the file ended or was cut) is still a line.
    fn finish_partial(&mut self, on: &mut impl FnMut(TailEvent<'_>)) {
        if !self.buf.is_empty() {
            on(TailEvent::Line(&self.buf));
            self.buf.clear();
        }
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(t: &mut Tailer) -> Vec<String> {
        let mut out = Vec::new();
        t.poll(usize::MAX, |ev| match ev {
            TailEvent::Line(l) => out.push(String::from_utf8_lossy(l).into_owned()),
            TailEvent::Oversized => out.push("<oversized>".into()),
        })
        .unwrap();
        out
    }

    fn append(path: &std::path::Path, s: &str) {
        let mut f = File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    #[test]
    fn resumes_at_a_position_in_the_same_file_and_from_the_start_of_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eve.json");
        append(&p, "a\nb\n");
        let mut t = Tailer::new(p.clone(), 100, true);
        assert!(lines(&mut t).is_empty());
        append(&p, "partial\nc\nhal");
        assert_eq!(lines(&mut t), ["partial", "c"]);
        let pos = t.position().unwrap();
        assert_eq!(Position::parse(&pos.to_line()), Some(pos));
        assert_eq!(Position::parse("1 2"), None);
        append(&p, "f\nd\n");

        // The same file: from just after "c", the half-written line included.
        let mut again = Tailer::new(p.clone(), 100, true);
        again.resume_at(pos);
        assert_eq!(lines(&mut again), ["half", "d"]);

        // Rotated while nobody read: the new file is all new.
        std::fs::rename(&p, dir.path().join("eve.json.1")).unwrap();
        append(&p, "e\n");
        let mut rotated = Tailer::new(p.clone(), 100, true);
        rotated.resume_at(pos);
        assert_eq!(lines(&mut rotated), ["e"]);
    }

    #[test]
    fn follows_appends_and_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eve.json");
        let mut t = Tailer::new(p.clone(), 100, false);
        assert!(lines(&mut t).is_empty(), "missing file is not an error");
        append(&p, "a\nb\npar");
        assert_eq!(lines(&mut t), ["a", "b"]);
        append(&p, "tial\n");
        assert_eq!(lines(&mut t), ["partial"]);
        assert!(lines(&mut t).is_empty());
    }

    #[test]
    fn starts_at_end_of_an_existing_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eve.json");
        append(&p, "old\n");
        let mut t = Tailer::new(p.clone(), 100, true);
        assert!(lines(&mut t).is_empty());
        append(&p, "new\n");
        assert_eq!(lines(&mut t), ["new"]);
    }

    #[test]
    fn truncation_restarts_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eve.json");
        let mut t = Tailer::new(p.clone(), 100, false);
        append(&p, "one\ntwo\n");
        assert_eq!(lines(&mut t), ["one", "two"]);
        File::create(&p).unwrap(); // truncate
        append(&p, "3\n");
        assert_eq!(lines(&mut t), ["3"]);
    }

    #[test]
    fn rotation_drains_old_then_reads_new_from_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eve.json");
        let mut t = Tailer::new(p.clone(), 100, false);
        append(&p, "a\n");
        assert_eq!(lines(&mut t), ["a"]);
        // The writer adds a line, the file is rotated, the writer reopens a new one.
        append(&p, "b\n");
        std::fs::rename(&p, dir.path().join("eve.json.1")).unwrap();
        append(&p, "c\n");
        assert_eq!(lines(&mut t), ["b", "c"]);
    }

    #[test]
    fn long_lines_are_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eve.json");
        let mut t = Tailer::new(p.clone(), 10, false);
        append(&p, &format!("ok\n{}\nfine\n", "x".repeat(50)));
        assert_eq!(lines(&mut t), ["ok", "<oversized>", "fine"]);
        // A long line arriving in pieces across polls is reported once.
        append(&p, "yyyyyyyy");
        assert!(lines(&mut t).is_empty());
        append(&p, "yyyyyyyy");
        assert_eq!(lines(&mut t), ["<oversized>"]);
        append(&p, "yyyy\nafter\n");
        assert_eq!(lines(&mut t), ["after"]);
    }

    #[test]
    fn budget_limits_one_poll() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eve.json");
        let line = format!("{}\n", "z".repeat(1000));
        append(&p, &line.repeat(200));
        let mut t = Tailer::new(p.clone(), 2000, false);
        let mut n = 0;
        let more = t.poll(CHUNK, |_| n += 1).unwrap();
        assert!(more);
        assert!(n < 200, "{n}");
        while t.poll(CHUNK, |_| n += 1).unwrap() {}
        assert_eq!(n, 200);
    }
}
