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
//! Trees grow (and are stored in the model file) as one flat node array each, both children of
//! a split adjacent. For scoring, the forest also keeps every tree laid out as a complete
//! binary tree of the forest's depth in breadth-first order: the root is slot 1 and the
//! children of slot `i` are `2i` and `2i + 1`, so a split is 8 bytes (threshold, feature) with
//! no child pointer, and a leaf above the bottom becomes splits that always go left
//! (threshold +∞) down to bottom slots carrying its path length. Every walk is then exactly
//! `depth` steps of `i = 2i + (x[f] >= t)`, with no data-dependent branch, and all trees'
//! splits sit in one array (about 2 KiB per tree at 256 samples, plus 1 KiB of path lengths:
//! a 100-tree forest stays in the L2 cache). [`Forest::score_batch`] walks [`LANES`] flows
//! through a tree at once so their independent chains of loads overlap; that, not the
//! arithmetic, is what makes scoring fast, since a walk is a chain of dependent memory loads.
//! Path lengths are summed in tree order on every path, so single and batch scores are equal
//! to the bit, and equal to walking the grown trees node by node.

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
    /// The nodes, root first.
    pub nodes: Vec<Node>,
    /// Per node: the training points in it when it is a leaf, 0 for splits (for the file).
    pub sizes: Vec<u32>,
    /// Longest root-to-leaf path.
    pub depth: u32,
}

/// A split of a laid-out tree: `x[feature] >= threshold` goes to the right child.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Split {
    threshold: f32,
    feature: u32,
}

/// The slots under a leaf that sits above the bottom: nothing is `>= +∞`, so walks go left.
const ALWAYS_LEFT: Split = Split {
    threshold: f32::INFINITY,
    feature: 0,
};

/// Every tree as a complete binary tree of the same depth, for scoring (see the module doc).
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    /// Steps of every walk: the deepest leaf of any tree.
    depth: u32,
    /// Per tree, `2^depth` slots: one unused, then the `2^depth - 1` splits in breadth-first
    /// order from slot 1 (children of `i` at `2i` and `2i + 1`). The stride is a power of two,
    /// so a walk indexes with a mask (no bounds check).
    splits: Vec<Split>,
    /// Per tree, the path lengths of its `2^depth` bottom slots, left to right.
    paths: Vec<f32>,
}

impl Layout {
    fn new(trees: &[Tree]) -> Self {
        let depth = trees.iter().map(|t| t.depth).max().unwrap_or(0);
        let width = 1usize << depth;
        let mut layout = Self {
            depth,
            splits: vec![ALWAYS_LEFT; width * trees.len()],
            paths: vec![0.0; width * trees.len()],
        };
        let slots = layout
            .splits
            .chunks_exact_mut(width)
            .zip(layout.paths.chunks_exact_mut(width));
        for (tree, (splits, paths)) in trees.iter().zip(slots) {
            place(tree, 0, 1, 0, depth, splits, paths);
        }
        layout
    }

    /// Per tree: its splits and its bottom path lengths.
    fn trees(&self) -> impl Iterator<Item = (&[Split], &[f32])> {
        let width = 1usize << self.depth;
        self.splits
            .chunks_exact(width)
            .zip(self.paths.chunks_exact(width))
    }
}

/// Puts `tree.nodes[node]`, at `level`, into breadth-first slot `slot` (the root is 1) of a
/// complete tree of `depth`, and its subtree below it.
fn place(
    tree: &Tree,
    node: usize,
    slot: usize,
    level: u32,
    depth: u32,
    splits: &mut [Split],
    paths: &mut [f32],
) {
    let n = tree.nodes[node];
    if n.is_leaf() {
        // The bottom slots under this one; the splits between stay ALWAYS_LEFT, so only the
        // first is reached, but all carry the path length.
        let span = 1usize << (depth - level);
        let first = (slot - (1usize << level)) * span;
        paths[first..first + span].fill(n.path);
    } else {
        splits[slot] = Split {
            threshold: n.threshold,
            feature: n.feature,
        };
        let left = n.left as usize;
        place(tree, left, 2 * slot, level + 1, depth, splits, paths);
        place(
            tree,
            left + 1,
            2 * slot + 1,
            level + 1,
            depth,
            splits,
            paths,
        );
    }
}

/// Every tree's walk for [`LANES`] flows, adding each tree's path length to `total` in tree
/// order. (A depth fixed at compile time, unrolling the walk, measured slower: more code, and
/// the lane indices no longer stay in registers.)
fn walk_lanes(layout: &Layout, lanes: &[Padded; LANES], total: &mut [f64; LANES]) {
    for (splits, paths) in layout.trees() {
        let mask = splits.len() - 1;
        let mut at = [1usize; LANES];
        for _ in 0..layout.depth {
            for (i, x) in at.iter_mut().zip(lanes) {
                let s = splits[*i & mask];
                let right = x[s.feature as usize & PAD_MASK] >= s.threshold;
                *i = 2 * *i + usize::from(right);
            }
        }
        for (t, i) in total.iter_mut().zip(&at) {
            *t += f64::from(paths[*i & mask]);
        }
    }
}

/// One walk down a laid-out tree: `depth` steps, then the bottom slot's path length.
#[inline(always)]
fn walk(splits: &[Split], paths: &[f32], depth: u32, x: &Padded) -> f32 {
    let mask = splits.len() - 1;
    let mut i = 1usize;
    for _ in 0..depth {
        let s = splits[i & mask];
        i = 2 * i + usize::from(x[s.feature as usize & PAD_MASK] >= s.threshold);
    }
    // After `depth` steps `i` is in [2^depth, 2^(depth+1)): bottom slot `i - 2^depth`.
    paths[i & mask]
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
    layout: Layout,
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

/// Deepest tree: the height limit of the largest sample the config allows (65536 = 2^16). The
/// laid-out forest takes `2^depth` slots per tree, so deeper trees (from a damaged model file)
/// are refused when loaded.
pub(super) const MAX_DEPTH: u32 = 16;

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
        let height_limit = ((psi as f64).log2().ceil() as usize).min(MAX_DEPTH as usize);
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
                sizes: vec![0],
                depth: 0,
            };
            grow(rows, &mut sample, 0, 0, height_limit, &mut tree, &mut rng);
            built.push(tree);
        }
        Self::from_parts(built, psi)
    }

    pub(super) fn from_parts(trees: Vec<Tree>, sample_size: usize) -> Self {
        Self {
            layout: Layout::new(&trees),
            trees,
            sample_size,
            norm: c(sample_size).max(f64::MIN_POSITIVE),
        }
    }

    /// The anomaly score in (0, 1].
    pub fn score(&self, x: &FeatureVector) -> f64 {
        let x = pad(x);
        let depth = self.layout.depth;
        let mut total = 0f64;
        for (splits, paths) in self.layout.trees() {
            total += f64::from(walk(splits, paths, depth, &x));
        }
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
            walk_lanes(&self.layout, &lanes, &mut total);
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

    /// The laid-out trees score exactly as walking the grown trees node by node does (what
    /// `explain` does), for forests of uneven depth and for probes inside, outside and on the
    /// edges of the training range.
    #[test]
    fn layout_scores_equal_node_walks() {
        for (n, trees, sample, seed) in [(3, 4, 256, 1), (300, 20, 64, 2), (2000, 50, 256, 3)] {
            let mut rows = two_clusters(n, seed);
            rows.extend(cluster(n / 3, seed + 10));
            let forest = Forest::fit(&rows, trees, sample, seed);
            let depths: Vec<u32> = forest.trees.iter().map(|t| t.depth).collect();
            assert!(depths.iter().all(|d| *d <= forest.layout.depth));
            let mut probes = cluster(200, seed + 20);
            probes.extend(two_clusters(50, seed + 30));
            probes.push([f32::INFINITY; N_FEATURES]);
            probes.push([f32::NEG_INFINITY; N_FEATURES]);
            probes.push([0.0; N_FEATURES]);
            let mut batch = Vec::new();
            forest.score_batch(&probes, &mut batch);
            for (x, b) in probes.iter().zip(&batch) {
                let (walked, _) = forest.explain(x);
                assert_eq!(forest.score(x), walked, "{x:?}");
                assert_eq!(*b, walked);
            }
        }
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
