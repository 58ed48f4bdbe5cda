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

use sqlx::Row as _;

use super::{Figures, RatingFigures, Result, Spread, StatsGroup, StatsQuery, Ticket};
use crate::db::{Database, Kind};
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

/// The figure columns of the tickets matching `filter` (binds: `args`).
pub(super) async fn figure_rows(
    conn: &mut sqlx::AnyConnection,
    filter: &str,
    args: &[&str],
    millis: Option<(Millis, Millis)>,
) -> Result<Vec<Row>> {
    let sql = format!(
        "SELECT site, closed_at, department, agent, status, queue_wait, first_response, \
         handling, rating FROM tickets WHERE {filter}"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
    for a in args {
        query = query.bind(*a);
    }
    if let Some((from, to)) = millis {
        query = query.bind(from).bind(to);
    }
    let mut out = Vec::new();
    for r in query.fetch_all(&mut *conn).await? {
        out.push(Row {
            site: r.try_get("site")?,
            closed_at: r.try_get("closed_at")?,
            department: r.try_get("department")?,
            agent: r.try_get("agent")?,
            status: r.try_get("status")?,
            durations: [
                r.try_get("queue_wait")?,
                r.try_get("first_response")?,
                r.try_get("handling")?,
            ],
            rating: r.try_get("rating")?,
        });
    }
    Ok(out)
}

/// Applies a change to the kept figures.
pub(super) async fn apply_figures(
    conn: &mut sqlx::AnyConnection,
    delta: BTreeMap<Key, i64>,
) -> Result<()> {
    for ((site, day, dim, key, measure, bucket), n) in delta {
        sqlx::query(
            "INSERT INTO figures (site, day, dim, key, measure, bucket, n) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (dim, day, site, key, measure, bucket) DO UPDATE SET n = figures.n + excluded.n",
        )
        .bind(site)
        .bind(day)
        .bind(dim)
        .bind(key)
        .bind(measure)
        .bind(bucket)
        .bind(n)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The figure columns a ticket is stored with.
pub(super) fn figure_row(t: &Ticket) -> Row {
    Row {
        site: t.site.0.clone(),
        closed_at: t.closed_at,
        department: t.department.0.clone(),
        agent: t.agents.last().map(|a| a.id.0.clone()),
        status: t.status.clone(),
        durations: [
            t.metrics.queue_wait_secs,
            t.metrics.first_response_secs,
            t.metrics.handling_secs,
        ],
        rating: t.rating.as_ref().map(|r| i64::from(r.score)),
    }
}

/// `/v1/stats`: whole UTC days of the range from the kept figures, the parts of days at its
/// ends from the tickets themselves.
pub(super) async fn read(db: &Database, q: &StatsQuery) -> Result<Vec<Figures>> {
    // Whole UTC days from the kept figures; the parts of days at either end from tickets.
    let first_day = q.since.div_euclid(DAY_MS) * DAY_MS
        + if q.since.rem_euclid(DAY_MS) == 0 {
            0
        } else {
            DAY_MS
        };
    let end_day = if q.until == Millis::MAX {
        Millis::MAX
    } else {
        q.until.div_euclid(DAY_MS) * DAY_MS
    };
    let (dim, kept_key, ticket_key) = match q.group {
        StatsGroup::All => ("all", "CAST('all' AS TEXT)", "CAST('all' AS TEXT)"),
        StatsGroup::Department => ("department", "key", "department"),
        StatsGroup::Agent => ("agent", "key", "COALESCE(agent, '')"),
        StatsGroup::Day => (
            "all",
            "CAST(day AS TEXT)",
            "CAST((closed_at / 86400000) * 86400000 AS TEXT)",
        ),
    };
    let site = if q.site.is_some() {
        " AND site = $3"
    } else {
        ""
    };
    let pool = db.pool();
    let mut tally = Tally::default();
    let mut add = |rows: Vec<sqlx::any::AnyRow>| -> Result<()> {
        for r in rows {
            tally.add(
                r.try_get("k")?,
                r.try_get("measure")?,
                r.try_get("bucket")?,
                r.try_get("n")?,
            );
        }
        Ok(())
    };
    let mut raw = Vec::new();
    if first_day < end_day {
        let sql = format!(
            "SELECT {kept_key} AS k, measure, bucket, CAST(SUM(n) AS BIGINT) AS n \
             FROM figures WHERE dim = '{dim}' AND day >= $1 AND day < $2{site} \
             GROUP BY {kept_key}, measure, bucket"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(first_day)
            .bind(end_day);
        if let Some(s) = &q.site {
            query = query.bind(s.0.clone());
        }
        add(query.fetch_all(pool).await?)?;
        raw.push((q.since, first_day));
        if end_day != Millis::MAX {
            raw.push((end_day, q.until));
        }
    } else {
        raw.push((q.since, q.until));
    }
    let kind = db.kind();
    let range = format!("closed_at >= $1 AND closed_at < $2{site}");
    let mut parts = vec![
        format!(
            "SELECT {ticket_key} AS k, 'status:' || status AS measure, 0 AS bucket FROM tickets WHERE {range}"
        ),
        format!(
            "SELECT {ticket_key} AS k, 'rating' AS measure, rating AS bucket FROM tickets WHERE {range} AND rating IS NOT NULL"
        ),
    ];
    for m in MEASURES {
        parts.push(format!(
            "SELECT {ticket_key} AS k, '{m}' AS measure, {} AS bucket FROM tickets \
             WHERE {range} AND {m} IS NOT NULL",
            bucket_sql(kind, m)
        ));
    }
    let sql = format!(
        "SELECT k, measure, bucket, COUNT(*) AS n FROM ({}) c GROUP BY k, measure, bucket",
        parts.join(" UNION ALL ")
    );
    for (from, to) in raw.into_iter().filter(|(a, b)| a < b) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(from)
            .bind(to);
        if let Some(s) = &q.site {
            query = query.bind(s.0.clone());
        }
        add(query.fetch_all(pool).await?)?;
    }
    Ok(tally.figures())
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
