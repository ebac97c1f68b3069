//! Isolation Forest (Liu, Ting & Zhou, 2008), written here rather than taken from a crate.
//!
//! The crates on offer (`extended-isolation-forest`, `isolation_forest`) draw from `rand`'s
//! thread RNG or pin an old `rand`, have had no release since 2022, and cannot say which
//! features isolated a point — which the shipped anomaly events carry. The algorithm is short:
//! each tree splits a random subsample on a random feature at a uniform random point between
//! that feature's minimum and maximum until a point stands alone or the height limit
//! `ceil(log2(sample))` is reached; a flow's score is `2^(-E[h(x)] / c(sample))`, where `h` is
//! its path length (plus `c(leaf size)` for leaves that were not split further). Scores near 1
//! are isolated quickly (anomalous); around 0.5 and below are ordinary.
//!
//! Nodes live in one flat array per tree with both children adjacent. A leaf points at itself
//! with an infinite threshold, so every walk runs exactly the tree's depth in steps with no
//! data-dependent branch; [`Forest::score_batch`] walks several flows through a tree at once so
//! their (independent) chains of loads overlap. That, not the arithmetic, is what makes scoring
//! fast: a walk is a chain of dependent memory loads.

use super::features::{FeatureVector, N_FEATURES};

/// One node (16 bytes). A split sends `x[feature] >= threshold` to `left + 1`, else to `left`.
/// A leaf has an infinite threshold and `left` = its own index; `path` is its depth plus
/// `c(size)`, the expected path length still to go among the points it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Node {
    pub threshold: f32,
    pub feature: u32,
    pub left: u32,
    pub path: f32,
}

impl Node {
    pub fn is_leaf(&self) -> bool {
        self.threshold == f32::INFINITY
    }

    fn leaf(at: usize, depth: usize, size: usize) -> Self {
        Node {
            threshold: f32::INFINITY,
            feature: 0,
            left: at as u32,
            path: (depth as f64 + c(size)) as f32,
        }
    }
}

/// One isolation tree, root at index 0.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Tree {
    /// The nodes, then unreachable self-pointing leaves up to a power of two, so a walk can
    /// index with `i & (len - 1)` and the compiler drops the bounds check.
    pub nodes: Vec<Node>,
    /// Nodes before the padding.
    pub len: usize,
    /// Per node: the training points in it when it is a leaf, 0 for splits (for the file).
    pub sizes: Vec<u32>,
    /// Longest root-to-leaf path: the number of steps every walk takes.
    pub depth: u32,
}

impl Tree {
    /// Pads `nodes` to a power of two (see the field).
    pub fn seal(&mut self) {
        self.len = self.nodes.len();
        let padded = self.len.next_power_of_two();
        for at in self.len..padded {
            self.nodes.push(Node::leaf(at, 0, 0));
            self.sizes.push(0);
        }
    }

    #[inline]
    fn walk(&self, x: &Padded) -> f32 {
        let mask = self.nodes.len() - 1;
        let mut i = 0usize;
        for _ in 0..self.depth {
            let n = self.nodes[i & mask];
            i = n.left as usize + usize::from(x[n.feature as usize & PAD_MASK] >= n.threshold);
        }
        self.nodes[i & mask].path
    }
}

/// A feature vector padded to a power of two, indexed with `& PAD_MASK` (no bounds check).
type Padded = [f32; 32];
const PAD_MASK: usize = 31;
const _: () = assert!(N_FEATURES <= 32);

fn pad(x: &FeatureVector) -> Padded {
    let mut p = [0f32; 32];
    p[..N_FEATURES].copy_from_slice(x);
    p
}

/// A trained forest.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    pub(super) trees: Vec<Tree>,
    /// Subsample size each tree grew from (the normaliser `c(sample)` depends on it).
    pub(super) sample_size: usize,
    norm: f64,
}

/// Path length contribution of an unsplit leaf of `n` points: the average path length of an
/// unsuccessful binary-search-tree search, `c(n) = 2H(n-1) - 2(n-1)/n`.
pub fn c(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Flows walked through a tree together by [`Forest::score_batch`].
const LANES: usize = 16;

/// SplitMix64: a tiny, well-mixed, seedable generator; training is reproducible from the seed.
#[derive(Debug, Clone)]
pub(super) struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` (Lemire's multiply-shift; the bias is below 2^-32 for our `n`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

impl Forest {
    /// Grows `trees` trees, each from `sample_size` rows drawn without replacement (all rows
    /// when there are fewer). `rows` must not be empty.
    pub fn fit(rows: &[FeatureVector], trees: usize, sample_size: usize, seed: u64) -> Self {
        assert!(!rows.is_empty(), "a forest needs at least one row");
        let psi = sample_size.min(rows.len()).max(1);
        let height_limit = (psi as f64).log2().ceil() as usize;
        let mut rng = SplitMix64::new(seed);
        let mut indices: Vec<usize> = (0..rows.len()).collect();
        let mut built = Vec::with_capacity(trees);
        for _ in 0..trees {
            // Partial Fisher–Yates: the first `psi` entries become this tree's sample.
            for i in 0..psi {
                let j = i + rng.below(indices.len() - i);
                indices.swap(i, j);
            }
            let mut sample: Vec<usize> = indices[..psi].to_vec();
            let mut tree = Tree {
                nodes: vec![Node::leaf(0, 0, 0)],
                len: 1,
                sizes: vec![0],
                depth: 0,
            };
            grow(rows, &mut sample, 0, 0, height_limit, &mut tree, &mut rng);
            tree.seal();
            built.push(tree);
        }
        Self::from_parts(built, psi)
    }

    pub(super) fn from_parts(trees: Vec<Tree>, sample_size: usize) -> Self {
        Self {
            trees,
            sample_size,
            norm: c(sample_size).max(f64::MIN_POSITIVE),
        }
    }

    /// The anomaly score in (0, 1].
    pub fn score(&self, x: &FeatureVector) -> f64 {
        let x = pad(x);
        let total: f64 = self.trees.iter().map(|t| f64::from(t.walk(&x))).sum();
        self.to_score(total)
    }

    /// Scores of many flows (tree by tree, [`LANES`] flows at a time); equal to [`Forest::score`]
    /// of each.
    pub fn score_batch(&self, xs: &[FeatureVector], out: &mut Vec<f64>) {
        out.clear();
        for chunk in xs.chunks(LANES) {
            // A short last chunk walks zero rows in its spare lanes: a fixed trip count
            // lets the compiler unroll the lane loop.
            let mut lanes = [[0f32; 32]; LANES];
            for (lane, x) in lanes.iter_mut().zip(chunk) {
                *lane = pad(x);
            }
            let mut total = [0f64; LANES];
            for tree in &self.trees {
                let mask = tree.nodes.len() - 1;
                let mut at = [0usize; LANES];
                for _ in 0..tree.depth {
                    for (i, x) in at.iter_mut().zip(&lanes) {
                        let n = tree.nodes[*i & mask];
                        let right = x[n.feature as usize & PAD_MASK] >= n.threshold;
                        *i = n.left as usize + usize::from(right);
                    }
                }
                for (t, i) in total.iter_mut().zip(&at[..chunk.len()]) {
                    *t += f64::from(tree.nodes[*i & mask].path);
                }
            }
            out.extend(total[..chunk.len()].iter().map(|t| self.to_score(*t)));
        }
    }

    /// The score and, per feature, how much it shortened this point's paths: every split on a
    /// tree's path is credited `1 / h` (h = that tree's path length), so features that isolate
    /// the point near the root get the most credit. Credits are normalised to sum to 1.
    pub fn explain(&self, x: &FeatureVector) -> (f64, [f64; N_FEATURES]) {
        let mut credit = [0.0; N_FEATURES];
        let mut used = Vec::with_capacity(16);
        let mut total = 0.0;
        for tree in &self.trees {
            used.clear();
            let mut i = 0usize;
            while !tree.nodes[i].is_leaf() {
                let n = tree.nodes[i];
                used.push(n.feature as usize);
                i = n.left as usize + usize::from(x[n.feature as usize] >= n.threshold);
            }
            let h = f64::from(tree.nodes[i].path);
            total += h;
            let share = 1.0 / h.max(1.0);
            for &f in &used {
                credit[f] += share;
            }
        }
        let sum: f64 = credit.iter().sum();
        if sum > 0.0 {
            credit.iter_mut().for_each(|v| *v /= sum);
        }
        (self.to_score(total), credit)
    }

    fn to_score(&self, total_path: f64) -> f64 {
        let mean = total_path / self.trees.len().max(1) as f64;
        (-mean / self.norm).exp2()
    }

    /// Number of trees.
    pub fn len(&self) -> usize {
        self.trees.len()
    }

    /// True for a forest without trees (never produced by [`Forest::fit`]).
    pub fn is_empty(&self) -> bool {
        self.trees.is_empty()
    }
}

/// Fills `tree.nodes[at]` from `sample`, recursing into freshly appended children.
fn grow(
    rows: &[FeatureVector],
    sample: &mut [usize],
    at: usize,
    depth: usize,
    limit: usize,
    tree: &mut Tree,
    rng: &mut SplitMix64,
) {
    let make_leaf = |tree: &mut Tree| {
        tree.nodes[at] = Node::leaf(at, depth, sample.len());
        tree.sizes[at] = sample.len() as u32;
        tree.depth = tree.depth.max(depth as u32);
    };
    if depth >= limit || sample.len() <= 1 {
        make_leaf(tree);
        return;
    }
    // Only features that vary within this node can split it.
    let mut ranges = [(0f32, 0f32); N_FEATURES];
    let mut splittable = [0usize; N_FEATURES];
    let mut n_split = 0;
    for (f, range) in ranges.iter_mut().enumerate() {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &r in sample.iter() {
            let v = rows[r][f];
            lo = lo.min(v);
            hi = hi.max(v);
        }
        *range = (lo, hi);
        if hi > lo {
            splittable[n_split] = f;
            n_split += 1;
        }
    }
    if n_split == 0 {
        make_leaf(tree);
        return;
    }
    let feature = splittable[rng.below(n_split)];
    let (lo, hi) = ranges[feature];
    // Strictly inside (lo, hi], so both sides get at least one point.
    let mut threshold = (f64::from(lo) + rng.unit() * f64::from(hi - lo)) as f32;
    if threshold <= lo {
        threshold = hi;
    }
    let mut split = 0;
    for i in 0..sample.len() {
        if rows[sample[i]][feature] < threshold {
            sample.swap(i, split);
            split += 1;
        }
    }
    let left = tree.nodes.len();
    tree.nodes.push(Node::leaf(left, 0, 0));
    tree.nodes.push(Node::leaf(left + 1, 0, 0));
    tree.sizes.extend([0, 0]);
    tree.nodes[at] = Node {
        threshold,
        feature: feature as u32,
        left: left as u32,
        path: 0.0,
    };
    let (l, r) = sample.split_at_mut(split);
    grow(rows, l, left, depth + 1, limit, tree, rng);
    grow(rows, r, left + 1, depth + 1, limit, tree, rng);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(n: usize, seed: u64) -> Vec<FeatureVector> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| std::array::from_fn(|_| (rng.unit() as f32) - 0.5))
            .collect()
    }

    /// Feature 0 is noise, feature 3 has two clusters (around -10 and +10), the rest are
    /// constant: a point between the clusters is the outlier.
    fn two_clusters(n: usize, seed: u64) -> Vec<FeatureVector> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|i| {
                let mut x = [0.0f32; N_FEATURES];
                x[0] = rng.unit() as f32 - 0.5;
                x[3] = rng.unit() as f32 - 0.5;
                x[3] += if i % 2 == 0 { 10.0 } else { -10.0 };
                x
            })
            .collect()
    }

    #[test]
    fn c_matches_the_paper() {
        assert_eq!(c(1), 0.0);
        assert_eq!(c(2), 1.0);
        // c(256) ≈ 10.24 (2·H(255) − 2·255/256)
        assert!((c(256) - 10.2448).abs() < 1e-3, "{}", c(256));
    }

    #[test]
    fn outliers_score_higher_than_inliers() {
        let rows = two_clusters(2000, 1);
        let forest = Forest::fit(&rows, 100, 256, 7);
        let mut inlier = [0.0f32; N_FEATURES];
        inlier[3] = 10.0;
        let outlier = [0.0f32; N_FEATURES];
        let (si, so) = (forest.score(&inlier), forest.score(&outlier));
        assert!(si < 0.5, "inlier {si}");
        assert!(so > si + 0.05, "outlier {so}, inlier {si}");
        let (explained, credit) = forest.explain(&outlier);
        assert_eq!(explained, so);
        let top = (0..N_FEATURES)
            .max_by(|a, b| credit[*a].total_cmp(&credit[*b]))
            .unwrap();
        assert_eq!(top, 3, "{credit:?}");
        assert!((credit.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(
            credit
                .iter()
                .enumerate()
                .all(|(f, c)| *c == 0.0 || f == 0 || f == 3),
            "constant features never split: {credit:?}"
        );
    }

    #[test]
    fn batch_scores_equal_single_scores() {
        let rows = two_clusters(1000, 3);
        let forest = Forest::fit(&rows, 30, 128, 11);
        let probe = cluster(21, 4);
        let mut batch = Vec::new();
        forest.score_batch(&probe, &mut batch);
        let single: Vec<f64> = probe.iter().map(|x| forest.score(x)).collect();
        assert_eq!(batch, single);
    }

    #[test]
    fn same_seed_same_forest_other_seed_differs() {
        let rows = cluster(500, 2);
        assert_eq!(Forest::fit(&rows, 10, 64, 3), Forest::fit(&rows, 10, 64, 3));
        assert_ne!(Forest::fit(&rows, 10, 64, 3), Forest::fit(&rows, 10, 64, 4));
    }

    #[test]
    fn small_and_constant_inputs() {
        let forest = Forest::fit(&[[1.0; N_FEATURES]; 3], 5, 256, 0);
        assert_eq!(forest.sample_size, 3);
        // Identical points cannot be split: every tree is one leaf of c(3).
        assert!(forest
            .trees
            .iter()
            .all(|t| t.nodes.len() == 1 && t.depth == 0));
        let s = forest.score(&[1.0; N_FEATURES]);
        assert!((s - 0.5).abs() < 1e-6, "{s}");
        let single = Forest::fit(&[[0.0; N_FEATURES]], 2, 256, 0);
        assert!(single.score(&[9.0; N_FEATURES]).is_finite());
    }
}
