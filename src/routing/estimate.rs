//! The wait estimate a queued visitor is told: a range, learned. The model: a chat at
//! `position` waits for that many slots to free, and the department's online slots free at one
//! per mean handling time each: `position ÷ slots` mean handling times, the mean taken over the
//! department's recent tickets. The model's error is learned too: every ticket keeps the
//! estimate its visitor was given with the model's `position ÷ slots`, and the ratios of real
//! waits to that many of today's mean handling times, over recent tickets, scale the model — the
//! median gives the point, the 8th and 92nd percentiles the range. So a department whose model
//! runs long or short, or whose waits are widely spread, is corrected by its own record, and a
//! change in handling times does not make old errors wrong.

use serde::{Deserialize, Serialize};

/// Waits the model needs before its error is learned: until then, a range of ×0.5 to ×1.5.
pub const MIN_SAMPLES: usize = 20;
/// Handling times needed before their mean replaces the configured default.
pub const MIN_HANDLING: usize = 5;

/// What a queued visitor is told, and what the ticket keeps to measure it against the real wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WaitEstimate {
    /// The point estimate (the model scaled by its median error), seconds.
    pub secs: u32,
    /// The range the visitor sees, seconds.
    pub low_secs: u32,
    pub high_secs: u32,
    /// What the model said, in thousandths of the mean handling time (`position × 1000 ÷
    /// slots`): the learning compares real waits with that many of the current mean.
    pub handlings_milli: u32,
}

impl WaitEstimate {
    /// The range in whole minutes, each at least one ("about 3–6 min").
    pub fn minutes(&self) -> (u32, u32) {
        let low = self.low_secs.div_ceil(60).max(1);
        (low, self.high_secs.div_ceil(60).max(low))
    }

    /// The point in whole minutes, at least one.
    pub fn point_minutes(&self) -> u32 {
        self.secs.div_ceil(60).max(1)
    }
}

/// What a department has learned from its recent tickets.
#[derive(Clone, Debug, PartialEq)]
pub struct Learned {
    /// The mean handling time, seconds.
    pub handling_secs: f64,
    /// Real wait ÷ model wait: the 8th, 50th and 92nd percentiles.
    pub ratios: [f64; 3],
    /// How many waits the ratios come from (0: not learned yet).
    pub samples: usize,
}

impl Learned {
    /// From recent handling times and (real wait in seconds, the model's `handlings_milli`)
    /// pairs; `default_handling_secs` until there are enough handling times.
    pub fn from_samples(
        handling: &[f64],
        waits: &[(f64, u32)],
        default_handling_secs: f64,
    ) -> Self {
        let handling_secs = if handling.len() >= MIN_HANDLING {
            handling.iter().sum::<f64>() / handling.len() as f64
        } else {
            default_handling_secs
        };
        let mut ratios: Vec<f64> = waits
            .iter()
            .filter(|(_, milli)| *milli > 0)
            .map(|(real, milli)| real / (f64::from(*milli) / 1000.0 * handling_secs))
            .filter(|r| r.is_finite())
            .collect();
        if ratios.len() < MIN_SAMPLES {
            return Self {
                handling_secs,
                ratios: [0.5, 1.0, 1.5],
                samples: 0,
            };
        }
        ratios.sort_by(f64::total_cmp);
        Self {
            handling_secs,
            ratios: [
                quantile(&ratios, 0.08),
                quantile(&ratios, 0.5),
                quantile(&ratios, 0.92),
            ],
            samples: ratios.len(),
        }
    }

    /// The estimate for a chat at `position` with `slots` online slots in the department.
    pub fn estimate(&self, position: u32, slots: u32) -> WaitEstimate {
        let handlings = f64::from(position) / f64::from(slots.max(1));
        let model = handlings * self.handling_secs;
        let at = |r: f64| (model * r).round().clamp(0.0, f64::from(u32::MAX)) as u32;
        WaitEstimate {
            secs: at(self.ratios[1]),
            low_secs: at(self.ratios[0]),
            high_secs: at(self.ratios[2]).max(at(self.ratios[0])),
            handlings_milli: (handlings * 1000.0).round().clamp(1.0, f64::from(u32::MAX)) as u32,
        }
    }
}

/// The `q` quantile of sorted values (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// How well past estimates did: the median of |point − real| ÷ real, and the share of real
/// waits inside the range. `(real, estimate)` pairs of chats that were assigned.
pub fn accuracy(pairs: &[(f64, WaitEstimate)]) -> (f64, f64) {
    if pairs.is_empty() {
        return (0.0, 0.0);
    }
    let mut errors: Vec<f64> = pairs
        .iter()
        .map(|(real, e)| (f64::from(e.secs) - real).abs() / real.max(1.0))
        .collect();
    errors.sort_by(f64::total_cmp);
    let covered = pairs.iter().filter(|(real, e)| covers(e, *real)).count();
    (quantile(&errors, 0.5), covered as f64 / pairs.len() as f64)
}

/// Whether a real wait fell inside the estimate's range, to the second.
pub fn covers(e: &WaitEstimate, real: f64) -> bool {
    real >= f64::from(e.low_secs) - 1.0 && real <= f64::from(e.high_secs) + 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Until enough waits are known, the model with a wide range; then the range and point
    /// follow the record: a model that ran twice too long is halved.
    #[test]
    fn the_range_learns_from_real_waits() {
        let fresh = Learned::from_samples(&[], &[], 300.0);
        let e = fresh.estimate(2, 4);
        assert_eq!(
            (e.handlings_milli, e.secs, e.low_secs, e.high_secs),
            (500, 150, 75, 225)
        );
        assert_eq!(e.minutes(), (2, 4));
        let handling = vec![120.0; 10];
        // The model said 100 s of today's 120 s handling: 0.833 handlings.
        let waits: Vec<(f64, u32)> = (0..40).map(|i| (50.0 + f64::from(i % 5), 833)).collect();
        let learned = Learned::from_samples(&handling, &waits, 300.0);
        assert_eq!(learned.handling_secs, 120.0);
        assert_eq!(learned.samples, 40);
        let e = learned.estimate(1, 1);
        assert_eq!(e.handlings_milli, 1000);
        assert_eq!(e.secs, 62, "the median ratio, 0.52");
        assert!(e.low_secs <= e.secs && e.secs <= e.high_secs);
        let (error, coverage) = accuracy(&[(62.0, e), (124.0, e)]);
        assert!(coverage == 0.5 && error > 0.0);
    }
}
