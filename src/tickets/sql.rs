//! Tickets and the webhook outbox in the record database (`db`), SQLite or PostgreSQL.
//!
//! A ticket is stored whole as JSON, with the columns listing filters on beside it. Saving a
//! ticket and queueing its deliveries is one transaction (the outbox pattern): a ticket is
//! never without its webhooks, nor a webhook without its ticket. Nodes share the outbox by
//! leasing rows: a claim marks due rows leased until a time, in one statement (PostgreSQL skips
//! rows another node is claiming at that moment), and a node that dies leaves its leases to
//! lapse.

use async_trait::async_trait;
use sqlx::Row;

use super::figures::{self, DAY_MS, apply_figures, figure_row, figure_rows};
use super::search;
use super::{
    AuditEntry, AuditFilter, Delivery, Figures, Measure, Result, StatsQuery, Ticket, TicketFilter,
    TicketStore, WaitSample,
};
use crate::db::{Database, Kind, RecordError};
use crate::model::{AgentId, DeptId, Millis, SiteId, VisitorId, VisitorProfile};
use crate::routing::estimate::WaitEstimate;

fn corrupt(e: impl std::fmt::Display) -> RecordError {
    RecordError::Corrupt(format!("stored record: {e}"))
}

/// Every record in a directory of the old file store: `*.json`, and the `.*.json.tmp` files a
/// crash left between writing and renaming (complete ones are recovered; torn ones are logged
/// and skipped, as they were never acknowledged).
fn load_dir<T: serde::de::DeserializeOwned>(dir: &std::path::Path) -> anyhow::Result<Vec<T>> {
    use anyhow::Context;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.ends_with(".json") || name.ends_with(".json.tmp")) {
            continue;
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => out.push(v),
            Err(e) => tracing::warn!(cause = %e, path = %path.display(), "skipping a torn record"),
        }
    }
    Ok(out)
}

/// `TicketStore` on the record database.
pub struct SqlTickets {
    db: Database,
}

impl SqlTickets {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The turn to write (SQLite), or nothing to wait for (PostgreSQL).
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.db.write_turn().await
    }

    /// Stores many tickets in one transaction: imports and the benchmark's generator.
    pub async fn save_batch(&self, tickets: &[Ticket]) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.db.begin_write().await?;
        for t in tickets {
            write_ticket(&mut tx, t).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Imports the tickets and outbox entries of the JSON-file store an earlier version kept in
    /// the data directory, once: the directories are then renamed `*.imported` and left in place.
    pub async fn import_files(&self, data_dir: &std::path::Path) -> anyhow::Result<()> {
        use anyhow::Context;
        for (dir, what) in [("tickets", "tickets"), ("outbox", "deliveries")] {
            let path = data_dir.join(dir);
            if !path.is_dir() {
                continue;
            }
            let count = if what == "tickets" {
                let tickets: Vec<Ticket> = load_dir(&path)?;
                for batch in tickets.chunks(500) {
                    self.save_batch(batch).await?;
                }
                tickets.len()
            } else {
                let deliveries: Vec<Delivery> = load_dir(&path)?;
                self.enqueue(&deliveries).await?;
                deliveries.len()
            };
            let done = data_dir.join(format!("{dir}.imported"));
            std::fs::rename(&path, &done)
                .with_context(|| format!("cannot rename {} after importing it", path.display()))?;
            tracing::info!(count, what, from = %path.display(), "imported the file store");
        }
        Ok(())
    }
}

/// A list column: every item with a space on each side, so one `LIKE '% item %'` finds one.
fn padded<S: AsRef<str>>(items: &[S]) -> String {
    let mut s = String::from(" ");
    for item in items {
        s.push_str(item.as_ref());
        s.push(' ');
    }
    s
}

fn agents_column(t: &Ticket) -> String {
    let ids: Vec<&str> = t.agents.iter().map(|a| a.id.0.as_str()).collect();
    padded(&ids)
}

/// A row of `wait_samples` or `wait_accuracy`.
fn wait_sample(r: &sqlx::any::AnyRow) -> WaitSample {
    let secs = |i: usize| {
        r.try_get::<Option<i64>, _>(i)
            .ok()
            .flatten()
            .map(|v| v.clamp(0, i64::from(u32::MAX)) as u32)
    };
    let estimate = match (secs(2), secs(3), secs(4), secs(5)) {
        (Some(secs), Some(low_secs), Some(high_secs), Some(handlings_milli)) => {
            Some(WaitEstimate {
                secs,
                low_secs,
                high_secs,
                handlings_milli,
            })
        }
        _ => None,
    };
    WaitSample {
        handling_secs: r.try_get::<Option<f64>, _>(0).ok().flatten(),
        queue_wait_secs: r.try_get::<Option<f64>, _>(1).ok().flatten(),
        estimate,
    }
}

/// Inserts or replaces one ticket, its JSON and the columns filters and figures read, and
/// moves the kept figures from what it was to what it is, in the caller's transaction.
async fn write_ticket(conn: &mut sqlx::AnyConnection, ticket: &Ticket) -> Result<()> {
    let before = figure_rows(conn, "id = $1", &[&ticket.id], None).await?;
    let after = figure_row(ticket);
    apply_figures(conn, figures::delta(&before, [&after])).await?;
    let body = serde_json::to_string(ticket).map_err(corrupt)?;
    let estimate = ticket.metrics.wait_estimate;
    sqlx::query(
        "INSERT INTO tickets (id, site, visitor, department, status, closed_at, agents, body, \
         queue_wait, first_response, handling, rating, search_text, follow_up, tags, agent, \
         estimate_secs, estimate_low, estimate_high, estimate_handlings) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
         $17, $18, $19, $20) \
         ON CONFLICT (id) DO UPDATE SET department = excluded.department, \
         status = excluded.status, closed_at = excluded.closed_at, \
         agents = excluded.agents, body = excluded.body, \
         queue_wait = excluded.queue_wait, first_response = excluded.first_response, \
         handling = excluded.handling, rating = excluded.rating, \
         search_text = excluded.search_text, follow_up = excluded.follow_up, \
         tags = excluded.tags, agent = excluded.agent, \
         estimate_secs = excluded.estimate_secs, estimate_low = excluded.estimate_low, \
         estimate_high = excluded.estimate_high, estimate_handlings = excluded.estimate_handlings",
    )
    .bind(&ticket.id)
    .bind(&ticket.site.0)
    .bind(&ticket.visitor.id)
    .bind(&ticket.department.0)
    .bind(&ticket.status)
    .bind(ticket.closed_at)
    .bind(agents_column(ticket))
    .bind(body)
    .bind(ticket.metrics.queue_wait_secs)
    .bind(ticket.metrics.first_response_secs)
    .bind(ticket.metrics.handling_secs)
    .bind(ticket.rating.as_ref().map(|r| i64::from(r.score)))
    .bind(ticket.search_text())
    .bind(ticket.follow_up.as_str())
    .bind(padded(&ticket.tags))
    .bind(ticket.agents.last().map(|a| a.id.0.clone()))
    .bind(estimate.map(|e| i64::from(e.secs)))
    .bind(estimate.map(|e| i64::from(e.low_secs)))
    .bind(estimate.map(|e| i64::from(e.high_secs)))
    .bind(estimate.map(|e| i64::from(e.handlings_milli)))
    // Not a cached prepared statement: sqlx 0.8's Any driver declares a NULL f64 as a
    // float4 parameter (sqlx-core any/arguments.rs swaps Real and Double), and PostgreSQL
    // then refuses the 8-byte value of a later execution. Prepared anew, each execution
    // declares its own types.
    .persistent(false)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const UPSERT_DELIVERY: &str = "INSERT INTO deliveries (id, site, next_at, lease_until, dead, created_at, body, visitor) \
     VALUES ($1, $2, $3, 0, $4, $5, $6, $7) \
     ON CONFLICT (id) DO UPDATE SET next_at = excluded.next_at, lease_until = 0, \
     dead = excluded.dead, body = excluded.body";

async fn write_deliveries(conn: &mut sqlx::AnyConnection, deliveries: &[Delivery]) -> Result<()> {
    for d in deliveries {
        let body = serde_json::to_string(d).map_err(corrupt)?;
        sqlx::query(UPSERT_DELIVERY)
            .bind(&d.id)
            .bind(&d.site.0)
            .bind(d.next_at)
            .bind(i64::from(d.dead))
            .bind(d.created_at)
            .bind(body)
            .bind(d.visitor.clone())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<T>> {
    rows.iter()
        .map(|r| {
            let body: String = r.try_get("body")?;
            serde_json::from_str(&body).map_err(corrupt)
        })
        .collect()
}

#[async_trait]
impl TicketStore for SqlTickets {
    async fn save(&self, ticket: &Ticket, deliveries: &[Delivery]) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.db.begin_write().await?;
        write_ticket(&mut tx, ticket).await?;
        write_deliveries(&mut tx, deliveries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get(&self, site: &SiteId, id: &str) -> Result<Option<Ticket>> {
        let rows = sqlx::query("SELECT body FROM tickets WHERE site = $1 AND id = $2")
            .bind(&site.0)
            .bind(id)
            .fetch_all(self.db.pool())
            .await?;
        Ok(parse(rows)?.pop())
    }

    async fn list(&self, site: &SiteId, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        parse(search::list(&self.db, site, filter).await?)
    }

    async fn enqueue(&self, deliveries: &[Delivery]) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut conn = self.db.pool().acquire().await?;
        write_deliveries(&mut conn, deliveries).await
    }

    async fn claim(&self, now: Millis, lease_until: Millis, max: usize) -> Result<Vec<Delivery>> {
        // The courier asks four times a second; an idle outbox is answered by a read, without a
        // write transaction (or, on SQLite, a turn as the writer).
        let due: Vec<i64> = sqlx::query_scalar(
            "SELECT 1 FROM deliveries WHERE dead = 0 AND next_at <= $1 AND lease_until <= $2 LIMIT 1",
        )
        .bind(now)
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn().await;
        let sql = match self.db.kind() {
            // SQLite has one writer at a time: the statement is atomic as it is.
            Kind::Sqlite => {
                "UPDATE deliveries SET lease_until = $1 WHERE id IN (SELECT id FROM deliveries \
                 WHERE dead = 0 AND next_at <= $2 AND lease_until <= $3 \
                 ORDER BY next_at LIMIT $4) RETURNING body"
            }
            // Nodes claiming at once skip each other's rows instead of waiting or doubling.
            Kind::Postgres => {
                "UPDATE deliveries SET lease_until = $1 WHERE id IN (SELECT id FROM deliveries \
                 WHERE dead = 0 AND next_at <= $2 AND lease_until <= $3 \
                 ORDER BY next_at LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING body"
            }
        };
        let rows = sqlx::query(sql)
            .bind(lease_until)
            .bind(now)
            .bind(now)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .fetch_all(self.db.pool())
            .await?;
        parse(rows)
    }

    async fn delivered(&self, id: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM deliveries WHERE id = $1")
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    async fn reschedule(&self, delivery: &Delivery) -> Result<()> {
        self.enqueue(std::slice::from_ref(delivery)).await
    }

    async fn dead(
        &self,
        site: &SiteId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT body FROM deliveries WHERE site = $1 AND dead = 1 AND id > $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(&site.0)
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await?;
        parse(rows)
    }

    async fn idempotency_claim(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: Millis,
        stale_before: Millis,
    ) -> Result<super::IdempotencyClaim> {
        use super::IdempotencyClaim as C;
        let _turn = self.write_turn().await;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(fingerprint)
        .bind(now)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(C::Claimed);
        }
        let row = sqlx::query(
            "SELECT fingerprint, status, content_type, body, created_at FROM idempotency_keys \
             WHERE scope = $1 AND idem_key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            // Expired between the two statements: the next attempt claims it.
            return Ok(C::InFlight);
        };
        if row.try_get::<String, _>("fingerprint")? != fingerprint {
            return Ok(C::Mismatch);
        }
        let status: i64 = row.try_get("status")?;
        if status != 0 {
            return Ok(C::Answered(
                u16::try_from(status).unwrap_or(500),
                row.try_get::<Option<String>, _>("content_type")?
                    .unwrap_or_default(),
                row.try_get::<Option<String>, _>("body")?
                    .unwrap_or_default(),
            ));
        }
        // A claim whose request never finished (its node died) is taken over once stale.
        let taken = sqlx::query(
            "UPDATE idempotency_keys SET created_at = $1 \
             WHERE scope = $2 AND idem_key = $3 AND status = 0 AND created_at < $4",
        )
        .bind(now)
        .bind(scope)
        .bind(key)
        .bind(stale_before)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        Ok(if taken == 1 { C::Claimed } else { C::InFlight })
    }

    async fn idempotency_keep(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        content_type: &str,
        body: &str,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE idempotency_keys SET status = $1, content_type = $2, body = $3 \
             WHERE scope = $4 AND idem_key = $5",
        )
        .bind(i64::from(status))
        .bind(content_type)
        .bind(body)
        .bind(scope)
        .bind(key)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn idempotency_release(&self, scope: &str, key: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND status = 0",
        )
        .bind(scope)
        .bind(key)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn idempotency_expire(&self, before: Millis) -> Result<u64> {
        let _turn = self.write_turn().await;
        Ok(
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(before)
                .execute(self.db.pool())
                .await?
                .rows_affected(),
        )
    }

    async fn outbox_counts(&self) -> Result<(u64, u64)> {
        let rows = sqlx::query("SELECT dead, COUNT(*) AS n FROM deliveries GROUP BY dead")
            .fetch_all(self.db.pool())
            .await?;
        let (mut pending, mut dead) = (0, 0);
        for r in rows {
            let n = r.try_get::<i64, _>("n")?.max(0) as u64;
            if r.try_get::<i64, _>("dead")? == 0 {
                pending += n;
            } else {
                dead += n;
            }
        }
        Ok((pending, dead))
    }

    async fn dead_one(&self, site: &SiteId, id: &str) -> Result<Option<Delivery>> {
        let rows =
            sqlx::query("SELECT body FROM deliveries WHERE site = $1 AND id = $2 AND dead = 1")
                .bind(&site.0)
                .bind(id)
                .fetch_all(self.db.pool())
                .await?;
        Ok(parse(rows)?.pop())
    }

    async fn dead_counts(&self, site: &SiteId) -> Result<Vec<super::DeadCount>> {
        // Grouped by the database, without reading the bodies (transcripts) out.
        let sql = match self.db.kind() {
            Kind::Sqlite => {
                "SELECT json_extract(body, '$.url') AS url, json_extract(body, '$.event') AS event, \
                 COUNT(*) AS n FROM deliveries WHERE site = $1 AND dead = 1 GROUP BY 1, 2 ORDER BY 1, 2"
            }
            Kind::Postgres => {
                "SELECT (body::json)->>'url' AS url, (body::json)->>'event' AS event, \
                 COUNT(*) AS n FROM deliveries WHERE site = $1 AND dead = 1 GROUP BY 1, 2 ORDER BY 1, 2"
            }
        };
        let rows = sqlx::query(sql)
            .bind(&site.0)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(super::DeadCount {
                    site: site.clone(),
                    url: r.try_get::<Option<String>, _>("url")?.unwrap_or_default(),
                    event: r.try_get::<Option<String>, _>("event")?.unwrap_or_default(),
                    count: r.try_get::<i64, _>("n")?.max(0) as u64,
                })
            })
            .collect()
    }

    async fn stats(&self, q: &StatsQuery) -> Result<Vec<Figures>> {
        figures::read(&self.db, q).await
    }

    async fn erase_visitor(&self, site: &SiteId, visitor: &str) -> Result<u64> {
        let _turn = self.write_turn().await;
        let mut tx = self.db.begin_write().await?;
        let leaving = figure_rows(
            &mut tx,
            "site = $1 AND visitor = $2",
            &[&site.0, visitor],
            None,
        )
        .await?;
        apply_figures(&mut tx, figures::delta(&leaving, [])).await?;
        let deleted = sqlx::query("DELETE FROM tickets WHERE site = $1 AND visitor = $2")
            .bind(&site.0)
            .bind(visitor)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for statement in [
            "DELETE FROM visitors WHERE site = $1 AND id = $2",
            "DELETE FROM visitor_triggers WHERE site = $1 AND visitor = $2",
        ] {
            sqlx::query(statement)
                .bind(&site.0)
                .bind(visitor)
                .execute(&mut *tx)
                .await?;
        }
        // Webhook payloads carry the visitor's id (and with it their data): none may go out.
        // By the column; rows written before it existed by their body, the id taken
        // literally (`_` and `%` are wildcards to LIKE).
        let literal = visitor
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        sqlx::query(
            "DELETE FROM deliveries WHERE site = $1 AND (visitor = $2 \
             OR (visitor IS NULL AND body LIKE $3 ESCAPE '\\'))",
        )
        .bind(&site.0)
        .bind(visitor)
        .bind(format!("%{literal}%"))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn expire(&self, before: Millis) -> Result<u64> {
        let _turn = self.write_turn().await;
        let mut tx = self.db.begin_write().await?;
        // Whole days go from the figures at once; the tickets of the day `before` falls in,
        // one by one.
        let day = before.div_euclid(DAY_MS) * DAY_MS;
        let leaving = figure_rows(
            &mut tx,
            "closed_at >= $1 AND closed_at < $2",
            &[],
            Some((day, before)),
        )
        .await?;
        apply_figures(&mut tx, figures::delta(&leaving, [])).await?;
        sqlx::query("DELETE FROM figures WHERE day < $1 OR n = 0")
            .bind(day)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM tickets WHERE closed_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    async fn audit(&self, entry: &AuditEntry) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO audit (id, at, actor, action, site, subject, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(ulid::Ulid::new().to_string())
        .bind(entry.at)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.site.0)
        .bind(&entry.subject)
        .bind(entry.detail.to_string())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn put_visitor(&self, site: &SiteId, profile: &VisitorProfile) -> Result<()> {
        let Some(id) = &profile.id else {
            return Ok(());
        };
        let body = serde_json::to_string(profile).map_err(corrupt)?;
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO visitors (site, id, last_seen, profile) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (site, id) DO UPDATE SET last_seen = excluded.last_seen, \
             profile = excluded.profile",
        )
        .bind(&site.0)
        .bind(&id.0)
        .bind(profile.last_seen)
        .bind(body)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn visitor(&self, site: &SiteId, id: &VisitorId) -> Result<Option<VisitorProfile>> {
        let row = sqlx::query("SELECT profile FROM visitors WHERE site = $1 AND id = $2")
            .bind(&site.0)
            .bind(&id.0)
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|r| serde_json::from_str(&r.get::<String, _>(0)).map_err(corrupt))
            .transpose()
    }

    async fn wait_samples(
        &self,
        site: &SiteId,
        dept: &DeptId,
        limit: u32,
    ) -> Result<Vec<WaitSample>> {
        let rows = sqlx::query(
            "SELECT handling, queue_wait, estimate_secs, estimate_low, estimate_high, \
             estimate_handlings FROM tickets WHERE site = $1 AND department = $2 \
             AND status = 'resolved' ORDER BY closed_at DESC LIMIT $3",
        )
        .bind(&site.0)
        .bind(&dept.0)
        .bind(i64::from(limit))
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(wait_sample).collect())
    }

    async fn wait_accuracy(
        &self,
        site: &SiteId,
        dept: Option<&DeptId>,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<WaitSample>> {
        let mut q = String::from(
            "SELECT handling, queue_wait, estimate_secs, estimate_low, estimate_high, \
             estimate_handlings FROM tickets WHERE site = $1 AND closed_at >= $2 AND closed_at < $3 \
             AND status = 'resolved' AND estimate_secs IS NOT NULL",
        );
        if dept.is_some() {
            q.push_str(" AND department = $4");
        }
        q.push_str(" ORDER BY closed_at DESC LIMIT 100000");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q.as_str()))
            .bind(&site.0)
            .bind(since)
            .bind(until);
        if let Some(d) = dept {
            query = query.bind(&d.0);
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        Ok(rows.iter().map(wait_sample).collect())
    }

    async fn count_over(
        &self,
        site: &SiteId,
        dept: &DeptId,
        range: (Millis, Millis),
        measure: Measure,
        secs: f64,
    ) -> Result<u64> {
        // The column comes from a closed set (`Measure::column`), never from input.
        let q = format!(
            "SELECT COUNT(*) FROM tickets WHERE site = $1 AND department = $2 \
             AND closed_at >= $3 AND closed_at < $4 AND {} > $5",
            measure.column()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(q.as_str()))
            .bind(&site.0)
            .bind(&dept.0)
            .bind(range.0)
            .bind(range.1)
            .bind(secs)
            .persistent(false)
            .fetch_one(self.db.pool())
            .await?;
        Ok(row.try_get::<i64, _>(0)?.max(0) as u64)
    }

    async fn last_agent(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        since: Millis,
    ) -> Result<Option<AgentId>> {
        let row = sqlx::query(
            "SELECT agent FROM tickets WHERE site = $1 AND visitor = $2 AND closed_at >= $3 \
             AND agent IS NOT NULL ORDER BY closed_at DESC LIMIT 1",
        )
        .bind(&site.0)
        .bind(&visitor.0)
        .bind(since)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|r| AgentId(r.get::<String, _>(0))))
    }

    async fn claim_trigger(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        trigger: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool> {
        let _turn = self.write_turn().await;
        // The update happens only where the earlier record has lapsed; a row inserted or
        // updated is a claim made, on both databases.
        let rows = sqlx::query(
            "INSERT INTO visitor_triggers (site, visitor, trigger_id, until) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (site, visitor, trigger_id) \
             DO UPDATE SET until = excluded.until WHERE visitor_triggers.until <= $5",
        )
        .bind(&site.0)
        .bind(&visitor.0)
        .bind(trigger)
        .bind(until)
        .bind(now)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        Ok(rows == 1)
    }

    async fn expire_visitors(&self, before: Millis) -> Result<u64> {
        let _turn = self.write_turn().await;
        let mut tx = self.db.begin_write().await?;
        sqlx::query(
            "DELETE FROM visitor_triggers WHERE EXISTS (SELECT 1 FROM visitors v \
             WHERE v.site = visitor_triggers.site AND v.id = visitor_triggers.visitor \
             AND v.last_seen < $1)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("DELETE FROM visitors WHERE last_seen < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<(String, AuditEntry)>> {
        let mut sql = String::from(
            "SELECT id, at, actor, action, site, subject, detail FROM audit WHERE 1 = 1",
        );
        let mut texts: Vec<&str> = Vec::new();
        for (cond, value) in [
            (" AND site = ", filter.site.as_ref().map(|s| s.0.as_str())),
            (" AND action = ", filter.action.as_deref()),
            (" AND actor = ", filter.actor.as_deref()),
            (" AND subject = ", filter.subject.as_deref()),
            (" AND id < ", filter.cursor.as_deref()),
        ] {
            if let Some(v) = value {
                texts.push(v);
                sql.push_str(&format!("{cond}${}", texts.len()));
            }
        }
        let mut numbers: Vec<i64> = Vec::new();
        for (cond, value) in [(" AND at >= ", filter.since), (" AND at < ", filter.until)] {
            if let Some(v) = value {
                numbers.push(v);
                sql.push_str(&format!("{cond}${}", texts.len() + numbers.len()));
            }
        }
        sql.push_str(&format!(
            " ORDER BY id DESC LIMIT ${}",
            texts.len() + numbers.len() + 1
        ));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
        for t in texts {
            query = query.bind(t);
        }
        for n in numbers {
            query = query.bind(n);
        }
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        for r in query.bind(limit).fetch_all(self.db.pool()).await? {
            let detail: String = r.try_get("detail")?;
            out.push((
                r.try_get("id")?,
                AuditEntry {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    site: SiteId(r.try_get("site")?),
                    subject: r.try_get("subject")?,
                    detail: serde_json::from_str(&detail).map_err(corrupt)?,
                },
            ));
        }
        Ok(out)
    }

    async fn revive(&self, id: &str, now: Millis, expires_at: Millis) -> Result<bool> {
        let rows = sqlx::query("SELECT body FROM deliveries WHERE id = $1 AND dead = 1")
            .bind(id)
            .fetch_all(self.db.pool())
            .await?;
        let Some(mut d) = parse::<Delivery>(rows)?.pop() else {
            return Ok(false);
        };
        d.dead = false;
        d.next_at = now;
        d.expires_at = expires_at;
        self.reschedule(&d).await?;
        Ok(true)
    }
}
