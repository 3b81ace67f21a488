//! Execution segments: `--segment K/N` gives each of N engine processes a disjoint,
//! deterministic share of the work, so that N machines together run one load test.
//!
//! Work is numbered: VUs `0..vus` (constant and ramping VUs) or iterations `0..` in
//! schedule order (arrival rate). Segment K owns the numbers `n` with `n % N == K - 1`:
//! every number belongs to exactly one segment, and a ramp that activates VUs in
//! number order activates them evenly across segments.

/// A `--segment` value that is not `K/N` with 1 <= K <= N.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--segment `{text}`: {problem}")]
pub struct SegmentError {
    pub text: String,
    pub problem: SegmentProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SegmentProblem {
    #[error("expected K/N, e.g. 1/4")]
    NotAFraction,
    #[error("K must be a whole number")]
    BadK,
    #[error("N must be a whole number")]
    BadN,
    #[error("need 1 <= K <= N")]
    OutOfRange,
}

/// This process's share: segment `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub index: u64,
    pub count: u64,
}

impl Segment {
    /// The whole test in one process.
    pub const WHOLE: Segment = Segment { index: 1, count: 1 };

    /// Parse `K/N` (1 <= K <= N).
    pub fn parse(text: &str) -> Result<Segment, SegmentError> {
        let fail = |problem| SegmentError {
            text: text.to_string(),
            problem,
        };
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| fail(SegmentProblem::NotAFraction))?;
        let index: u64 = k.trim().parse().map_err(|_| fail(SegmentProblem::BadK))?;
        let count: u64 = n.trim().parse().map_err(|_| fail(SegmentProblem::BadN))?;
        if count == 0 || index == 0 || index > count {
            return Err(fail(SegmentProblem::OutOfRange));
        }
        Ok(Segment { index, count })
    }

    /// Whether work number `n` belongs to this segment.
    pub fn owns(self, n: u64) -> bool {
        n % self.count == self.index - 1
    }

    /// How many of the numbers `0..total` this segment owns.
    pub fn share_of(self, total: u64) -> u64 {
        let first = self.index - 1;
        if total <= first {
            0
        } else {
            (total - first).div_ceil(self.count)
        }
    }

    /// The numbers in `0..total` this segment owns, ascending.
    pub fn numbers(self, total: u64) -> impl Iterator<Item = u64> {
        (self.index - 1..total).step_by(self.count as usize)
    }

    /// The owned numbers from `n` upwards (for open-ended sequences).
    pub fn numbers_from_zero(self) -> impl Iterator<Item = u64> {
        (self.index - 1..).step_by(self.count as usize)
    }
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            Segment::parse("2/3").unwrap(),
            Segment { index: 2, count: 3 }
        );
        for bad in ["0/3", "4/3", "1/0", "x/2", "3", "1/-2"] {
            assert!(Segment::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn segments_are_disjoint_and_cover_everything() {
        for count in 1..=7u64 {
            for total in [0u64, 1, 5, 6, 100, 10_001] {
                let mut owner = vec![0u32; total as usize];
                let mut shares = 0;
                for index in 1..=count {
                    let segment = Segment { index, count };
                    let numbers: Vec<u64> = segment.numbers(total).collect();
                    assert_eq!(numbers.len() as u64, segment.share_of(total));
                    assert!(numbers.iter().all(|&n| segment.owns(n)));
                    assert_eq!(
                        numbers,
                        segment
                            .numbers_from_zero()
                            .take_while(|&n| n < total)
                            .collect::<Vec<_>>()
                    );
                    shares += segment.share_of(total);
                    for n in numbers {
                        owner[n as usize] += 1;
                    }
                }
                assert!(owner.iter().all(|&c| c == 1), "N={count} total={total}");
                assert_eq!(shares, total);
            }
        }
    }

    #[test]
    fn shares_are_even() {
        let shares: Vec<u64> = (1..=3)
            .map(|index| Segment { index, count: 3 }.share_of(10))
            .collect();
        assert_eq!(shares, vec![4, 3, 3]);
    }
}
