//! A trained model and its JSON file: versioned, carrying the feature list it was trained on,
//! checked node by node when loaded so a damaged file is refused, never half-used.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::AnomalyError;
use super::features::{FeatureVector, FEATURES, N_FEATURES};
use super::forest::{Forest, Node, Tree, MAX_DEPTH};

/// `format` field of every model file.
pub const MODEL_FORMAT: &str = "ids2-anomaly-model";
/// Current model file version; bumped whenever the file or the features change meaning.
pub const MODEL_VERSION: u32 = 1;
/// Seed used when none is given: training is reproducible by default.
pub const DEFAULT_SEED: u64 = 0x1d52_a90a_2026_0001;

/// How a forest is grown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainParams {
    /// Trees in the forest.
    pub trees: usize,
    /// Rows sampled per tree.
    pub sample_size: usize,
    /// RNG seed.
    pub seed: u64,
}

/// A forest plus what it was trained on.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    forest: Forest,
    /// Parameters it was grown with.
    pub params: TrainParams,
    /// Baseline flows it was trained on.
    pub trained_flows: u64,
    /// EVE timestamps of the first and last baseline flow, when known.
    pub window: Option<(String, String)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    format: String,
    version: u32,
    features: Vec<String>,
    trees: usize,
    sample_size: usize,
    seed: u64,
    trained_flows: u64,
    window: Option<(String, String)>,
    /// Per tree, its nodes, root first.
    forest: Vec<Vec<FileNode>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum FileNode {
    /// `x[feature] < threshold` goes to `left`, else to `left + 1`.
    Split {
        feature: usize,
        threshold: f32,
        left: usize,
    },
    /// A leaf holding `size` training points at `depth`.
    Leaf { size: usize, depth: usize },
}

impl Model {
    /// Trains on `rows`; at least two rows are needed for a tree to split.
    pub fn train(
        rows: &[FeatureVector],
        params: TrainParams,
        window: Option<(String, String)>,
    ) -> Result<Self, AnomalyError> {
        if rows.len() < 2 {
            return Err(AnomalyError::TooFewFlows {
                found: rows.len(),
                needed: 2,
            });
        }
        let forest = Forest::fit(rows, params.trees, params.sample_size, params.seed);
        Ok(Self {
            params: TrainParams {
                sample_size: forest.sample_size,
                ..params
            },
            forest,
            trained_flows: rows.len() as u64,
            window,
        })
    }

    /// The anomaly score of one flow, in (0, 1].
    pub fn score(&self, x: &FeatureVector) -> f64 {
        self.forest.score(x)
    }

    /// Scores of many flows at once (faster per flow than [`Model::score`]; same values).
    pub fn score_batch(&self, xs: &[FeatureVector], out: &mut Vec<f64>) {
        self.forest.score_batch(xs, out);
    }

    /// The score and the names of the `n` features that most shortened the flow's paths.
    pub fn explain(&self, x: &FeatureVector, n: usize) -> (f64, Vec<&'static str>) {
        let (score, credit) = self.forest.explain(x);
        let mut order: Vec<usize> = (0..N_FEATURES).filter(|&f| credit[f] > 0.0).collect();
        order.sort_by(|a, b| credit[*b].total_cmp(&credit[*a]).then(a.cmp(b)));
        (
            score,
            order.into_iter().take(n).map(|f| FEATURES[f]).collect(),
        )
    }

    /// Serialises the model to its JSON file format.
    pub fn to_json(&self) -> String {
        let forest = self.forest.trees.iter().map(file_nodes).collect();
        let file = ModelFile {
            format: MODEL_FORMAT.into(),
            version: MODEL_VERSION,
            features: FEATURES.iter().map(|f| f.to_string()).collect(),
            trees: self.params.trees,
            sample_size: self.params.sample_size,
            seed: self.params.seed,
            trained_flows: self.trained_flows,
            window: self.window.clone(),
            forest,
        };
        serde_json::to_string(&file).expect("model files always serialise")
    }

    /// Parses and checks a model file's text; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, AnomalyError> {
        let corrupt = |reason: String| AnomalyError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        // Read the header first so an old or foreign file gets a precise message.
        #[derive(Deserialize)]
        struct Header {
            format: Option<String>,
            version: Option<u32>,
            features: Option<Vec<String>>,
        }
        let header: Header = serde_json::from_str(text).map_err(|source| AnomalyError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        if header.format.as_deref() != Some(MODEL_FORMAT) {
            return Err(corrupt(format!(
                "not an ids2 anomaly model (`format` is {:?}, expected {MODEL_FORMAT:?})",
                header.format
            )));
        }
        if header.version != Some(MODEL_VERSION) {
            return Err(AnomalyError::Version {
                path: path.to_path_buf(),
                found: header.version,
                expected: MODEL_VERSION,
            });
        }
        let features = header.features.unwrap_or_default();
        if features.iter().map(String::as_str).ne(FEATURES) {
            return Err(AnomalyError::Features {
                path: path.to_path_buf(),
                found: features,
            });
        }
        let file: ModelFile = serde_json::from_str(text).map_err(|source| AnomalyError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        if file.forest.is_empty() || file.forest.len() != file.trees {
            return Err(corrupt(format!(
                "{} trees stored but `trees` says {}",
                file.forest.len(),
                file.trees
            )));
        }
        if file.sample_size < 1 {
            return Err(corrupt("`sample_size` is 0".into()));
        }
        let mut trees = Vec::with_capacity(file.forest.len());
        for (t, nodes) in file.forest.iter().enumerate() {
            trees.push(runtime_tree(nodes).map_err(|e| corrupt(format!("tree {t}: {e}")))?);
        }
        Ok(Self {
            forest: Forest::from_parts(trees, file.sample_size),
            params: TrainParams {
                trees: file.trees,
                sample_size: file.sample_size,
                seed: file.seed,
            },
            trained_flows: file.trained_flows,
            window: file.window,
        })
    }

    /// Reads a model file.
    pub fn load(path: &Path) -> Result<Self, AnomalyError> {
        let text = std::fs::read_to_string(path).map_err(|source| AnomalyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Writes the model atomically (temp file in the same directory, then rename), creating
    /// the directory if needed; a crash never leaves a truncated model behind.
    pub fn save(&self, path: &Path) -> Result<(), AnomalyError> {
        crate::files::write_atomic(path, self.to_json().as_bytes()).map_err(|source| {
            AnomalyError::Write {
                path: path.to_path_buf(),
                source,
            }
        })
    }
}

fn file_nodes(tree: &Tree) -> Vec<FileNode> {
    let mut depth = vec![0usize; tree.nodes.len()];
    let mut out = Vec::with_capacity(tree.nodes.len());
    for (i, n) in tree.nodes.iter().enumerate() {
        if n.is_leaf() {
            out.push(FileNode::Leaf {
                size: tree.sizes[i] as usize,
                depth: depth[i],
            });
        } else {
            let l = n.left as usize;
            depth[l] = depth[i] + 1;
            depth[l + 1] = depth[i] + 1;
            out.push(FileNode::Split {
                feature: n.feature as usize,
                threshold: n.threshold,
                left: l,
            });
        }
    }
    out
}

fn runtime_tree(nodes: &[FileNode]) -> Result<Tree, String> {
    if nodes.is_empty() {
        return Err("no nodes".into());
    }
    let mut tree = Tree {
        nodes: Vec::with_capacity(nodes.len()),
        sizes: Vec::with_capacity(nodes.len()),
        depth: 0,
    };
    // Depth as reached from the root; every node must be reached exactly once.
    let mut depth: Vec<Option<usize>> = vec![None; nodes.len()];
    depth[0] = Some(0);
    for (i, n) in nodes.iter().enumerate() {
        let Some(d) = depth[i] else {
            return Err(format!("node {i} is not reachable from the root"));
        };
        match *n {
            FileNode::Split {
                feature,
                threshold,
                left,
            } => {
                // Children after their parent: the tree is acyclic and every walk ends.
                if left <= i || left + 1 >= nodes.len() || depth[left].is_some() {
                    return Err(format!("node {i}: child {left} out of order or range"));
                }
                if feature >= N_FEATURES || !threshold.is_finite() {
                    return Err(format!("node {i}: bad feature {feature} or threshold"));
                }
                depth[left] = Some(d + 1);
                depth[left + 1] = Some(d + 1);
                tree.nodes.push(Node {
                    threshold,
                    feature: feature as u32,
                    left: left as u32,
                    path: 0.0,
                });
                tree.sizes.push(0);
            }
            FileNode::Leaf {
                size,
                depth: stored,
            } => {
                if stored != d {
                    return Err(format!("node {i}: leaf depth {stored}, but it is at {d}"));
                }
                if d > MAX_DEPTH as usize {
                    return Err(format!("node {i}: leaf depth {d}, deeper than {MAX_DEPTH}"));
                }
                let size =
                    u32::try_from(size).map_err(|_| format!("node {i}: leaf size {size}"))?;
                let mut leaf = Node {
                    threshold: f32::INFINITY,
                    feature: 0,
                    left: i as u32,
                    path: 0.0,
                };
                leaf.path = (d as f64 + super::forest::c(size as usize)) as f32;
                tree.nodes.push(leaf);
                tree.sizes.push(size);
                tree.depth = tree.depth.max(d as u32);
            }
        }
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::forest::SplitMix64;

    fn model() -> Model {
        let mut rng = SplitMix64::new(9);
        let rows: Vec<FeatureVector> = (0..300)
            .map(|_| std::array::from_fn(|_| rng.unit() as f32))
            .collect();
        let params = TrainParams {
            trees: 20,
            sample_size: 64,
            seed: 5,
        };
        Model::train(&rows, params, Some(("a".into(), "b".into()))).unwrap()
    }

    #[test]
    fn json_round_trip_is_exact() {
        let m = model();
        let back = Model::from_json(&m.to_json(), Path::new("m.json")).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn damaged_files_are_refused_with_reasons() {
        let m = model();
        let mut v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        let p = Path::new("m.json");
        let refuse = |v: &serde_json::Value| Model::from_json(&v.to_string(), p).unwrap_err();

        let mut bad = v.clone();
        bad["version"] = 99.into();
        assert!(matches!(
            refuse(&bad),
            AnomalyError::Version {
                found: Some(99),
                ..
            }
        ));

        let mut bad = v.clone();
        bad["features"][0] = "bytes".into();
        assert!(matches!(refuse(&bad), AnomalyError::Features { .. }));

        let mut bad = v.clone();
        bad["format"] = "something-else".into();
        assert!(refuse(&bad)
            .to_string()
            .contains("not an ids2 anomaly model"));

        // A chain one level deeper than any tree a valid sample grows.
        let mut chain = Vec::new();
        for k in 0..=MAX_DEPTH as usize {
            let left = 2 * k + 1;
            chain
                .push(serde_json::json!({"split": {"feature": 0, "threshold": 0.5, "left": left}}));
            chain.push(serde_json::json!({"leaf": {"size": 1, "depth": k + 1}}));
        }
        chain.push(serde_json::json!({"leaf": {"size": 1, "depth": MAX_DEPTH + 1}}));
        let mut deep = v.clone();
        deep["forest"][0] = chain.into();
        let e = refuse(&deep).to_string();
        assert!(e.contains("deeper than 16"), "{e}");

        v["forest"][0][0]["split"]["left"] = 0.into();
        let e = refuse(&v).to_string();
        assert!(e.contains("tree 0: node 0"), "{e}");

        assert!(matches!(
            Model::from_json("{\"format\": ", p).unwrap_err(),
            AnomalyError::Parse { .. }
        ));
    }
}
