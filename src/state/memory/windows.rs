//! Fixed-window counters for the embedded backend (`Store::count`): how often something
//! happened in the current window, per site and key. Not journaled: a restart forgives.
//!
//! Bounded: at most `MAX_ENTRIES` counters; when full, ended windows are dropped, and if that
//! frees nothing the count answers `u64::MAX` (over any limit) rather than grow.

use dashmap::DashMap;

use crate::model::{Millis, SiteId};

const MAX_ENTRIES: usize = 200_000;

#[derive(Default)]
pub struct Windows {
    /// (site, key) → (when the current window ends, count in it).
    counts: DashMap<(SiteId, String), (Millis, u64)>,
}

impl Windows {
    /// Counts one more in the window of `window_ms` that `now` falls in; the count so far.
    pub fn count(&self, site: &SiteId, key: &str, window_ms: i64, now: Millis) -> u64 {
        let window_ms = window_ms.max(1);
        let ends = (now.div_euclid(window_ms) + 1) * window_ms;
        let id = (site.clone(), key.to_owned());
        if self.counts.len() >= MAX_ENTRIES && !self.counts.contains_key(&id) {
            self.counts.retain(|_, (end, _)| *end > now);
            if self.counts.len() >= MAX_ENTRIES {
                return u64::MAX;
            }
        }
        let mut entry = self.counts.entry(id).or_insert((ends, 0));
        if entry.0 != ends {
            *entry = (ends, 0);
        }
        entry.1 += 1;
        entry.1
    }

    /// Counts one more in each of `keys`; the highest count.
    pub fn count_all(&self, site: &SiteId, keys: &[String], window_ms: i64, now: Millis) -> u64 {
        keys.iter()
            .map(|k| self.count(site, k, window_ms, now))
            .max()
            .unwrap_or(0)
    }

    /// Drops counters whose window has ended (the sweep calls it).
    pub fn prune(&self, now: Millis) {
        self.counts.retain(|_, (end, _)| *end > now);
    }
}
