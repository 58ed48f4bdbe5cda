//! Figures kept as tickets are written, so `/v1/stats` reads a few rows per day instead of every
//! ticket of a range. Each ticket adds one to a `figures` row per dimension (the whole site,
//! its department, its last agent) and measure: its status, its rating, and the bucket of each
//! duration it has. Percentiles come from those buckets (nearest rank over the bucketed values),
//! at the buckets' resolution: 1 s below a minute, 10 s below ten minutes, 1 min below an hour,
//! 10 min beyond.
//!
//! Whole UTC days of a range are read from `figures`; the parts of days at its ends from the
//! tickets themselves, bucketed alike by the same expression in SQL (`bucket_sql`).

use std::collections::BTreeMap;

use super::{Figures, RatingFigures, Spread};
use crate::db::Kind;
use crate::model::Millis;

pub const DAY_MS: Millis = 86_400_000;

/// The duration measures, as the tickets table names their columns.
pub const MEASURES: [&str; 3] = ["queue_wait", "first_response", "handling"];

/// (upper bound in seconds, bucket width in seconds) of each range, and the first bucket of it.
const RANGES: [(f64, f64, i64); 4] = [
    (60.0, 1.0, 0),
    (600.0, 10.0, 60),
    (3600.0, 60.0, 114),
    (f64::INFINITY, 600.0, 164),
];

/// The bucket of a duration in seconds.
pub fn bucket(secs: f64) -> i64 {
    let secs = secs.max(0.0);
    let mut low = 0.0;
    for (high, width, first) in RANGES {
        if secs < high {
            return first + ((secs - low) / width).floor() as i64;
        }
        low = high;
    }
    unreachable!("the last range is unbounded")
}

/// The value a bucket stands for: its lower bound (exact for whole seconds below a minute).
pub fn value(bucket: i64) -> f64 {
    let mut low = 0.0;
    for (i, (high, width, first)) in RANGES.into_iter().enumerate() {
        let next = RANGES.get(i + 1).map_or(i64::MAX, |r| r.2);
        if bucket < next {
            return low + (bucket - first) as f64 * width;
        }
        low = high;
    }
    low
}

/// The same as `bucket`, in SQL, for a column `v` (non-negative).
pub fn bucket_sql(kind: Kind, v: &str) -> String {
    let floor = |x: String| match kind {
        // CAST truncates in SQLite (the same as floor for non-negative values) and rounds in
        // PostgreSQL.
        Kind::Sqlite => format!("CAST({x} AS INTEGER)"),
        Kind::Postgres => format!("CAST(FLOOR({x}) AS BIGINT)"),
    };
    let mut sql = String::from("CASE");
    let mut low = 0.0;
    for (high, width, first) in RANGES {
        let step = floor(format!("({v} - {low:.1}) / {width:.1}"));
        if high.is_finite() {
            sql.push_str(&format!(" WHEN {v} < {high:.1} THEN {first} + {step}"));
        } else {
            sql.push_str(&format!(" ELSE {first} + {step} END"));
        }
        low = high;
    }
    sql
}

/// One ticket's figure columns.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub site: String,
    pub closed_at: Millis,
    pub department: String,
    pub agent: Option<String>,
    pub status: String,
    pub durations: [Option<f64>; 3],
    pub rating: Option<i64>,
}

/// A `figures` row's key: site, day, dimension, key, measure, bucket.
pub type Key = (String, Millis, &'static str, String, String, i64);

impl Row {
    /// The rows this ticket counts in, each once.
    pub fn keys(&self) -> Vec<Key> {
        let day = self.closed_at.div_euclid(DAY_MS) * DAY_MS;
        let mut measures = vec![(format!("status:{}", self.status), 0)];
        if let Some(r) = self.rating {
            measures.push(("rating".into(), r));
        }
        for (name, v) in MEASURES.iter().zip(self.durations) {
            if let Some(v) = v {
                measures.push(((*name).into(), bucket(v)));
            }
        }
        let dims = [
            ("all", String::new()),
            ("department", self.department.clone()),
            ("agent", self.agent.clone().unwrap_or_default()),
        ];
        let mut keys = Vec::new();
        for (dim, key) in dims {
            for (measure, b) in &measures {
                keys.push((
                    self.site.clone(),
                    day,
                    dim,
                    key.clone(),
                    measure.clone(),
                    *b,
                ));
            }
        }
        keys
    }
}

/// The net change to `figures` of tickets leaving (`-1`) and arriving (`+1`).
pub fn delta<'a>(
    leaving: impl IntoIterator<Item = &'a Row>,
    arriving: impl IntoIterator<Item = &'a Row>,
) -> BTreeMap<Key, i64> {
    let mut out = BTreeMap::new();
    for (rows, sign) in [
        (leaving.into_iter().collect::<Vec<_>>(), -1),
        (arriving.into_iter().collect(), 1),
    ] {
        for row in rows {
            for key in row.keys() {
                *out.entry(key).or_insert(0) += sign;
            }
        }
    }
    out.retain(|_, n| *n != 0);
    out
}

/// Counts per (group key, measure, bucket), from `figures` and from tickets alike, turned into
/// the figures of each group.
#[derive(Default)]
pub struct Tally {
    groups: BTreeMap<String, BTreeMap<String, BTreeMap<i64, i64>>>,
}

impl Tally {
    pub fn add(&mut self, key: String, measure: String, bucket: i64, n: i64) {
        *self
            .groups
            .entry(key)
            .or_default()
            .entry(measure)
            .or_default()
            .entry(bucket)
            .or_insert(0) += n;
    }

    pub fn figures(self) -> Vec<Figures> {
        let mut out = Vec::new();
        for (key, measures) in self.groups {
            let mut f = Figures {
                key,
                ..Figures::default()
            };
            for (measure, buckets) in measures {
                let buckets: Vec<(i64, u64)> = buckets
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(b, n)| (b, n as u64))
                    .collect();
                let count: u64 = buckets.iter().map(|(_, n)| n).sum();
                if let Some(status) = measure.strip_prefix("status:") {
                    if count > 0 {
                        f.chats += count;
                        f.by_status.insert(status.to_owned(), count);
                    }
                } else if measure == "rating" {
                    let sum: u64 = buckets.iter().map(|(b, n)| *b as u64 * n).sum();
                    f.rating = RatingFigures {
                        count,
                        average: (count > 0).then(|| sum as f64 / count as f64),
                    };
                } else {
                    let spread = spread(&buckets, count);
                    match measure.as_str() {
                        "queue_wait" => f.queue_wait_secs = spread,
                        "first_response" => f.first_response_secs = spread,
                        _ => f.handling_secs = spread,
                    }
                }
            }
            if f.chats > 0 {
                out.push(f);
            }
        }
        out
    }
}

/// Nearest-rank median and 90th percentile over sorted buckets.
fn spread(buckets: &[(i64, u64)], count: u64) -> Spread {
    let at_rank = |rank: u64| {
        let mut seen = 0;
        buckets.iter().find_map(|(b, n)| {
            seen += n;
            (seen >= rank).then(|| value(*b))
        })
    };
    Spread {
        count,
        median: (count > 0).then(|| at_rank(count.div_ceil(2))).flatten(),
        p90: (count > 0)
            .then(|| at_rank((9 * count).div_ceil(10)))
            .flatten(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buckets are 1 s below a minute, then 10 s, 1 min, 10 min wide; a bucket's value is its
    /// lower bound, and every range starts where the last ended.
    #[test]
    fn buckets() {
        assert_eq!((bucket(0.0), value(0)), (0, 0.0));
        assert_eq!(bucket(12.7), 12);
        assert_eq!(value(bucket(59.9)), 59.0);
        assert_eq!(value(bucket(60.0)), 60.0);
        assert_eq!(value(bucket(75.0)), 70.0);
        assert_eq!(value(bucket(600.0)), 600.0);
        assert_eq!(value(bucket(3599.0)), 3540.0);
        assert_eq!(value(bucket(3600.0)), 3600.0);
        assert_eq!(value(bucket(7300.0)), 7200.0);
        assert_eq!(bucket(-1.0), 0);
    }

    /// Leaving and arriving again unchanged nets to nothing; a new rating moves one row per
    /// dimension.
    #[test]
    fn deltas_net_out() {
        let row = Row {
            site: "s".into(),
            closed_at: 5 * DAY_MS + 7,
            department: "support".into(),
            agent: Some("alice".into()),
            status: "resolved".into(),
            durations: [Some(3.0), None, Some(120.0)],
            rating: None,
        };
        assert!(delta([&row], [&row]).is_empty());
        let rated = Row {
            rating: Some(4),
            ..row.clone()
        };
        let d = delta([&row], [&rated]);
        assert_eq!(d.len(), 3);
        assert!(
            d.iter()
                .all(|(k, n)| k.4 == "rating" && k.5 == 4 && *n == 1)
        );
        assert!(d.keys().all(|k| k.1 == 5 * DAY_MS));
    }

    /// Percentiles by nearest rank over the buckets.
    #[test]
    fn spreads() {
        let mut t = Tally::default();
        for v in [1.0, 2.0, 3.0, 4.0, 100.0] {
            t.add("all".into(), "handling".into(), bucket(v), 1);
        }
        t.add("all".into(), "status:resolved".into(), 0, 5);
        let f = t.figures();
        assert_eq!(f[0].handling_secs.median, Some(3.0));
        assert_eq!(f[0].handling_secs.p90, Some(100.0));
        assert_eq!(f[0].chats, 5);
    }
}
