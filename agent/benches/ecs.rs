//! Cost of the ECS mapping per EVE event type, on real EVE.
//!
//! Input: the EVE lines the conformance test produced from the corpus pcaps
//! (`$IDS2_ECS_BENCH_EVE`, default `target/tmp/ecs-conformance/eve.json`) and Elastic's sample
//! EVE in `../shared/corpus/elastic-suricata`. Skips, saying so, when neither is there.
//! Throughput is reported in events per second of one core (criterion "elements").

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

fn corpus_lines() -> BTreeMap<String, Vec<String>> {
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
            let lines = by_type.entry(t.to_string()).or_default();
            if lines.len() < MAX_PER_TYPE {
                lines.push(line.to_string());
            }
        }
    }
    by_type
}

fn mapper() -> Mapper {
    Mapper::from_vars(&ProgramVars {
        sensor_id: "bench-1".into(),
        sensor_name: "bench sensor".into(),
        interface: "eth0".into(),
        home_net: ["192.168.0.0/16", "10.0.0.0/8", "172.16.0.0/12"]
            .map(String::from)
            .to_vec(),
    })
    .expect("the shipped ECS program compiles")
}

fn per_event_type(c: &mut Criterion) {
    let by_type = corpus_lines();
    if by_type.is_empty() {
        eprintln!(
            "ecs bench: SKIPPED — no EVE input (run the ecs_conformance test or set IDS2_ECS_BENCH_EVE)"
        );
        return;
    }
    let mut m = mapper();
    let mut all = Vec::new();
    let mut group = c.benchmark_group("ecs_map_value");
    for (event_type, lines) in &by_type {
        all.extend(lines.iter().cloned());
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

    // The whole mix, and what the `ecs` command adds on top: conversion to serde_json.
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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = per_event_type
}
criterion_main!(benches);
