//! What a load run's figures tell about the system under test beyond the figures
//! themselves: the result's `notes`, shown under the summary. For now one: connects that
//! waited on a SYN the kernel sent again, which otherwise read as a server slow to
//! connect.

use hdrhistogram::Histogram;

use super::metrics::LoadResult;

/// Linux sends a SYN again after 1 s without an answer (its initial retransmission
/// timeout), then after 3 s and 7 s; a connect waiting on it takes a second or more. A
/// connect counts as fast below half a second, and as a second or more from 990 ms
/// (the histogram's buckets are half a millisecond wide there).
const FAST_BELOW_MICROS: u64 = 490_000;
const RETRIED_FROM_MICROS: u64 = 990_000;

/// The notes on a result, each one line.
pub fn notes(result: &LoadResult) -> Vec<String> {
    let Ok(connects) = result.connect_time.histogram() else {
        return Vec::new();
    };
    dropped_syn(&connects).into_iter().collect()
}

/// Some connects fast, others a second or more, and none in the half second between:
/// the slow ones most likely waited on a SYN sent again. A server slow for other
/// reasons spreads its connect times over that half second.
fn dropped_syn(connects: &Histogram<u64>) -> Option<String> {
    let fast = connects.count_between(0, FAST_BELOW_MICROS - 1);
    let between = connects.count_between(FAST_BELOW_MICROS, RETRIED_FROM_MICROS - 1_000);
    let slow = connects.count_between(RETRIED_FROM_MICROS, u64::MAX);
    if fast == 0 || between > 0 || slow == 0 {
        return None;
    }
    Some(format!(
        "{slow} of {} connects took 1 s or more, the others under 0.5 s: most likely their \
         first SYN got no answer and the kernel sent it again after 1 s (then 3 s, 7 s). \
         Usually the server's accept queue was full as many connections opened at once: \
         raise its listen backlog (and net.core.somaxconn), or open the connections over a \
         ramp (`ramping-vus`).",
        connects.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connects(millis: &[u64]) -> Histogram<u64> {
        let mut histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for &ms in millis {
            histogram.record(ms * 1000).unwrap();
        }
        histogram
    }

    #[test]
    fn connects_of_a_second_or_more_beside_fast_ones_are_noted() {
        let mut times = vec![4; 95];
        times.extend([1000, 1010, 1500, 3005, 3020]);
        let note = dropped_syn(&connects(&times)).expect("a note");
        assert!(
            note.starts_with("5 of 100 connects took 1 s or more"),
            "{note}"
        );
    }

    #[test]
    fn fast_connects_or_a_slow_server_are_not_noted() {
        // All fast.
        assert_eq!(dropped_syn(&connects(&[3, 4, 5, 12, 400])), None);
        // Slow throughout: some in the half second before a second.
        assert_eq!(dropped_syn(&connects(&[200, 600, 800, 1005, 1100])), None);
        assert_eq!(dropped_syn(&connects(&[4, 985, 1005])), None);
        // All slow: a server that takes 2 s.
        assert_eq!(dropped_syn(&connects(&[2000, 2010])), None);
        assert_eq!(dropped_syn(&connects(&[])), None);
    }
}
