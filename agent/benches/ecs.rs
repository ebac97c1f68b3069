//! Cost of the ECS mapping per EVE event type and over the corpus mix, on real EVE.
//!
//! Input: the EVE lines the conformance test produced from the corpus pcaps
//! (`$IDS2_ECS_BENCH_EVE`, default `target/tmp/ecs-conformance/eve.json`: run
//! `cargo nextest run -p ids2-e2e --test ecs_conformance` first) and Elastic's sample EVE in
//! `../shared/corpus/elastic-suricata`. Says which inputs are absent; skips when none is there.
//! Throughput is reported in events per second of one core (criterion "elements").
//! `IDS2_ECS_BENCH_ROUNDS=N` replaces criterion by fixed work rated by thread CPU time;
//! `IDS2_ECS_BENCH_PROGRAM=FILE` measures a rendered candidate program instead of the shipped one.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ids2_agent::ecs::{Mapper, ProgramVars};

/// Most lines of one event type measured per group, so a run stays short.
const MAX_PER_TYPE: usize = 2_000;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What the bench maps.
struct Input {
    /// Up to [`MAX_PER_TYPE`] lines per EVE type.
    by_type: BTreeMap<String, Vec<String>>,
    /// How many lines of each type the input really has (the weights of the corpus mix).
    counts: BTreeMap<String, u64>,
    /// Every line, in input order: the corpus mix.
    all: Vec<String>,
}

fn corpus_lines() -> Input {
    let root = workspace_root();
    let mut files = vec![std::env::var_os("IDS2_ECS_BENCH_EVE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/tmp/ecs-conformance/eve.json"))];
    let elastic = root.join("../shared/corpus/elastic-suricata");
    for name in [
        "test-eve-small.log",
        "test-eve-dns-4-1-4.log",
        "test-eve-6-0.log",
    ] {
        files.push(elastic.join(name));
    }
    let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut all = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            eprintln!("ecs bench: {} absent, not used", file.display());
            continue;
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(t) = v.get("event_type").and_then(|t| t.as_str()) else {
                continue;
            };
            *counts.entry(t.to_string()).or_default() += 1;
            all.push(line.to_string());
            let lines = by_type.entry(t.to_string()).or_default();
            if lines.len() < MAX_PER_TYPE {
                lines.push(line.to_string());
            }
        }
    }
    Input {
        by_type,
        counts,
        all,
    }
}

/// The shipped program, or (to try a change without rebuilding) the rendered VRL program in the
/// file `$IDS2_ECS_BENCH_PROGRAM`.
fn mapper() -> Mapper {
    if let Some(path) = std::env::var_os("IDS2_ECS_BENCH_PROGRAM") {
        let source = std::fs::read_to_string(&path).expect("read $IDS2_ECS_BENCH_PROGRAM");
        eprintln!("ecs bench: measuring {}", Path::new(&path).display());
        return Mapper::from_source(&source).expect("the program compiles");
    }
    Mapper::from_vars(&ProgramVars {
        sensor_id: "bench-1".into(),
        sensor_name: "bench sensor".into(),
        interface: "eth0".into(),
        home_net: ["192.168.0.0/16", "10.0.0.0/8", "172.16.0.0/12"]
            .map(String::from)
            .to_vec(),
        evidence: true,
    })
    .expect("the shipped ECS program compiles")
}

fn per_event_type(c: &mut Criterion) {
    let Input {
        by_type,
        counts,
        all,
    } = corpus_lines();
    if by_type.is_empty() {
        eprintln!(
            "ecs bench: SKIPPED — no EVE input (run the ecs_conformance test or set IDS2_ECS_BENCH_EVE)"
        );
        return;
    }
    let mut m = mapper();
    if let Some(rounds) = std::env::var("IDS2_ECS_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse::<u32>().ok())
    {
        fixed_rounds(&mut m, &by_type, &counts, rounds);
        return;
    }
    let mut group = c.benchmark_group("ecs_map_value");
    for (event_type, lines) in &by_type {
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function(event_type.as_str(), |b| {
            b.iter(|| {
                for line in lines {
                    black_box(m.map_value(black_box(line)).expect("corpus EVE maps"));
                }
            })
        });
    }
    group.finish();

    // The whole input in its own mix of types, and what the `ecs` command adds on top:
    // conversion to serde_json.
    let mut group = c.benchmark_group("ecs_mix");
    group.throughput(Throughput::Elements(all.len() as u64));
    group.bench_function("map_value", |b| {
        b.iter(|| {
            for line in &all {
                black_box(m.map_value(black_box(line)).expect("corpus EVE maps"));
            }
        })
    });
    group.bench_function("map_line_json", |b| {
        b.iter(|| {
            for line in &all {
                black_box(m.map_line(black_box(line)).expect("corpus EVE maps"));
            }
        })
    });
    group.bench_function("parse_only_baseline", |b| {
        let mut parse_only = Mapper::from_source(". = parse_json!(.message)").expect("compiles");
        b.iter_batched(
            || (),
            |()| {
                for line in &all {
                    black_box(parse_only.map_value(black_box(line)).expect("json"));
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// CPU time this thread has used: unlike wall time, it does not grow while other jobs on a
/// shared machine hold the core.
fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Fixed work instead of criterion's timed sampling (`IDS2_ECS_BENCH_ROUNDS=N`): one untimed
/// round (lazy initialisation such as the user-agent regexes), then every line `rounds` times per
/// type, rated by this thread's CPU time, which stays comparable on a machine shared with other
/// jobs where criterion's wall-clock rates are noisy.
fn fixed_rounds(
    m: &mut Mapper,
    by_type: &BTreeMap<String, Vec<String>>,
    counts: &BTreeMap<String, u64>,
    rounds: u32,
) {
    for line in by_type.values().flatten() {
        black_box(m.map_value(line).expect("corpus EVE maps"));
    }
    // The mix: each type's CPU time per event, weighted by how often the input has that type.
    let mut mix = (0u64, 0f64);
    for (event_type, lines) in by_type {
        let started = thread_cpu_time();
        for _ in 0..rounds {
            for line in lines {
                black_box(m.map_value(black_box(line)).expect("corpus EVE maps"));
            }
        }
        let took = thread_cpu_time() - started;
        let n = lines.len() as u64 * u64::from(rounds);
        let weight = counts[event_type];
        mix = (
            mix.0 + weight,
            mix.1 + weight as f64 * took.as_secs_f64() / n as f64,
        );
        eprintln!(
            "{event_type:16} {n:>8} events {:>9.0} events per CPU-second",
            n as f64 / took.as_secs_f64()
        );
    }
    eprintln!(
        "{:16} {:>8} events {:>9.0} events per CPU-second (the input's own mix of types)",
        "mix",
        mix.0,
        mix.0 as f64 / mix.1
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = per_event_type
}
criterion_main!(benches);
