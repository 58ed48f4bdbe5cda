//! The wait estimate a queued visitor is told: a range, learned. The model: a chat at
//! `position` waits until the department's slots have freed that many times. How soon each
//! busy slot frees depends on how long its chat has run: of the department's recorded chats
//! that ran at least as long, the share that ended within `t` more seconds is the chance it
//! frees by then; once freed, a slot takes the next chat and frees again at one per mean
//! handling time. Summed over the slots (one shown free counts as one whose chat just began:
//! the chat asking found none), that gives how many frees to expect by `t`, and the estimate
//! is the `t` at which `position` are expected. With no handling times recorded yet, every
//! slot frees at one per mean handling time, whatever its age: `position ÷ slots` mean
//! handling times.
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

/// Busy slots are summed in at most this many groups of like age: an estimate's cost does not
/// grow with the department.
const AGE_GROUPS: usize = 64;
/// The frees expected by `t` are computed at this many points, `t` from 1/64 to about 860 mean
/// handling times, four to a doubling; between them they are interpolated, past them the slots
/// free at one per mean handling time each.
const GRID: usize = 64;

fn grid_point(k: usize, handling_secs: f64) -> f64 {
    handling_secs * (k as f64 / 4.0 - 6.0).exp2()
}

/// A department's online slots as the estimate sees them: how many frees to expect by when.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slots {
    /// How many chats its online, present agents can hold at once.
    pub count: u32,
    /// The busy slots in groups of like age: (age in seconds, how many).
    groups: Vec<(f64, f64)>,
    /// The frees expected by each of the `GRID` points (`grid_point`).
    expected: Vec<f64>,
}

/// What a department has learned from its recent tickets.
#[derive(Clone, Debug, PartialEq)]
pub struct Learned {
    /// The mean handling time, seconds.
    pub handling_secs: f64,
    /// The recent handling times, ascending, and their prefix sums (`prefix[i]`: the sum of
    /// `sorted[..i]`): what is left of a chat that has run a while. Empty until `MIN_HANDLING`
    /// are known.
    sorted: Vec<f64>,
    prefix: Vec<f64>,
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
        let mut prefix = Vec::with_capacity(sorted.len() + 1);
        prefix.push(0.0);
        for h in &sorted {
            prefix.push(prefix[prefix.len() - 1] + h);
        }
        let handling_secs = if sorted.is_empty() {
            default_handling_secs
        } else {
            prefix[sorted.len()] / sorted.len() as f64
        }
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
                prefix,
                ratios: [0.5, 1.0, 1.5],
                samples: 0,
            };
        }
        ratios.sort_by(f64::total_cmp);
        Self {
            handling_secs,
            sorted,
            prefix,
            ratios: [
                quantile(&ratios, 0.08),
                quantile(&ratios, 0.5),
                quantile(&ratios, 0.92),
            ],
            samples: ratios.len(),
        }
    }

    /// How many times a slot whose chat has run `age` seconds is expected to free within
    /// `t` more: the chance its chat ends by then (the share of recorded chats that ran at least
    /// `age` and ended by `age + t`), plus, after it ends, one per mean handling time. Past the
    /// last few recorded, the tail is taken as memoryless at its last known mean excess (never
    /// less than a tenth of the mean); with fewer than `MIN_HANDLING` recorded, the whole
    /// distribution is (one per mean handling time).
    fn frees_by(&self, age: f64, t: f64) -> f64 {
        let h = self.handling_secs;
        let n = self.sorted.len();
        if n < MIN_HANDLING {
            return t / h;
        }
        let i = self.sorted.partition_point(|x| *x < age);
        if n - i >= MIN_HANDLING {
            // Those of the longer chats that end by `age + t`: how many, and their lengths.
            let k = self.sorted.partition_point(|x| *x <= age + t);
            let ended = (k - i) as f64;
            let lengths = self.prefix[k] - self.prefix[i];
            let after = ended * (age + t) - lengths;
            return (ended + after / h) / (n - i) as f64;
        }
        let j = n - MIN_HANDLING;
        let tail = self.prefix[n] - self.prefix[j];
        let excess = tail / MIN_HANDLING as f64 - if j == 0 { 0.0 } else { self.sorted[j - 1] };
        let mean = excess.max(h / 10.0);
        let ended = 1.0 - (-t / mean).exp();
        ended + (t - mean * ended) / h
    }

    /// The slots of `agents` (those online and present in the department) at `now`, and the
    /// frees to expect from them. An agent above a lowered limit frees a slot only once enough
    /// chats end: their chats count in proportion. A slot free in the snapshot counts as one
    /// whose chat just began: the estimate is asked for a chat that found no slot, and the
    /// snapshot may be a little behind (measured: counting such slots free at once taught the
    /// learning wild ratios, a median error of 26 % where the model without ages had 20 %).
    pub fn slots<'a>(
        &self,
        agents: impl IntoIterator<Item = &'a AgentState>,
        now: Millis,
    ) -> Slots {
        let mut out = Slots::default();
        // (age in seconds, weight) of every busy slot.
        let mut busy: Vec<(f64, f64)> = Vec::new();
        for a in agents {
            let held = a.chats.len() as u32;
            let limit = a.max_concurrent;
            let weight = if held > limit {
                f64::from(limit) / f64::from(held)
            } else {
                1.0
            };
            busy.extend(a.chat_ages(now).map(|ms| (ms as f64 / 1000.0, weight)));
            // A slot shown free while chats wait is being taken by the chats ahead, or was
            // taken since the snapshot was read: it counts as one with a new chat.
            busy.extend((held..limit).map(|_| (0.0, 1.0)));
            out.count += limit;
        }
        busy.sort_by(|x, y| x.0.total_cmp(&y.0));
        // Groups of like age, each as its weighted mean age.
        let size = busy.len().div_ceil(AGE_GROUPS).max(1);
        let groups: Vec<(f64, f64)> = busy
            .chunks(size)
            .map(|g| {
                let w: f64 = g.iter().map(|(_, w)| w).sum();
                let age = g.iter().map(|(a, w)| a * w).sum::<f64>() / w.max(f64::MIN_POSITIVE);
                (age, w)
            })
            .collect();
        out.groups = groups;
        let h = self.handling_secs;
        out.expected = (0..GRID)
            .map(|k| self.expected_by(&out, grid_point(k, h)))
            .collect();
        out
    }

    /// The frees expected from `slots` within `t` seconds.
    fn expected_by(&self, slots: &Slots, t: f64) -> f64 {
        slots
            .groups
            .iter()
            .map(|&(age, w)| w * self.frees_by(age, t))
            .sum()
    }

    /// The estimate for a chat at `position` with the department's online `slots`: the time
    /// by which `position` frees are expected, to a fraction of a second. With no slot online,
    /// one at a time.
    pub fn estimate(&self, position: u32, slots: &Slots) -> WaitEstimate {
        self.estimate_with(position, slots, true)
    }

    /// As `estimate`, interpolated between the points the slots were computed at (up to a
    /// fifth off where many chats end at once): for refreshing the positions of a whole queue.
    pub fn estimate_quick(&self, position: u32, slots: &Slots) -> WaitEstimate {
        self.estimate_with(position, slots, false)
    }

    fn estimate_with(&self, position: u32, slots: &Slots, exact: bool) -> WaitEstimate {
        let h = self.handling_secs;
        let p = f64::from(position);
        let model = if slots.count == 0 || slots.expected.len() < GRID {
            p * h
        } else {
            let mut before = (0.0, 0.0);
            let mut found = None;
            for (k, &n) in slots.expected.iter().enumerate() {
                let t = grid_point(k, h);
                if n >= p {
                    let (t0, n0) = before;
                    found = Some(if exact {
                        // The expected frees only rise with t: halve the gap down to a
                        // millisecond or so (a chat's ages and lengths are whole ms).
                        let (mut lo, mut hi) = (t0, t);
                        for _ in 0..32 {
                            let mid = (lo + hi) / 2.0;
                            if self.expected_by(slots, mid) >= p {
                                hi = mid;
                            } else {
                                lo = mid;
                            }
                        }
                        hi
                    } else {
                        t0 + (t - t0) * (p - n0) / (n - n0).max(f64::MIN_POSITIVE)
                    });
                    break;
                }
                before = (t, n);
            }
            found.unwrap_or_else(|| before.0 + (p - before.1) * h / f64::from(slots.count))
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
        let now = 1_000_000;
        let two = [busy(2, &[now, now]), busy(2, &[now, now])];
        let e = fresh.estimate(2, &fresh.slots(&two, now));
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
        let e = learned.estimate(1, &learned.slots([&busy(1, &[now])], now));
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
    /// every slot frees at one per mean handling time, whatever its age: `position ÷ slots`.
    #[test]
    fn busy_slots_free_by_how_long_their_chats_have_run() {
        let now = 1_000_000;
        let mut record = vec![60.0; 15];
        record.extend([900.0; 5]);
        let learned = Learned::from_samples(&record, &[], 300.0);
        assert_eq!(learned.handling_secs, 270.0);
        // A new chat: three in four end at a minute, the slot then frees again at 1 ÷ 270 s.
        let fresh = learned.estimate(1, &learned.slots([&busy(1, &[now])], now));
        assert_eq!(fresh.secs, 150);
        let old = learned.estimate(1, &learned.slots([&busy(1, &[now - 100_000])], now));
        assert_eq!(old.secs, 800, "what is left of a 15-minute chat");
        let quick = learned.estimate_quick(1, &learned.slots([&busy(1, &[now - 100_000])], now));
        assert!(
            (780..=880).contains(&quick.secs),
            "between the points computed: {quick:?}"
        );
        let free = learned.estimate(1, &learned.slots([&busy(2, &[now - 100_000])], now));
        assert_eq!(
            free.secs, 150,
            "a slot shown free counts as one with a new chat"
        );

        let even = Learned::from_samples(&[120.0; 10], &[], 300.0);
        let nearly = even.estimate(1, &even.slots([&busy(1, &[now - 90_000])], now));
        assert_eq!(nearly.secs, 30);
        let past = even.estimate(1, &even.slots([&busy(1, &[now - 500_000])], now));
        assert!(
            (20..=30).contains(&past.secs),
            "past the record, memoryless at a tenth of a handling time: {past:?}"
        );
        // Once the slot has freed, a mean handling time per chat.
        let later = even.estimate(3, &even.slots([&busy(1, &[now - 90_000])], now));
        assert_eq!(later.secs, 30 + 2 * 120);

        let unknown = Learned::from_samples(&[], &[], 300.0);
        let agents = [busy(2, &[now, now - 250_000]), busy(2, &[now - 299_000])];
        let e = unknown.estimate(6, &unknown.slots(&agents, now));
        assert_eq!(e.secs, 450, "6 ÷ 4 slots × 300 s");
        assert_eq!(e.handlings_milli, 1500);
        let none = unknown.estimate(2, &unknown.slots([], now));
        assert_eq!(none.secs, 600, "nobody online: one chat per handling time");
    }
}
