//! Tickets and outbox in Redis. Tickets: `<prefix>:{<site>}:t:<id>` (JSON) indexed by the sorted
//! set `<prefix>:{<site>}:tickets` (all scores 0, so members sort by their time-ordered id).
//! Outbox: `<prefix>:{outbox}:d:<id>` (JSON), due times in `<prefix>:{outbox}:due`, dead letters
//! in `<prefix>:{outbox}:dead`. Writes are MULTI/EXEC transactions; for durability across a
//! Redis crash run Redis with `appendonly yes` (and `appendfsync always` for zero loss).

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::{Delivery, Result, Ticket, TicketFilter, TicketStore};
use crate::model::{Millis, SiteId};
use crate::state::StoreError;

pub struct RedisTickets {
    conn: ConnectionManager,
    prefix: String,
    claim: Script,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl RedisTickets {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            claim: Script::new(include_str!("claim.lua")),
        }
    }

    fn site_key(&self, site: &SiteId, rest: &str) -> String {
        format!("{}:{{{site}}}:{rest}", self.prefix)
    }

    fn outbox_key(&self, rest: &str) -> String {
        format!("{}:{{outbox}}:{rest}", self.prefix)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    async fn write_deliveries(&self, deliveries: &[Delivery]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for d in deliveries {
            let json = serde_json::to_string(d).map_err(corrupt)?;
            pipe.set(self.outbox_key(&format!("d:{}", d.id)), json)
                .ignore();
            if d.dead {
                pipe.zrem(self.outbox_key("due"), &d.id).ignore();
                pipe.zadd(self.outbox_key("dead"), &d.id, d.created_at)
                    .ignore();
            } else {
                pipe.zrem(self.outbox_key("dead"), &d.id).ignore();
                pipe.zadd(self.outbox_key("due"), &d.id, d.next_at).ignore();
            }
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }
}

#[async_trait]
impl TicketStore for RedisTickets {
    async fn save(&self, ticket: &Ticket, deliveries: &[Delivery]) -> Result<()> {
        self.write_deliveries(deliveries).await?;
        let json = serde_json::to_string(ticket).map_err(corrupt)?;
        let _: () = redis::pipe()
            .atomic()
            .set(
                self.site_key(&ticket.site, &format!("t:{}", ticket.id)),
                json,
            )
            .ignore()
            .zadd(self.site_key(&ticket.site, "tickets"), &ticket.id, 0)
            .ignore()
            .zadd(
                self.site_key(&ticket.site, &format!("vt:{}", ticket.visitor.id)),
                &ticket.id,
                0,
            )
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn get(&self, site: &SiteId, id: &str) -> Result<Option<Ticket>> {
        let json: Option<String> = self
            .conn()
            .get(self.site_key(site, &format!("t:{id}")))
            .await?;
        json.map(|j| serde_json::from_str(&j).map_err(corrupt))
            .transpose()
    }

    async fn list(&self, site: &SiteId, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        const BATCH: usize = 200;
        // A visitor's tickets have an index of their own: no scan over the whole site.
        let index = match &filter.visitor {
            Some(v) => self.site_key(site, &format!("vt:{v}")),
            None => self.site_key(site, "tickets"),
        };
        let mut out = Vec::new();
        let mut upper = filter
            .cursor
            .as_ref()
            .map_or_else(|| "+".to_owned(), |c| format!("({c}"));
        loop {
            let ids: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
                .arg(&index)
                .arg(&upper)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(BATCH)
                .query_async(&mut self.conn())
                .await?;
            if ids.is_empty() {
                return Ok(out);
            }
            let keys: Vec<String> = ids
                .iter()
                .map(|id| self.site_key(site, &format!("t:{id}")))
                .collect();
            let docs: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut self.conn())
                .await?;
            for doc in docs.into_iter().flatten() {
                let t: Ticket = serde_json::from_str(&doc).map_err(corrupt)?;
                if filter.matches(&t) {
                    out.push(t);
                    if out.len() >= filter.limit {
                        return Ok(out);
                    }
                }
            }
            if ids.len() < BATCH {
                return Ok(out);
            }
            upper = format!("({}", ids[ids.len() - 1]);
        }
    }

    async fn enqueue(&self, deliveries: &[Delivery]) -> Result<()> {
        self.write_deliveries(deliveries).await
    }

    async fn claim(&self, now: Millis, lease_until: Millis, max: usize) -> Result<Vec<Delivery>> {
        let docs: Vec<String> = self
            .claim
            .key(self.outbox_key("due"))
            .arg(now)
            .arg(lease_until)
            .arg(max)
            .arg(self.outbox_key("d:"))
            .invoke_async(&mut self.conn())
            .await?;
        docs.iter()
            .map(|d| serde_json::from_str(d).map_err(corrupt))
            .collect()
    }

    async fn delivered(&self, id: &str) -> Result<()> {
        let _: () = redis::pipe()
            .atomic()
            .del(self.outbox_key(&format!("d:{id}")))
            .ignore()
            .zrem(self.outbox_key("due"), id)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn reschedule(&self, delivery: &Delivery) -> Result<()> {
        self.write_deliveries(std::slice::from_ref(delivery)).await
    }

    async fn dead(&self, site: &SiteId) -> Result<Vec<Delivery>> {
        let ids: Vec<String> = self.conn().zrange(self.outbox_key("dead"), 0, -1).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.outbox_key(&format!("d:{id}")))
            .collect();
        let docs: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.conn())
            .await?;
        let mut out = Vec::new();
        for doc in docs.into_iter().flatten() {
            let d: Delivery = serde_json::from_str(&doc).map_err(corrupt)?;
            if &d.site == site {
                out.push(d);
            }
        }
        Ok(out)
    }

    async fn revive(&self, id: &str, now: Millis, expires_at: Millis) -> Result<bool> {
        let doc: Option<String> = self.conn().get(self.outbox_key(&format!("d:{id}"))).await?;
        let Some(mut d) = doc
            .map(|d| serde_json::from_str::<Delivery>(&d).map_err(corrupt))
            .transpose()?
            .filter(|d| d.dead)
        else {
            return Ok(false);
        };
        d.dead = false;
        d.next_at = now;
        d.expires_at = expires_at;
        self.write_deliveries(std::slice::from_ref(&d)).await?;
        Ok(true)
    }
}
