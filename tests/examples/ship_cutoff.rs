//! How long a sensor can be cut off from OpenSearch at a steady event rate, with the default
//! sizes (Vector's 256 MiB disk buffer, the 256 MiB log tmpfs, rotation at 64 MiB), before an
//! event is lost, and what the operator sees when that limit is passed. A benchmark, not a test:
//! run it with `bench/ship-cutoff.sh`, which mounts the log tmpfs in a private mount namespace.
//!
//! The real agent runs the real Vector (as in `tests/shipping.rs`) against a **stand-in** for
//! OpenSearch's `_bulk` behind a proxy: [`BulkStandIn`] accepts every document and records its
//! index and id, nothing more. The osmem-server emulator cannot take this run: it holds ~90 KB
//! of memory per ECS document (2.8 GB after some 30,000 here) and indexes them more slowly than
//! 1,000 a second on this machine, while a cut-off at that rate leaves hundreds of thousands.
//! What is measured — Vector's disk buffer, the log tmpfs, the agent's rotation — is all on the
//! sensor's side; the server only has to say which lines arrived, and the shipping tests show
//! against the emulator that what arrives is right. This program stands in for Suricata's EVE
//! writer: corpus EVE lines,
//! each given its own timestamp (one millisecond apart, so every line is distinct), appended
//! at `--rate` lines per second to `eve.json` in the tmpfs, reopened at every write as
//! Suricata does after the agent's rotation. After `--warmup-secs` the proxy cuts the server
//! off; the outage lasts until a line cannot be written (the tmpfs is full) plus a minute, or
//! `--max-secs`. Then the server comes back, Vector drains, and every line written is looked
//! up on the server: the first line lost (not written, or written and never indexed) gives
//! the cut-off time. Bounded: the outage by `--max-secs`, the drain by `--drain-secs`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ids2_lab::ship::{self, Proxy};

#[path = "../tests/support/shipping.rs"]
mod sensor;

use sensor::{eve_time, with_time, BulkStandIn, Sensor, BUFFER_BYTES, PREFIX, SENSOR};

struct Args {
    logs: PathBuf,
    rate: u64,
    warmup: Duration,
    max: Duration,
    drain: Duration,
    /// `shipping.batch_max_mb`, when not the default: what a batch size costs in the drain.
    batch_max_mb: Option<u32>,
}

fn args() -> Args {
    let mut a = Args {
        logs: PathBuf::new(),
        rate: 1000,
        warmup: Duration::from_secs(20),
        max: Duration::from_secs(1800),
        drain: Duration::from_secs(1200),
        batch_max_mb: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        let secs = |v: &str| Duration::from_secs(v.parse().expect("seconds"));
        match k.as_str() {
            "--logs" => a.logs = PathBuf::from(v),
            "--rate" => a.rate = v.parse().expect("lines per second"),
            "--warmup-secs" => a.warmup = secs(&v),
            "--max-secs" => a.max = secs(&v),
            "--drain-secs" => a.drain = secs(&v),
            "--batch-max-mb" => a.batch_max_mb = Some(v.parse().expect("MiB")),
            other => panic!(
                "unknown argument {other}; expected --logs DIR, --rate N, --warmup-secs N, \
                 --max-secs N, --drain-secs N, --batch-max-mb N"
            ),
        }
    }
    assert!(
        a.logs.is_dir(),
        "--logs must name the log directory (bench/ship-cutoff.sh mounts a tmpfs there)"
    );
    a
}

fn used_mib(dir: &Path) -> f64 {
    nix::sys::statvfs::statvfs(dir)
        .map(|s| (s.blocks() - s.blocks_free()) as f64 * s.fragment_size() as f64 / 1048576.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let a = args();
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().unwrap().parent().unwrap();
    let Some(t) = sensor::tools(debug) else {
        std::process::exit(2)
    };
    let corpus = sensor::corpus_eve(&t, &debug.parent().unwrap().join("tmp"));
    let server = BulkStandIn::start();
    let proxy = Proxy::start(server.addr).unwrap();
    // The default shipping settings (batch sizes unless --batch-max-mb, timeout and the 256 MiB
    // disk buffer).
    let shipping = a
        .batch_max_mb
        .map_or("{}".to_string(), |mb| format!("{{batch_max_mb: {mb}}}"));
    let mut s = Sensor::with(&t, &proxy.url(), Some(&a.logs), "", &shipping);
    s.start_agent();

    let base = time::OffsetDateTime::now_utc().unix_timestamp();
    let eve = a.logs.join("eve.json");
    let started = Instant::now();
    let mut written: Vec<String> = Vec::new();
    let mut first_failure: Option<(u64, Duration)> = None;
    let mut failed = 0u64;
    let mut cut: Option<Instant> = None;
    let mut next_report = Instant::now();
    let mut seq = 0u64;
    println!(
        "rate {} lines/s; warm-up {:?}; outage until a line is lost + 60 s, at most {:?}",
        a.rate, a.warmup, a.max
    );
    println!(
        "{:>6} {:>9} {:>9} {:>10} {:>10} {:>9} {:>8}",
        "t_s", "written", "failed", "buf_MiB", "buf_events", "tmpfs_MiB", "sent"
    );
    loop {
        let now = Instant::now();
        if cut.is_none() && now - started >= a.warmup {
            proxy.set_up(false);
            cut = Some(now);
            println!(
                "-- server cut off at t={:.0}s",
                (now - started).as_secs_f64()
            );
        }
        if let Some(c) = cut {
            let over =
                first_failure.is_some_and(|(_, at)| now - started > at + Duration::from_secs(60));
            if over || now - c >= a.max {
                break;
            }
        }
        // Catch up to the rate: lines due by now, written in one append.
        let due = ((now - started).as_secs_f64() * a.rate as f64) as u64;
        if due > seq {
            let batch: Vec<String> = (seq..due)
                .map(|i| with_time(&corpus[i as usize % corpus.len()], &eve_time(base, i)))
                .collect();
            let text: String = batch.iter().map(|l| format!("{l}\n")).collect();
            let ok = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&eve)
                .and_then(|mut f| f.write_all(text.as_bytes()));
            match ok {
                Ok(()) => written.extend(batch),
                Err(e) => {
                    failed += due - seq;
                    if first_failure.is_none() {
                        println!(
                            "-- first write failure at t={:.0}s: {e}",
                            (now - started).as_secs_f64()
                        );
                        first_failure = Some((seq, now - started));
                    }
                }
            }
            seq = due;
        }
        if now >= next_report {
            next_report = now + Duration::from_secs(10);
            println!(
                "{:>6.0} {:>9} {:>9} {:>10.1} {:>10.0} {:>9.1} {:>8.0}",
                (now - started).as_secs_f64(),
                written.len(),
                failed,
                // Vector 0.58's names, then the older ones: either is there.
                s.vector_metric(BUFFER_BYTES, &[("buffer_id", "opensearch")]) / 1048576.0,
                s.vector_metric(
                    &["vector_buffer_size_events", "vector_buffer_events"],
                    &[("buffer_id", "opensearch")]
                ),
                used_mib(&a.logs),
                s.vector_metric(
                    &["vector_component_sent_events_total"],
                    &[("component_id", "opensearch")]
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let cut_at = cut.expect("the outage started") - started;
    let outage = started.elapsed() - cut_at;
    println!(
        "-- server back after {:.0}s away; draining (at most {:?})",
        outage.as_secs_f64(),
        a.drain
    );
    proxy.set_up(true);
    let want =
        ship::expected_documents(SENSOR, PREFIX, written.iter().map(String::as_str)).unwrap();
    let total: usize = want.values().map(BTreeSet::len).sum();
    let suricata = format!("{PREFIX}-suricata.");
    let before = server.count(&suricata);
    let drain_started = Instant::now();
    let (drained, got) = ship::wait_for(a.drain, || {
        let n = server.count(&suricata);
        (n >= total, n)
    });
    // How fast the backlog leaves once the server is back (compare batch sizes with it).
    let drain = drain_started.elapsed().as_secs_f64();
    let drained_docs = got.saturating_sub(before);
    println!(
        "-- drain: {drained_docs} documents in {drain:.0} s ({:.0}/s){}",
        drained_docs as f64 / drain.max(0.001),
        if drained {
            ""
        } else {
            ", not all before the drain's time limit"
        }
    );
    // A last look once the count stops moving.
    std::thread::sleep(Duration::from_secs(10));
    let have = server.ids(&suricata);
    let first_missing = written
        .iter()
        .position(|l| !have.contains(&ship::document_id(SENSOR, l)));
    let lost_written = written
        .iter()
        .filter(|l| !have.contains(&ship::document_id(SENSOR, l)))
        .count();
    println!(
        "-- indexed {} of {} written lines ({got} counted); {failed} lines could not be written",
        have.len(),
        written.len()
    );
    let rate = a.rate as f64;
    let first_lost_seq = match (first_missing, first_failure) {
        (Some(i), Some((f, _))) => Some((i as u64).min(f)),
        (Some(i), None) => Some(i as u64),
        (None, Some((f, _))) => Some(f),
        (None, None) => None,
    };
    let cut_seq = (cut_at.as_secs_f64() * rate) as u64;
    match first_lost_seq {
        Some(q) => println!(
            "RESULT: at {} events/s the first event lost was written {:.0} s ({:.1} min) after the cut-off \
             ({lost_written} written but never indexed, {failed} never written)",
            a.rate,
            (q.saturating_sub(cut_seq)) as f64 / rate,
            (q.saturating_sub(cut_seq)) as f64 / rate / 60.0
        ),
        None => println!(
            "RESULT: nothing lost in {:.0} s ({:.1} min) away at {} events/s",
            outage.as_secs_f64(),
            outage.as_secs_f64() / 60.0,
            a.rate
        ),
    }
    // What the operator saw: the agent's and Vector's warnings and errors, one line per message.
    let log = std::fs::read_to_string(s.root.join("agent.log")).unwrap_or_default();
    let mut seen = BTreeSet::new();
    println!("-- WARN/ERROR messages of the agent and Vector (first of each):");
    for l in log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
    {
        let key: String = l
            .split_whitespace()
            .skip(2)
            .take(6)
            .collect::<Vec<_>>()
            .join(" ");
        if seen.insert(key) {
            println!("{}", l.chars().take(400).collect::<String>());
        }
    }
    s.stop_agent();
}
