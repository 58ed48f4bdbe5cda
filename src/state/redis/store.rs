//! The `Store` contract on Redis: each method one script or one round trip, atomic on the
//! site's slot.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::codec::{corrupt, flat_to_map, parse_agent, parse_conv, parse_snapshot};
use super::scripts::AppendArgs;
use super::{Conn, PRESENCE_PRUNE_MS, RedisStore, VISITOR_TTL_MS, keys};
use crate::directory::model::AgentConfig;
use crate::envelope::Envelope;
use crate::model::{
    AgentId, AgentState, AgentStatus, ConvId, Conversation, DeptId, Event, EventBody, Millis,
    SiteId, VisitorId,
};
use crate::routing::{self, Rules};
use crate::state::{
    Appended, Batch, Guard, Guarded, Rate, Reassign, Result, Span, Start, Store, Unavailable,
};

#[async_trait]
impl Store for RedisStore {
    async fn register_agent(
        &self,
        site: &SiteId,
        agent: &AgentConfig,
        all: &[DeptId],
    ) -> Result<()> {
        let keys = self.keys(site);
        let _: i64 = self
            .scripts
            .register(&keys, agent, all)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn visitor_conversation(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
    ) -> Result<Option<Conversation>> {
        let conv: Option<String> = self
            .conn()
            .hget(self.keys(site).visitor(visitor), "conv")
            .await?;
        match conv {
            Some(c) => self.conversation(site, &ConvId(c)).await,
            None => Ok(None),
        }
    }

    async fn open_conversation(
        &self,
        site: &SiteId,
        new: &Conversation,
    ) -> Result<(Conversation, bool)> {
        let keys = self.keys(site);
        let existing: Option<String> = self
            .scripts
            .open(&keys, new, VISITOR_TTL_MS)
            .invoke_async(&mut self.conn())
            .await?;
        match existing {
            None => Ok((new.clone(), true)),
            Some(id) => {
                let id = ConvId(id);
                let conv = self
                    .conversation(site, &id)
                    .await?
                    .ok_or_else(|| corrupt(format!("conversation {id} vanished")))?;
                Ok((conv, false))
            }
        }
    }

    async fn start_conversation(
        &self,
        site: &SiteId,
        new: &Conversation,
        agent: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> Result<Start> {
        let keys = self.keys(site);
        let r: i64 = self
            .scripts
            .start(&keys, new, agent, now, grace_ms, VISITOR_TTL_MS)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match r {
            1 => Start::Done,
            0 => Start::VisitorBusy,
            _ => Start::AgentFull,
        })
    }

    async fn conversation(&self, site: &SiteId, id: &ConvId) -> Result<Option<Conversation>> {
        let h: HashMap<String, String> = self.conn().hgetall(self.keys(site).conv(id)).await?;
        if h.is_empty() {
            return Ok(None);
        }
        parse_conv(id, &h).map(Some)
    }

    async fn append_guarded(
        &self,
        site: &SiteId,
        conv: &ConvId,
        body: &EventBody,
        guard: &Guard,
    ) -> Result<Guarded> {
        let keys = self.keys(site);
        let json = serde_json::to_string(body).map_err(|e| corrupt(e.to_string()))?;
        let visitor_at = match body {
            EventBody::Message {
                at,
                author: crate::model::AuthorKind::Visitor,
                ..
            } => Some(*at),
            _ => None,
        };
        let guard_arg = match guard {
            Guard::None => None,
            Guard::VisitorOpen(v, _) => Some(format!("v:{v}")),
            Guard::AgentActive(a) => Some(format!("a:{a}")),
        };
        let rate = match guard {
            Guard::VisitorOpen(v, Some(rate)) => Some((rate, Rate::keys(v, Some(conv)))),
            _ => None,
        };
        let args = AppendArgs {
            client_id: body.client_id().unwrap_or(""),
            json,
            site: &site.0,
            visitor_at,
            guard: guard_arg,
            publish: self.publish_command(),
            rate,
            answers: matches!(guard, Guard::AgentActive(_))
                && matches!(body, EventBody::Message { .. }),
        };
        let (seq, flag): (u64, i64) = self
            .scripts
            .append(&keys, conv, args)
            .invoke_async(&mut self.conn())
            .await?;
        if seq == 0 {
            return match (guard, flag) {
                (_, -2) => Ok(Guarded::Limited),
                (Guard::None, _) => Err(corrupt(format!("no conversation {conv}"))),
                _ => Ok(Guarded::Refused),
            };
        }
        Ok(Guarded::Stored(Appended {
            seq,
            duplicate: flag == 1,
        }))
    }

    async fn events(&self, site: &SiteId, conv: &ConvId, span: Span) -> Result<Vec<Event>> {
        let key = self.keys(site).log(conv);
        // Entry ids are `0-<seq>`; both ends exclusive.
        let start = format!("(0-{}", span.after);
        let end = match span.before {
            u64::MAX => "+".to_owned(),
            b => format!("(0-{b}"),
        };
        if span.after.saturating_add(1) >= span.before || span.limit == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = if span.latest {
            let mut c = redis::cmd("XREVRANGE");
            c.arg(&key).arg(end).arg(start);
            c
        } else {
            let mut c = redis::cmd("XRANGE");
            c.arg(&key).arg(start).arg(end);
            c
        };
        if span.limit != usize::MAX {
            cmd.arg("COUNT").arg(span.limit);
        }
        let entries: Vec<(String, HashMap<String, String>)> =
            cmd.query_async(&mut self.conn()).await?;
        let mut events = entries
            .into_iter()
            .map(|(_, fields)| {
                let raw = fields
                    .get("e")
                    .ok_or_else(|| corrupt(format!("log entry of {conv} without event")))?;
                serde_json::from_str(raw).map_err(|e| corrupt(format!("event of {conv}: {e}")))
            })
            .collect::<Result<Vec<Event>>>()?;
        if span.latest {
            events.reverse();
        }
        Ok(events)
    }

    async fn enqueue(
        &self,
        site: &SiteId,
        conv: &ConvId,
        dept: &DeptId,
        at_head: bool,
        now: Millis,
        rules: &Rules,
    ) -> Result<bool> {
        let keys = self.keys(site);
        let ok: i64 = self
            .scripts
            .enqueue(&keys, conv, dept, now, at_head, rules.priority_unit, None)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(ok == 1)
    }

    async fn move_queued(
        &self,
        site: &SiteId,
        conv: &ConvId,
        from: &DeptId,
        to: &DeptId,
        now: Millis,
        rules: &Rules,
    ) -> Result<bool> {
        let keys = self.keys(site);
        let ok: i64 = self
            .scripts
            .enqueue(&keys, conv, to, now, true, rules.priority_unit, Some(from))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(ok == 1)
    }

    async fn assign_batch(
        &self,
        site: &SiteId,
        dept: &DeptId,
        now: Millis,
        grace_ms: Millis,
        rules: &Rules,
        batch: usize,
    ) -> Result<Batch> {
        // Another node deciding for the same department at once makes the apply refuse; a
        // fresh snapshot then sees its assignments. Past the attempts, that node is draining
        // the department: it assigns what is left.
        const ATTEMPTS: usize = 8;
        let keys = self.keys(site);
        for _ in 0..ATTEMPTS {
            let (queue, agents, read): (Vec<String>, Vec<String>, usize) = self
                .scripts
                .snapshot(&keys, dept, now, grace_ms, batch, rules.widen_after_ms)
                .invoke_async(&mut self.conn())
                .await?;
            let snap = parse_snapshot(now, grace_ms, rules, queue, agents)?;
            let decided = routing::decide(&snap, batch);
            if decided.is_empty() {
                return Ok(Batch::default());
            }
            let more = routing::more_after(decided.len(), batch, read);
            let applied: Option<Vec<String>> = self
                .scripts
                .apply(&keys, dept, now, grace_ms, rules.offer, &decided)
                .invoke_async(&mut self.conn())
                .await?;
            match applied {
                Some(flat) => {
                    let assigned = flat
                        .chunks_exact(3)
                        .map(|c| (ConvId(c[0].clone()), AgentId(c[1].clone()), c[2].clone()))
                        .collect();
                    return Ok(Batch { assigned, more });
                }
                None => metrics::counter!(crate::observe::ROUTING_CONFLICTS).increment(1),
            }
        }
        Ok(Batch::default())
    }

    fn decision_batch(&self) -> usize {
        // Measured on the 10,000-chat burst (docs/performance.md): 64 a batch took 3.1–3.3 s,
        // 128 took 2.1–2.8 s, 256 took 1.9–2.6 s; each script stays a few milliseconds.
        256
    }

    async fn queue_position(
        &self,
        site: &SiteId,
        dept: &DeptId,
        conv: &ConvId,
    ) -> Result<Option<u32>> {
        let rank: Option<u64> = self
            .conn()
            .zrank(self.keys(site).queue(dept), &conv.0)
            .await?;
        Ok(rank.map(|r| r as u32 + 1))
    }

    async fn queue(&self, site: &SiteId, dept: &DeptId) -> Result<Vec<(ConvId, Millis)>> {
        // A page per script call: reading 10,000 at once held Redis for 30-50 ms, four times a
        // second during a burst. Between pages the queue may move: a chat read twice keeps its
        // first place; one that moved across a page's edge is missed until the next read.
        const PAGE: usize = 1000;
        let keys = self.keys(site);
        let mut out: Vec<(ConvId, Millis)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut first = 0;
        loop {
            let flat: Vec<String> = self
                .scripts
                .queue(&keys, dept, first, PAGE)
                .invoke_async(&mut self.conn())
                .await?;
            let read = flat.len() / 2;
            first += read;
            let mut it = flat.into_iter();
            while let (Some(c), Some(t)) = (it.next(), it.next()) {
                if seen.insert(c.clone()) {
                    out.push((ConvId(c), t.parse().unwrap_or(0)));
                }
            }
            if read < PAGE {
                return Ok(out);
            }
        }
    }

    async fn close(
        &self,
        site: &SiteId,
        conv: &ConvId,
        reason: &str,
        now: Millis,
        retention_ms: Millis,
    ) -> Result<Option<Conversation>> {
        let keys = self.keys(site);
        let flat: Option<Vec<String>> = self
            .scripts
            .close(&keys, conv, reason, now, retention_ms)
            .invoke_async(&mut self.conn())
            .await?;
        flat.map(|f| parse_conv(conv, &flat_to_map(f))).transpose()
    }

    async fn unassign(
        &self,
        site: &SiteId,
        conv: &ConvId,
        owner: &AgentId,
        dept: &DeptId,
        now: Millis,
        rules: &Rules,
        needs: Option<&crate::routing::Needs>,
    ) -> Result<bool> {
        let keys = self.keys(site);
        let ok: i64 = self
            .scripts
            .unassign(&keys, conv, owner, dept, now, rules.priority_unit, needs)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(ok == 1)
    }

    async fn accept(
        &self,
        site: &SiteId,
        conv: &ConvId,
        owner: &AgentId,
        now: Millis,
    ) -> Result<bool> {
        let ok: i64 = self
            .scripts
            .accept(&self.keys(site), conv, owner, now)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(ok == 1)
    }

    async fn pending(&self, site: &SiteId, before: Millis) -> Result<Vec<Conversation>> {
        let keys = self.keys(site);
        let ids: Vec<String> = self
            .conn()
            .zrangebyscore(keys.pending(), "-inf", format!("({before}"))
            .await?;
        if ids.is_empty() {
            // An empty pipeline is an error to the client ("empty command").
            return Ok(Vec::new());
        }
        // One round trip for all of them: with a first-response target every unanswered chat
        // is read on each sweep.
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(keys.conv(id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut self.conn()).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, h) in ids.into_iter().map(ConvId).zip(hashes) {
            if h.is_empty() {
                continue;
            }
            let c = parse_conv(&id, &h)?;
            if c.state == crate::model::ConvState::Active && c.pending_since.is_some() {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn reassign(
        &self,
        site: &SiteId,
        conv: &ConvId,
        from: &AgentId,
        to: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> Result<Reassign> {
        let keys = self.keys(site);
        let r: i64 = self
            .scripts
            .reassign(&keys, conv, from, to, now, grace_ms)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match r {
            1 => Reassign::Done,
            0 => Reassign::NotOwner,
            -1 => Reassign::TargetUnavailable(Unavailable::Yourself),
            -2 => Reassign::TargetUnavailable(Unavailable::NotOnline),
            -3 => Reassign::TargetUnavailable(Unavailable::Full),
            _ => Reassign::TargetUnavailable(Unavailable::Disconnected),
        })
    }

    async fn set_status(&self, site: &SiteId, agent: &AgentId, status: AgentStatus) -> Result<()> {
        // Status, the per-department online sets and the routing index change together.
        self.set_field(site, agent, "status", status.as_str()).await
    }

    async fn set_limit(&self, site: &SiteId, agent: &AgentId, limit: u32) -> Result<()> {
        // The engine checked the limit against the configured cap.
        self.set_field(site, agent, "max", &limit.to_string()).await
    }

    async fn set_presence(
        &self,
        site: &SiteId,
        agent: &AgentId,
        node: &str,
        until: Millis,
    ) -> Result<()> {
        let _: i64 = self
            .scripts
            .presence(
                &self.keys(site),
                agent,
                node,
                until,
                until - PRESENCE_PRUNE_MS,
            )
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn agent(&self, site: &SiteId, id: &AgentId) -> Result<Option<AgentState>> {
        self.read_agent(site, id).await
    }

    async fn agents(&self, site: &SiteId) -> Result<Vec<AgentState>> {
        let keys = self.keys(site);
        let mut ids: Vec<String> = self.conn().smembers(keys.agents()).await?;
        if ids.is_empty() {
            // An empty pipeline is an error to the client ("empty command").
            return Ok(Vec::new());
        }
        ids.sort();
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(keys.agent(id))
                .smembers(keys.chats(id))
                .hgetall(keys.since(id));
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut it = replies.into_iter();
        for id in ids {
            let (Some(h), Some(c), Some(since)) = (it.next(), it.next(), it.next()) else {
                break;
            };
            let h: HashMap<String, String> =
                redis::from_redis_value(h).map_err(|e| corrupt(e.to_string()))?;
            let c: Vec<String> = redis::from_redis_value(c).map_err(|e| corrupt(e.to_string()))?;
            let since: HashMap<String, Millis> =
                redis::from_redis_value(since).map_err(|e| corrupt(e.to_string()))?;
            if !h.is_empty() {
                out.push(parse_agent(&AgentId(id), &h, c, &since)?);
            }
        }
        Ok(out)
    }

    async fn visitor_left(&self, site: &SiteId, visitor: &VisitorId) -> Result<()> {
        let _: i64 = self.conn().zrem(self.keys(site).live(), &visitor.0).await?;
        Ok(())
    }

    async fn set_visitor_presence(
        &self,
        site: &SiteId,
        visitors: &[VisitorId],
        until: Millis,
    ) -> Result<()> {
        if visitors.is_empty() {
            return Ok(());
        }
        let key = self.keys(site).live();
        let mut pipe = redis::pipe();
        for chunk in visitors.chunks(500) {
            let items: Vec<(Millis, &str)> = chunk.iter().map(|v| (until, v.0.as_str())).collect();
            pipe.zadd_multiple(&key, &items).ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn live_visitors(&self, site: &SiteId, now: Millis) -> Result<Vec<VisitorId>> {
        // Those some node vouches for beyond now (the sweep forgets the others).
        let ids: Vec<String> = self
            .conn()
            .zrangebyscore(self.keys(site).live(), format!("({now}"), "+inf")
            .await?;
        let mut ids: Vec<VisitorId> = ids.into_iter().map(VisitorId).collect();
        ids.sort();
        Ok(ids)
    }

    async fn inactive(&self, site: &SiteId, before: Millis) -> Result<Vec<(ConvId, Millis)>> {
        let ids: Vec<(String, f64)> = self
            .conn()
            .zrangebyscore_withscores(self.keys(site).activity(), "-inf", format!("({before}"))
            .await?;
        Ok(ids
            .into_iter()
            .map(|(c, t)| (ConvId(c), t as Millis))
            .collect())
    }

    async fn unticketed(&self, site: &SiteId) -> Result<Vec<ConvId>> {
        let ids: Vec<String> = self.conn().smembers(self.keys(site).unticketed()).await?;
        Ok(ids.into_iter().map(ConvId).collect())
    }

    async fn mark_ticketed(&self, site: &SiteId, conv: &ConvId) -> Result<()> {
        let _: i64 = self
            .conn()
            .srem(self.keys(site).unticketed(), &conv.0)
            .await?;
        Ok(())
    }

    async fn mark_read(
        &self,
        site: &SiteId,
        conv: &ConvId,
        agent: bool,
        seq: u64,
    ) -> Result<Option<u64>> {
        let mark: u64 = self
            .scripts
            .read(&self.keys(site), conv, agent, seq)
            .invoke_async(&mut self.conn())
            .await?;
        Ok((mark > 0).then_some(mark))
    }

    async fn publish(&self, site: &SiteId, envelope: &Envelope) -> Result<()> {
        let json = serde_json::to_string(envelope).map_err(|e| corrupt(e.to_string()))?;
        let _: i64 = redis::cmd(self.publish_command())
            .arg(self.keys(site).channel())
            .arg(json)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    fn follow_sites(&self, sites: Vec<SiteId>) {
        if let Some(tx) = &self.sites_tx {
            tx.send_if_modified(|current| {
                let changed = *current != sites;
                if changed {
                    // Not ready until the subscriber has confirmed the new sites' channels.
                    self.subscribed.store(false, Ordering::Release);
                }
                *current = sites;
                changed
            });
        }
    }

    async fn ready(&self) -> Result<bool> {
        if let Conn::Cluster(mut cluster) = self.connection() {
            // Every primary answers and says every slot is served. One node's view alone is
            // not enough: the others call a silent primary failed only after the node timeout
            // (15 s by default), and until a replica takes over the cluster refuses every
            // command. The client asks the primaries it reaches; fewer answers than the
            // cluster's size means one is gone.
            use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
            let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
            let answers = cluster
                .route_command(redis::cmd("CLUSTER").arg("INFO").clone(), all)
                .await?;
            let redis::Value::Map(answers) = answers else {
                return Ok(false);
            };
            let healthy = |info: &redis::Value| {
                let Ok(info) = redis::from_redis_value_ref::<String>(info) else {
                    return false;
                };
                let field = |name: &str| {
                    info.lines()
                        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
                };
                field("cluster_state") == Some("ok")
                    && field("cluster_size")
                        .and_then(|n| n.parse::<usize>().ok())
                        .is_some_and(|size| answers.len() >= size)
            };
            let ok = !answers.is_empty() && answers.iter().all(|(_, info)| healthy(info));
            return Ok(ok && self.subscribed.load(Ordering::Acquire));
        }
        // ROLE answers like PING and also tells a primary from a replica (read-only, so every
        // write would fail: not ready).
        let role: redis::Value = redis::cmd("ROLE").query_async(&mut self.conn()).await?;
        let primary = match &role {
            redis::Value::Array(parts) => matches!(
                parts.first(),
                Some(redis::Value::BulkString(r)) if r.as_slice() == b"master"
            ),
            _ => false,
        };
        Ok(primary && self.subscribed.load(Ordering::Acquire))
    }

    async fn state_lost(&self) -> Result<bool> {
        // On a cluster each shard can lose its data on its own: one epoch per site, in the
        // site's slot. Elsewhere one key tells for the whole server.
        let keys: Vec<String> = match &self.sites_tx {
            Some(tx) => tx.borrow().iter().map(|s| self.keys(s).epoch()).collect(),
            None => vec![keys::server_epoch(&self.prefix)],
        };
        // Together: on a cluster each site's key may be on another shard.
        let checks =
            futures_util::future::join_all(keys.into_iter().map(|k| self.epoch_changed(k)));
        let mut lost = false;
        for changed in checks.await {
            lost |= changed?;
        }
        Ok(lost)
    }

    async fn count(
        &self,
        site: &SiteId,
        keys: &[String],
        window_ms: i64,
        now: Millis,
    ) -> Result<u64> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in keys {
            let k = self.keys(site).rate(key, window_ms, now);
            pipe.incr(&k, 1u64).pexpire(&k, window_ms.max(1)).ignore();
        }
        let counts: Vec<u64> = pipe.query_async(&mut self.conn()).await?;
        Ok(counts.into_iter().max().unwrap_or(0))
    }

    async fn forget_visitor(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        convs: &[ConvId],
    ) -> Result<()> {
        let keys = self.keys(site);
        let current: Option<String> = self.conn().hget(keys.visitor(visitor), "conv").await?;
        let mut pipe = redis::pipe();
        pipe.del(keys.visitor(visitor))
            .ignore()
            .zrem(keys.live(), &visitor.0)
            .ignore();
        let current = current.filter(|c| !c.is_empty()).map(ConvId);
        for conv in convs.iter().chain(current.as_ref()) {
            pipe.del(&[keys.conv(conv), keys.log(conv), keys.cids(conv)])
                .ignore()
                .srem(keys.unticketed(), &conv.0)
                .ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn sweep_closed(&self, sites: &[SiteId], now: Millis) -> Result<()> {
        // Closed conversations' keys carry a TTL set by the close script. Visitors whose node
        // died without saying they left lapse here.
        // One call per site: on a cluster each site's keys live on their own shard.
        for site in sites {
            let _: i64 = self
                .conn()
                .zrembyscore(self.keys(site).live(), "-inf", now)
                .await?;
        }
        Ok(())
    }
}
