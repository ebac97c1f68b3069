//! What packet evidence costs the agent: the copy of alerted flows out of a real `pcap-log`
//! ring into the store. Suricata (the rendered config, ring on) replays the corpus's Ethernet
//! captures joined into one capture, with rules that alert on every DNS, TLS and HTTP flow;
//! then every alerted flow is copied, side by side: in one pass over the ring (the daemon's
//! way, [`Keeper::keep_all`]) and one pass per flow ([`Keeper::keep`] in a loop), with lz4 and
//! plain rings. Prints the flows, alerts, ring bytes and the bytes the store holds per flow and
//! per alert. Skips (saying why) without suricata or the corpus.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ids2_agent::config::{self, Settings};
use ids2_agent::evidence::{pcap, ring, AlertRef, Keeper};
use ids2_agent::suricata::Suricata;

#[path = "../tests/support/offline.rs"]
mod offline;

const RULES: &str = "\
alert dns any any -> any any (msg:\"bench dns\"; sid:9170101;)
alert tls any any -> any any (msg:\"bench tls\"; sid:9170102;)
alert http any any -> any any (msg:\"bench http\"; sid:9170103;)
";

/// The corpus's Ethernet captures as one capture (what one sensor link records).
fn joined_corpus(dir: &Path, out: &Path) -> Option<u64> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    paths.sort();
    let mut w = pcap::Writer::new(fs::File::create(out).ok()?, pcap::LINKTYPE_ETHERNET).ok()?;
    let mut packets = 0;
    for p in paths {
        let Ok(mut r) = pcap::Reader::new(fs::File::open(&p).ok()?) else {
            continue;
        };
        if r.header.linktype != pcap::LINKTYPE_ETHERNET {
            continue;
        }
        while let Some(rec) = r.next_record() {
            w.write(&rec).ok()?;
            packets += 1;
        }
    }
    w.finish().ok()?;
    Some(packets)
}

fn settings(work: &Path, compression: &str) -> Settings {
    let p = |s: &str| work.join(s).display().to_string();
    let text = format!(
        "sensor: {{id: bench-evidence}}\n\
         capture: {{interface: lo, workers: 1, cpu_cores: [0], pin_workers: false}}\n\
         opensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://os.example'}}\n\
         logs: {{path: {logs:?}}}\n\
         suricata: {{memory_mb: 128, rules_dir: {rules:?}, socket_path: {socket:?}, \
         eve_types: [alert]}}\n\
         history: {{repo: {history:?}}}\n\
         paths: {{rendered_dir: {rendered:?}, vector_data_dir: {vector:?}}}\n\
         evidence: {{store_dir: {store:?}, compression: {compression}}}\n",
        logs = p("logs"),
        rules = p("rules"),
        socket = p("suricata.socket"),
        history = p("history.git"),
        rendered = p("rendered"),
        vector = p("vector"),
        store = p("store"),
    );
    config::from_str(&text, Path::new("<bench>")).expect("the bench's config")
}

/// Replays `input` with the rendered config; the alerted flows, grouped, in the ring it wrote.
fn replay(suricata: &Suricata, s: &Settings, input: &Path) -> Vec<Vec<AlertRef>> {
    offline::render_checked(suricata, s, Some(RULES));
    let logs = Path::new(&s.config.logs.path);
    offline::suricata_r(suricata, &offline::rendered_yaml(s), input, logs, &[]);
    let eve = fs::read_to_string(logs.join("eve.json")).unwrap();
    offline::by_flow(
        eve.lines()
            .filter_map(|l| AlertRef::from_line(&s.config.sensor.id, l.as_bytes())),
    )
}

fn bench(c: &mut Criterion) {
    let Ok(Some(suricata)) = Suricata::locate() else {
        eprintln!("skipped: needs suricata (set IDS2_SURICATA or add it to PATH)");
        return;
    };
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pcaps");
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("joined.pcap");
    let Some(packets) = joined_corpus(&corpus, &input) else {
        eprintln!("skipped: needs the shared corpus (../shared/corpus/pcaps)");
        return;
    };
    let mut group = c.benchmark_group("evidence copy");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for compression in ["lz4", "none"] {
        let dir = work.path().join(compression);
        let s = settings(&dir, compression);
        let flows = replay(&suricata, &s, &input);
        let keeper = Keeper::from_settings(&s).unwrap();
        let ring_bytes: u64 = ring::list(&keeper.ring_dir)
            .unwrap()
            .iter()
            .map(|f| f.path.metadata().unwrap().len())
            .sum();
        let batch: Vec<(&[AlertRef], bool)> = flows.iter().map(|g| (g.as_slice(), true)).collect();
        keeper.keep_all(&batch, 1).unwrap();
        let kept = keeper.store.list().unwrap();
        let stored: u64 = kept.iter().map(|e| e.bytes).sum();
        let alerts: usize = flows.iter().map(Vec::len).sum();
        println!(
            "ring {compression}: {packets} packets replayed, {ring_bytes} ring bytes; {} alerted \
             flows ({alerts} alerts), {} kept, {stored} store bytes: {:.0} per flow, {:.0} per \
             alert",
            flows.len(),
            kept.len(),
            stored as f64 / kept.len().max(1) as f64,
            stored as f64 / alerts.max(1) as f64,
        );
        group.bench_function(format!("{compression}: all flows, one pass"), |b| {
            b.iter(|| keeper.keep_all(&batch, 1).unwrap())
        });
        group.bench_function(format!("{compression}: one pass per flow"), |b| {
            b.iter(|| {
                for g in &flows {
                    keeper.keep(g, 1, true).unwrap();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
