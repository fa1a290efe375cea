//! A mergeable latency sketch with bounded relative error (log-spaced buckets).

use std::sync::OnceLock;

/// Relative accuracy: a reported quantile is within 1% of a value in the data.
const GAMMA: f64 = 1.02;

/// Quantiles of positive values (microseconds), mergeable across edges and windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    zeros: u64,
    /// Non-empty buckets, sorted by bucket, each once. A sorted vector, not a tree: an edge
    /// has tens of buckets, adding is a binary search in one cache line or two, and merging
    /// two sketches is one linear pass.
    buckets: Vec<(i32, u64)>,
    count: u64,
}

/// Values below this have their bucket looked up, not computed (most latencies, in µs).
const TABLE: usize = 1 << 16;

fn bucket(v: u64) -> i32 {
    static SMALL: OnceLock<Box<[u16]>> = OnceLock::new();
    match usize::try_from(v) {
        Ok(i) if i < TABLE => {
            let t = SMALL.get_or_init(|| (0..TABLE as u64).map(|v| log_bucket(v) as u16).collect());
            i32::from(t[i])
        }
        _ => log_bucket(v),
    }
}

/// The bucket by definition (the table holds exactly these for small values).
fn log_bucket(v: u64) -> i32 {
    if v == 0 {
        return 0;
    }
    ((v as f64).ln() / GAMMA.ln()).ceil() as i32
}

/// Adds `n` to bucket `b` of a sorted bucket list.
fn put(buckets: &mut Vec<(i32, u64)>, b: i32, n: u64) {
    match buckets.binary_search_by_key(&b, |(k, _)| *k) {
        Ok(i) => buckets[i].1 = buckets[i].1.saturating_add(n),
        Err(i) => buckets.insert(i, (b, n)),
    }
}

fn value(b: i32) -> u64 {
    // The midpoint of the bucket (GAMMA^(b-1), GAMMA^b] keeps the error symmetric.
    let hi = GAMMA.powi(b);
    (hi * 2.0 / (1.0 + GAMMA)).round() as u64
}

impl Sketch {
    /// Adds a value.
    pub fn add(&mut self, v: u64) {
        // Saturating: the sketch may hold counts merged from a store file.
        self.count = self.count.saturating_add(1);
        if v == 0 {
            self.zeros = self.zeros.saturating_add(1);
        } else {
            put(&mut self.buckets, bucket(v), 1);
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        // Saturating: a sketch read back from a store is not ours to trust.
        self.count = self.count.saturating_add(other.count);
        self.zeros = self.zeros.saturating_add(other.zeros);
        if other.buckets.is_empty() {
            return;
        }
        // A few buckets (a rollup row's) go in place; many, in one linear pass.
        if other.buckets.len() <= 16 {
            for (b, n) in &other.buckets {
                put(&mut self.buckets, *b, *n);
            }
            return;
        }
        let (x, y) = (&self.buckets, &other.buckets);
        let mut out = Vec::with_capacity(x.len() + y.len());
        let (mut i, mut j) = (0, 0);
        while let (Some(&a), Some(&b)) = (x.get(i), y.get(j)) {
            match a.0.cmp(&b.0) {
                std::cmp::Ordering::Less => {
                    out.push(a);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(b);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    out.push((a.0, a.1.saturating_add(b.1)));
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend_from_slice(x.get(i..).unwrap_or_default());
        out.extend_from_slice(y.get(j..).unwrap_or_default());
        self.buckets = out;
    }

    /// The bucket a positive value falls in (`None` for 0, which is counted apart). A store
    /// that keeps sketches as bucket counts (ClickHouse's `sumMap` of bucket → count) computes
    /// the bucket here, so its sketches merge exactly like these.
    pub fn bucket_of(v: u64) -> Option<i32> {
        (v > 0).then(|| bucket(v))
    }

    /// A sketch from its parts: the count of zeros and bucket → count pairs (repeated
    /// buckets add up). Counts saturate, so parts read back from a store cannot overflow.
    pub fn from_parts(zeros: u64, buckets: impl IntoIterator<Item = (i32, u64)>) -> Sketch {
        let mut parts: Vec<(i32, u64)> = buckets.into_iter().filter(|(_, n)| *n != 0).collect();
        // Sorted once, repeats folded in place: linear in what was read, whatever its order.
        parts.sort_unstable_by_key(|(b, _)| *b);
        parts.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = kept.1.saturating_add(later.1);
            }
            same
        });
        let count = parts.iter().fold(zeros, |c, (_, n)| c.saturating_add(*n));
        Sketch {
            zeros,
            buckets: parts,
            count,
        }
    }

    /// The count of zeros and the non-empty buckets, in bucket order.
    pub fn parts(&self) -> (u64, impl Iterator<Item = (i32, u64)> + '_) {
        (self.zeros, self.buckets.iter().copied())
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q`-quantile (0 ≤ q ≤ 1); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * (self.count - 1) as f64).round() as u64).saturating_add(1);
        if rank <= self.zeros {
            return 0;
        }
        let mut seen = self.zeros;
        for (b, n) in &self.buckets {
            seen = seen.saturating_add(*n);
            if seen >= rank {
                return value(*b);
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_table_is_the_definition() {
        for v in (0..TABLE as u64 + 3).chain([u64::MAX, 1 << 40]) {
            assert_eq!(bucket(v), log_bucket(v), "{v}");
        }
    }

    proptest! {
        #[test]
        fn quantiles_are_within_two_percent(mut v in proptest::collection::vec(1u64..10_000_000, 1..500), q in 0.0f64..1.0) {
            let mut s = Sketch::default();
            for x in &v {
                s.add(*x);
            }
            v.sort_unstable();
            let exact = v[((q * (v.len() - 1) as f64).round()) as usize] as f64;
            let got = s.quantile(q) as f64;
            prop_assert!((got - exact).abs() <= exact * 0.02 + 1.0, "q={} exact={} got={}", q, exact, got);
        }

        #[test]
        fn merge_equals_adding_everything(a in proptest::collection::vec(0u64..1_000_000, 0..100), b in proptest::collection::vec(0u64..1_000_000, 0..100)) {
            let mut sa = Sketch::default();
            let mut sb = Sketch::default();
            let mut all = Sketch::default();
            for x in &a { sa.add(*x); all.add(*x); }
            for x in &b { sb.add(*x); all.add(*x); }
            sa.merge(&sb);
            prop_assert_eq!(sa, all);
        }

        #[test]
        fn parts_rebuild_the_sketch(v in proptest::collection::vec(0u64..10_000_000, 0..200)) {
            let mut s = Sketch::default();
            let mut zeros = 0;
            let mut buckets = Vec::new();
            for x in &v {
                s.add(*x);
                match Sketch::bucket_of(*x) {
                    Some(b) => buckets.push((b, 1)),
                    None => zeros += 1,
                }
            }
            let (z, parts) = s.parts();
            prop_assert_eq!(Sketch::from_parts(z, parts.collect::<Vec<_>>()), s.clone());
            prop_assert_eq!(Sketch::from_parts(zeros, buckets), s);
        }
    }
}
