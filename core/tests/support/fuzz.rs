//! The fuzz targets' shared driver: arbtest (property testing on stable Rust driven by
//! `arbitrary`) with a time budget per target and a count of the cases run, plus a byte mutator
//! that turns real seeds (configs, EVE lines, HTTP requests) into hostile variants.
//!
//! The budget is `IDS2_FUZZ_SECS` seconds per target (the CI run uses each target's default, a
//! few seconds; `bench/fuzz-long.sh` sets minutes). A failure panics with arbtest's seed, which
//! `ARBTEST_SEED=0x… cargo test …` replays. Included by `#[path]` from the agent's fuzz tests too,
//! so every target reports the same way.
// Each fuzz test binary uses a different part of it.
#![allow(dead_code)]

use std::cell::Cell;
use std::time::{Duration, Instant};

use arbtest::arbitrary::{self, Unstructured};

/// Runs `property` for this target's budget and prints `fuzz TARGET: N cases in S s (R/s),
/// F failures` (F is 1 when it stopped at a failure), the line `bench/fuzz-long.sh` reads.
pub fn fuzz(
    target: &str,
    default_budget: Duration,
    mut property: impl FnMut(&mut Unstructured<'_>) -> arbitrary::Result<()>,
) {
    let budget = std::env::var("IDS2_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(default_budget);
    let report = Report {
        target,
        cases: Cell::new(0),
        start: Instant::now(),
    };
    arbtest::arbtest(|u| {
        report.cases.set(report.cases.get() + 1);
        property(u)
    })
    .budget(budget)
    .run();
    assert!(report.cases.get() > 0, "fuzz {target}: no case ran");
}

/// Prints the count when the run ends, by a failure too (while unwinding).
struct Report<'a> {
    target: &'a str,
    cases: Cell<u64>,
    start: Instant,
}

impl Drop for Report<'_> {
    fn drop(&mut self) {
        let secs = self.start.elapsed().as_secs_f64();
        let cases = self.cases.get();
        eprintln!(
            "fuzz {}: {cases} cases in {secs:.1} s ({:.0}/s), {} failures",
            self.target,
            cases as f64 / secs.max(1e-9),
            u8::from(std::thread::panicking())
        );
    }
}

/// Bytes an attacker likes: line ends, NUL, quotes, escapes, invalid UTF-8 (a lone
/// continuation byte, a truncated sequence, an overlong encoding, a surrogate, 0xff).
pub const SPECIAL: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\r",
    b"\0",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"\x80",
    b"\xc3",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\t",
    b" ",
    b"%00",
    b"\x1b[31m",
];

/// Applies up to eight mutations to `seed`, each drawn from `u`: flips, inserts of random bytes,
/// of `SPECIAL` and of the target's `dict` tokens, deletions, duplications, truncation and long
/// runs (up to 64 KiB) of one token.
pub fn mutate(u: &mut Unstructured<'_>, seed: &[u8], dict: &[&[u8]]) -> arbitrary::Result<Vec<u8>> {
    let mut out = seed.to_vec();
    for _ in 0..u.int_in_range(0..=8)? {
        let at = if out.is_empty() {
            0
        } else {
            u.int_in_range(0..=out.len())?
        };
        match u.int_in_range(0..=7)? {
            0 if at < out.len() => out[at] ^= 1 << u.int_in_range(0..=7)?,
            1 => {
                let n = u.int_in_range(1..=16)?;
                let bytes = u.bytes(n.min(u.len()))?.to_vec();
                out.splice(at..at, bytes);
            }
            2 => {
                let end = u.int_in_range(at..=out.len().min(at + 64))?;
                out.drain(at..end);
            }
            3 => {
                let token = pick(u, SPECIAL, dict)?;
                out.splice(at..at, token.iter().copied());
            }
            4 if at < out.len() => {
                let end = u.int_in_range(at..=out.len().min(at + 256))?;
                let copy = out[at..end].to_vec();
                let to = u.int_in_range(0..=out.len())?;
                out.splice(to..to, copy);
            }
            5 => out.truncate(at),
            6 => {
                let token = pick(u, SPECIAL, dict)?;
                let times = u.int_in_range(1..=(64 * 1024 / token.len().max(1)))?;
                out.splice(at..at, token.repeat(times));
            }
            _ => {
                let token = pick(u, dict, SPECIAL)?;
                out.splice(at..at, token.iter().copied());
            }
        }
    }
    Ok(out)
}

/// A token from `first` (three times in four) or `second`.
fn pick<'a>(
    u: &mut Unstructured<'_>,
    first: &[&'a [u8]],
    second: &[&'a [u8]],
) -> arbitrary::Result<&'a [u8]> {
    let list = if second.is_empty() || (!first.is_empty() && u.ratio(3, 4)?) {
        first
    } else {
        second
    };
    Ok(if list.is_empty() {
        b""
    } else {
        u.choose(list)?
    })
}
