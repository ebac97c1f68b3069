//! Anomaly detection throughput, single thread: scoring feature vectors (the figure compared
//! with scikit-learn by bench/anomaly-vs-sklearn.sh), training, and the daemon's whole path
//! (EVE line → JSON → features → score).
//!
//! With `IDS2_ANOMALY_BENCH_DIR` set to the directory the bench script fills (train.csv,
//! held.csv, attack.csv, train.json, held.json), the real labelled flows are used; otherwise a
//! deterministic synthetic set stands in so `cargo bench` runs anywhere.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ids2_agent::anomaly::{
    AnomalyDetector, DetectorOptions, FeatureVector, Model, TrainParams, DEFAULT_SEED, N_FEATURES,
};

fn params() -> TrainParams {
    TrainParams {
        trees: 100,
        sample_size: 256,
        seed: DEFAULT_SEED,
    }
}

fn read_csv(path: &Path) -> Vec<FeatureVector> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run bench/anomaly-vs-sklearn.sh)", path.display()));
    text.lines()
        .skip(1)
        .map(|l| {
            let mut x = [0.0f32; N_FEATURES];
            for (v, cell) in x.iter_mut().zip(l.split(',')) {
                *v = cell.parse().unwrap();
            }
            x
        })
        .collect()
}

/// Stand-in rows when no bench directory is given: a deterministic LCG.
fn synthetic(n: usize, seed: u64) -> Vec<FeatureVector> {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|_| std::array::from_fn(|f| next() * (f % 5 + 1) as f32))
        .collect()
}

fn data() -> (Vec<FeatureVector>, Vec<FeatureVector>, Option<PathBuf>) {
    match std::env::var_os("IDS2_ANOMALY_BENCH_DIR").map(PathBuf::from) {
        Some(dir) => {
            let train = read_csv(&dir.join("train.csv"));
            let mut test = read_csv(&dir.join("held.csv"));
            test.extend(read_csv(&dir.join("attack.csv")));
            (train, test, Some(dir))
        }
        None => (synthetic(400, 1), synthetic(900, 2), None),
    }
}

fn bench(c: &mut Criterion) {
    let (train, test, dir) = data();
    let model = Model::train(&train, params(), None).unwrap();

    let mut g = c.benchmark_group("anomaly");
    g.throughput(Throughput::Elements(test.len() as u64));
    // The figure compared with scikit-learn's score_samples, which also scores a batch.
    let mut out = Vec::with_capacity(test.len());
    g.bench_function("score_batch", |b| {
        b.iter(|| {
            model.score_batch(black_box(&test), &mut out);
            out.len()
        })
    });
    // The daemon's case: one flow at a time.
    g.bench_function("score_one", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for x in &test {
                sum += model.score(black_box(x));
            }
            sum
        })
    });
    g.throughput(Throughput::Elements(train.len() as u64));
    g.bench_function("train", |b| {
        b.iter(|| Model::train(black_box(&train), params(), None).unwrap())
    });
    if let Some(dir) = dir {
        let mut lines: Vec<String> = Vec::new();
        for file in ["held.json", "attack.json"] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            lines.extend(text.lines().map(str::to_string));
        }
        let options = DetectorOptions {
            threshold: 0.6,
            baseline_secs: 0.0,
            min_baseline_flows: 0,
            params: params(),
            model_path: None,
        };
        g.throughput(Throughput::Elements(lines.len() as u64));
        g.bench_function("eve_line_to_score", |b| {
            b.iter(|| {
                let mut d = AnomalyDetector::with_model(model.clone(), options.clone());
                let mut found = 0;
                for l in &lines {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    found += usize::from(d.observe(&v).is_some());
                }
                found
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
