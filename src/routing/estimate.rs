//! The wait estimate a queued visitor is told: a range, learned. The model: a chat at
//! `position` waits for that many slots of the department to free. How fast they free now
//! depends on how long their chats have run: each busy slot frees at one over its chat's
//! expected remaining time, read from the department's recent handling times (the mean of what
//! is left of the recorded chats that ran longer). So the first `slots` positions wait
//! `position ÷ rate`; later ones, once every slot has turned over, one more mean handling time
//! per `slots` chats. With handling times not yet known, every chat is expected to need a whole
//! mean handling time still (memoryless), which is `position ÷ slots` mean handling times.
//!
//! The model's error is learned too: every ticket keeps the estimate its visitor was given with
//! the model's wait in mean handling times, and the ratios of real waits to that many of
//! today's mean handling times, over recent tickets, scale the model — the median gives the
//! point, the 8th and 92nd percentiles the range. So a department whose model runs long or
//! short, or whose waits are widely spread, is corrected by its own record, and a change in
//! handling times does not make old errors wrong.

use serde::{Deserialize, Serialize};

use crate::model::{AgentState, Millis};

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

/// A department's online slots as the estimate sees them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Slots {
    /// How many chats its online, present agents can hold at once.
    pub count: u32,
    /// How many of them are expected to free per second now (`Learned::slots`).
    pub rate: f64,
}

/// What a department has learned from its recent tickets.
#[derive(Clone, Debug, PartialEq)]
pub struct Learned {
    /// The mean handling time, seconds.
    pub handling_secs: f64,
    /// The recent handling times, ascending, and the mean of each suffix (`tail_means[i]`:
    /// the mean of `sorted[i..]`): what is left of a chat that has run a while. Empty until
    /// `MIN_HANDLING` are known.
    sorted: Vec<f64>,
    tail_means: Vec<f64>,
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
        let mut sorted: Vec<f64> = handling
            .iter()
            .copied()
            .filter(|h| h.is_finite() && *h >= 0.0)
            .collect();
        if sorted.len() < MIN_HANDLING {
            sorted.clear();
        }
        sorted.sort_by(f64::total_cmp);
        let mut tail_means = vec![0.0; sorted.len()];
        let mut sum = 0.0;
        for (i, h) in sorted.iter().enumerate().rev() {
            sum += h;
            tail_means[i] = sum / (sorted.len() - i) as f64;
        }
        let handling_secs = tail_means
            .first()
            .copied()
            .unwrap_or(default_handling_secs)
            .max(1.0);
        let mut ratios: Vec<f64> = waits
            .iter()
            .filter(|(_, milli)| *milli > 0)
            .map(|(real, milli)| real / (f64::from(*milli) / 1000.0 * handling_secs))
            .filter(|r| r.is_finite())
            .collect();
        if ratios.len() < MIN_SAMPLES {
            return Self {
                handling_secs,
                sorted,
                tail_means,
                ratios: [0.5, 1.0, 1.5],
                samples: 0,
            };
        }
        ratios.sort_by(f64::total_cmp);
        Self {
            handling_secs,
            sorted,
            tail_means,
            ratios: [
                quantile(&ratios, 0.08),
                quantile(&ratios, 0.5),
                quantile(&ratios, 0.92),
            ],
            samples: ratios.len(),
        }
    }

    /// How long a chat that has run `age_secs` is expected to run still: the mean of what is
    /// left of the recorded chats that ran longer. Past the last few recorded, the tail is
    /// taken as memoryless at its last known mean; with none recorded, a whole mean handling
    /// time. Never less than a tenth of one: a chat is not expected to end the moment it is
    /// looked at.
    pub fn remaining_secs(&self, age_secs: f64) -> f64 {
        let n = self.sorted.len();
        if n < MIN_HANDLING {
            return self.handling_secs;
        }
        let i = self.sorted.partition_point(|h| *h <= age_secs);
        let left = if n - i >= MIN_HANDLING {
            self.tail_means[i] - age_secs
        } else {
            let j = n - MIN_HANDLING;
            self.tail_means[j] - if j == 0 { 0.0 } else { self.sorted[j - 1] }
        };
        left.max(self.handling_secs / 10.0)
    }

    /// The slots of `agents` (those online and present in the department) at `now`: a free
    /// slot frees as a new chat would, at one per mean handling time, a busy one at one over
    /// its chat's remaining time. An agent above a lowered limit frees a slot only once enough
    /// chats end: their chats count in proportion.
    pub fn slots<'a>(
        &self,
        agents: impl IntoIterator<Item = &'a AgentState>,
        now: Millis,
    ) -> Slots {
        let mut out = Slots::default();
        for a in agents {
            let busy: f64 = a
                .chat_ages(now)
                .map(|ms| 1.0 / self.remaining_secs(ms as f64 / 1000.0))
                .sum();
            let held = a.chats.len() as u32;
            let limit = a.max_concurrent;
            let share = if held > limit {
                f64::from(limit) / f64::from(held)
            } else {
                1.0
            };
            out.count += limit;
            out.rate += busy * share + f64::from(limit.saturating_sub(held)) / self.handling_secs;
        }
        out
    }

    /// The estimate for a chat at `position` with the department's online `slots`.
    pub fn estimate(&self, position: u32, slots: &Slots) -> WaitEstimate {
        let h = self.handling_secs;
        let (count, rate) = if slots.count == 0 || slots.rate <= 0.0 {
            (1.0, 1.0 / h)
        } else {
            (f64::from(slots.count), slots.rate)
        };
        let p = f64::from(position);
        let model = if p <= count {
            p / rate
        } else {
            count / rate + (p - count) * h / count
        };
        let handlings = model / h;
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
        let e = fresh.estimate(
            2,
            &Slots {
                count: 4,
                rate: 4.0 / 300.0,
            },
        );
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
        let e = learned.estimate(
            1,
            &Slots {
                count: 1,
                rate: 1.0 / 120.0,
            },
        );
        assert_eq!(e.handlings_milli, 1000);
        assert_eq!(e.secs, 62, "the median ratio, 0.52");
        assert!(e.low_secs <= e.secs && e.secs <= e.high_secs);
        let (error, coverage) = accuracy(&[(62.0, e), (124.0, e)]);
        assert!(coverage == 0.5 && error > 0.0);
    }

    fn busy(limit: u32, since: &[Millis]) -> AgentState {
        let mut a = AgentState::registered("a".into(), "A".into(), vec!["d".into()], limit);
        for (i, &at) in since.iter().enumerate() {
            a.take_chat(&crate::model::ConvId(format!("c{i}")), at);
        }
        a
    }

    /// How long the busy slots' chats have run moves the estimate: with short and long chats
    /// on record, a chat that outran the short ones is one of the long ones and its slot frees
    /// late; with chats of one length, one nearly done frees soon. With nothing on record,
    /// every slot is a mean handling time away, whatever its age: `position ÷ slots`.
    #[test]
    fn busy_slots_free_by_how_long_their_chats_have_run() {
        let now = 1_000_000;
        let mut record = vec![60.0; 15];
        record.extend([900.0; 5]);
        let learned = Learned::from_samples(&record, &[], 300.0);
        assert_eq!(learned.handling_secs, 270.0);
        let fresh = learned.estimate(1, &learned.slots([&busy(1, &[now])], now));
        let old = learned.estimate(1, &learned.slots([&busy(1, &[now - 100_000])], now));
        assert_eq!((fresh.secs, old.secs), (270, 800));
        let free = learned.estimate(1, &learned.slots([&busy(2, &[now - 100_000])], now));
        assert!(free.secs < 270, "a free slot adds a slot's worth: {free:?}");

        let even = Learned::from_samples(&[120.0; 10], &[], 300.0);
        let nearly = even.estimate(1, &even.slots([&busy(1, &[now - 90_000])], now));
        assert_eq!(nearly.secs, 30);
        let past = even.estimate(1, &even.slots([&busy(1, &[now - 500_000])], now));
        assert_eq!(past.secs, 12, "past the record, a tenth of a handling time");
        // Past every slot's turn, a mean handling time per round of all slots.
        let later = even.estimate(3, &even.slots([&busy(1, &[now - 90_000])], now));
        assert_eq!(later.secs, 30 + 2 * 120);

        let unknown = Learned::from_samples(&[], &[], 300.0);
        let agents = [busy(2, &[now, now - 250_000]), busy(2, &[now - 299_000])];
        let e = unknown.estimate(6, &unknown.slots(&agents, now));
        assert_eq!(e.secs, 450, "6 ÷ 4 slots × 300 s");
        assert_eq!(e.handlings_milli, 1500);
    }
}
