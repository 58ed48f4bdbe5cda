//! A ticket store that times every operation of the one it wraps into
//! `switchboard_db_seconds{op}`, so the database's latency is visible per operation whatever
//! the database is.

use async_trait::async_trait;

use super::{
    AuditEntry, AuditFilter, Delivery, Figures, Measure, Result, StatsQuery, Ticket, TicketFilter,
    TicketStore, VisitorProfile, WaitSample,
};
use crate::db::timed;
use crate::model::{AgentId, DeptId, Millis, SiteId, VisitorId};

pub struct Timed<T>(pub T);

#[async_trait]
impl<T: TicketStore> TicketStore for Timed<T> {
    async fn save(&self, ticket: &Ticket, deliveries: &[Delivery]) -> Result<()> {
        timed("ticket_save", self.0.save(ticket, deliveries)).await
    }
    async fn get(&self, site: &SiteId, id: &str) -> Result<Option<Ticket>> {
        timed("ticket_get", self.0.get(site, id)).await
    }
    async fn list(&self, site: &SiteId, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        timed("ticket_list", self.0.list(site, filter)).await
    }
    async fn enqueue(&self, deliveries: &[Delivery]) -> Result<()> {
        timed("outbox_enqueue", self.0.enqueue(deliveries)).await
    }
    async fn claim(&self, now: Millis, lease_until: Millis, max: usize) -> Result<Vec<Delivery>> {
        timed("outbox_claim", self.0.claim(now, lease_until, max)).await
    }
    async fn delivered(&self, id: &str) -> Result<()> {
        timed("outbox_delivered", self.0.delivered(id)).await
    }
    async fn reschedule(&self, delivery: &Delivery) -> Result<()> {
        timed("outbox_reschedule", self.0.reschedule(delivery)).await
    }
    async fn dead(
        &self,
        site: &SiteId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        timed("outbox_dead", self.0.dead(site, after, limit)).await
    }
    async fn idempotency_claim(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: Millis,
        stale_before: Millis,
    ) -> Result<super::IdempotencyClaim> {
        timed(
            "idempotency_claim",
            self.0
                .idempotency_claim(scope, key, fingerprint, now, stale_before),
        )
        .await
    }
    async fn idempotency_keep(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        content_type: &str,
        body: &str,
    ) -> Result<()> {
        timed(
            "idempotency_keep",
            self.0
                .idempotency_keep(scope, key, status, content_type, body),
        )
        .await
    }
    async fn idempotency_release(&self, scope: &str, key: &str) -> Result<()> {
        timed("idempotency_keep", self.0.idempotency_release(scope, key)).await
    }
    async fn idempotency_expire(&self, before: Millis) -> Result<u64> {
        timed("idempotency_expire", self.0.idempotency_expire(before)).await
    }
    async fn outbox_counts(&self) -> Result<(u64, u64)> {
        timed("outbox_counts", self.0.outbox_counts()).await
    }
    async fn dead_one(&self, site: &SiteId, id: &str) -> Result<Option<Delivery>> {
        timed("outbox_dead", self.0.dead_one(site, id)).await
    }
    async fn dead_counts(&self, site: &SiteId) -> Result<Vec<super::DeadCount>> {
        timed("outbox_dead", self.0.dead_counts(site)).await
    }
    async fn revive(&self, id: &str, now: Millis, expires_at: Millis) -> Result<bool> {
        timed("outbox_revive", self.0.revive(id, now, expires_at)).await
    }
    async fn stats(&self, query: &StatsQuery) -> Result<Vec<Figures>> {
        timed("stats", self.0.stats(query)).await
    }
    async fn erase_visitor(&self, site: &SiteId, visitor: &str) -> Result<u64> {
        timed("erase_visitor", self.0.erase_visitor(site, visitor)).await
    }
    async fn expire(&self, before: Millis) -> Result<u64> {
        timed("ticket_expire", self.0.expire(before)).await
    }
    async fn audit(&self, entry: &AuditEntry) -> Result<()> {
        timed("audit", self.0.audit(entry)).await
    }
    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<(String, AuditEntry)>> {
        timed("audit_log", self.0.audit_log(filter)).await
    }
    async fn put_visitor(&self, site: &SiteId, profile: &VisitorProfile) -> Result<()> {
        timed("visitor_put", self.0.put_visitor(site, profile)).await
    }
    async fn visitor(&self, site: &SiteId, id: &VisitorId) -> Result<Option<VisitorProfile>> {
        timed("visitor_get", self.0.visitor(site, id)).await
    }
    async fn wait_samples(
        &self,
        site: &SiteId,
        dept: &DeptId,
        limit: u32,
    ) -> Result<Vec<WaitSample>> {
        timed("wait_samples", self.0.wait_samples(site, dept, limit)).await
    }
    async fn wait_accuracy(
        &self,
        site: &SiteId,
        dept: Option<&DeptId>,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<WaitSample>> {
        timed(
            "wait_accuracy",
            self.0.wait_accuracy(site, dept, since, until),
        )
        .await
    }
    async fn count_over(
        &self,
        site: &SiteId,
        dept: &DeptId,
        range: (Millis, Millis),
        measure: Measure,
        secs: f64,
    ) -> Result<u64> {
        timed(
            "count_over",
            self.0.count_over(site, dept, range, measure, secs),
        )
        .await
    }
    async fn last_agent(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        since: Millis,
    ) -> Result<Option<AgentId>> {
        timed("last_agent", self.0.last_agent(site, visitor, since)).await
    }
    async fn claim_trigger(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        trigger: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool> {
        let claim = self.0.claim_trigger(site, visitor, trigger, now, until);
        timed("trigger_claim", claim).await
    }
    async fn expire_visitors(&self, before: Millis) -> Result<u64> {
        timed("visitor_expire", self.0.expire_visitors(before)).await
    }
}
