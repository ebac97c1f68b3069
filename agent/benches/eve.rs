//! EVE reading throughput: lines per second through the counter (JSON head parse, stats
//! extraction) and through the tailer + counter from a file, on EVE lines from the corpus
//! (`../shared/corpus/elastic-suricata/*.log`) or, when it is absent, synthetic lines shaped
//! like Suricata's.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ids2_agent::eve::{EveCounter, TailEvent, Tailer};

fn corpus_lines() -> Option<Vec<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/elastic-suricata");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&dir).ok()? {
        let path = entry.ok()?.path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).ok()?;
            lines.extend(
                text.lines()
                    .filter(|l| l.starts_with('{'))
                    .map(String::from),
            );
        }
    }
    (!lines.is_empty()).then_some(lines)
}

fn synthetic_lines() -> Vec<String> {
    let types = ["alert", "flow", "dns", "http", "tls", "fileinfo", "anomaly"];
    let mut v: Vec<String> = (0..1000)
        .map(|i| {
            let t = types[i % types.len()];
            format!(
                r#"{{"timestamp":"2026-11-21T10:00:{:02}.123456+0000","flow_id":{},"in_iface":"eth0","event_type":"{t}","src_ip":"192.168.1.{}","src_port":{},"dest_ip":"10.0.0.{}","dest_port":443,"proto":"TCP","{t}":{{"detail":"x{i}","bytes":{}}}}}"#,
                i % 60,
                1_000_000 + i,
                i % 250,
                30_000 + i,
                i % 200,
                i * 7
            )
        })
        .collect();
    v.push(r#"{"timestamp":"2026-11-21T10:00:08.000000+0000","event_type":"stats","stats":{"uptime":8,"capture":{"kernel_packets":1200,"kernel_drops":3},"tcp":{"ssn_memcap_drop":0,"segment_memcap_drop":0},"flow":{"memcap":0}}}"#.to_string());
    v
}

fn bench(c: &mut Criterion) {
    let (name, lines) = match corpus_lines() {
        Some(l) => ("corpus", l),
        None => {
            eprintln!("eve bench: ../shared/corpus absent; using synthetic EVE lines");
            ("synthetic", synthetic_lines())
        }
    };
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut g = c.benchmark_group("eve");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function(format!("count_lines/{name}"), |b| {
        b.iter(|| {
            let mut counter = EveCounter::default();
            for l in &lines {
                counter.line(black_box(l.as_bytes()));
            }
            black_box(counter.counts().len())
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eve.json");
    let mut f = std::fs::File::create(&path).unwrap();
    for l in &lines {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    g.bench_function(format!("tail_and_count/{name}"), |b| {
        b.iter(|| {
            let mut tailer = Tailer::new(path.clone(), 1 << 20, false);
            let mut counter = EveCounter::default();
            while tailer
                .poll(4 << 20, |ev| match ev {
                    TailEvent::Line(l) => counter.line(l),
                    TailEvent::Oversized => counter.oversized(),
                })
                .unwrap()
            {}
            black_box(counter.counts().len())
        })
    });
    g.finish();
    eprintln!(
        "eve bench: {} lines, {bytes} bytes per iteration ({name})",
        lines.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
