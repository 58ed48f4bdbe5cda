//! The Lua scripts (in `lua/`), each behind one typed call that owns its argument order: what
//! the script's header comment says of `KEYS` and `ARGV` is written once, here, and every
//! caller passes named Rust values. A script that changes what routing depends on carries
//! the index maintenance it calls (`lua/index.lua`) in front of its body.

use redis::{Script, ScriptInvocation};

use super::keys::SiteKeys;
use crate::directory::model::AgentConfig;
use crate::model::{AgentId, ConvId, Conversation, DeptId, Millis};
use crate::routing::{self, Assignment};
use crate::state::Rate;

/// The scripts, loaded once per store (`EVALSHA`, loaded again by the client on `NOSCRIPT`).
pub(super) struct Scripts {
    append: Script,
    open: Script,
    enqueue: Script,
    snapshot: Script,
    apply: Script,
    queue: Script,
    close: Script,
    unassign: Script,
    reassign: Script,
    register: Script,
    presence: Script,
    start: Script,
    set: Script,
    read: Script,
    accept: Script,
}

/// A script that changes what routing depends on, with the index maintenance it calls.
fn indexing(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", include_str!("lua/index.lua")))
}

/// A new conversation's hash fields, as `open.lua` and `start.lua` take them (field, value, …).
fn conv_fields(inv: &mut ScriptInvocation<'_>, new: &Conversation) {
    inv.arg("visitor")
        .arg(&new.visitor.0)
        .arg("department")
        .arg(&new.department.0)
        .arg("state")
        .arg(new.state.as_str())
        .arg("priority")
        .arg(new.priority)
        .arg("created_at")
        .arg(new.created_at)
        .arg("locale")
        .arg(&new.locale)
        .arg("seq")
        .arg(0);
    if !new.needs.is_empty() {
        // Plain data of our own: serialising it cannot fail.
        inv.arg("needs")
            .arg(serde_json::to_string(&new.needs).unwrap_or_default());
    }
}

/// What `append.lua` is told of the event besides its body.
pub(super) struct AppendArgs<'a> {
    pub client_id: &'a str,
    pub json: String,
    pub site: &'a str,
    /// When a visitor's message: its time (the inactivity clock); None otherwise.
    pub visitor_at: Option<Millis>,
    /// `v:<visitor>` (the visitor's open chat), `a:<agent>` (the agent's active chat), or
    /// None.
    pub guard: Option<String>,
    pub publish: &'static str,
    /// With a rate: its counters' keys are added, and its limit and window passed.
    pub rate: Option<(&'a Rate, Vec<String>)>,
    /// The owner's reply to the visitor: it ends the first-reply clock.
    pub answers: bool,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            append: Script::new(include_str!("lua/append.lua")),
            open: Script::new(include_str!("lua/open.lua")),
            enqueue: Script::new(include_str!("lua/enqueue.lua")),
            snapshot: indexing(include_str!("lua/snapshot.lua")),
            apply: indexing(include_str!("lua/apply.lua")),
            queue: Script::new(include_str!("lua/queue.lua")),
            close: indexing(include_str!("lua/close.lua")),
            unassign: indexing(include_str!("lua/unassign.lua")),
            reassign: indexing(include_str!("lua/reassign.lua")),
            register: indexing(include_str!("lua/register.lua")),
            presence: indexing(include_str!("lua/presence.lua")),
            start: indexing(include_str!("lua/start.lua")),
            set: indexing(include_str!("lua/set.lua")),
            read: Script::new(include_str!("lua/read.lua")),
            accept: Script::new(include_str!("lua/accept.lua")),
        }
    }

    /// `register.lua`: the agent's record and department sets from the directory.
    pub(super) fn register(
        &self,
        keys: &SiteKeys,
        agent: &AgentConfig,
        all_departments: &[DeptId],
    ) -> ScriptInvocation<'_> {
        // Lists of plain strings: serialising them cannot fail.
        let depts = serde_json::to_string(&agent.departments).unwrap_or_default();
        let skills = serde_json::to_string(&agent.skills).unwrap_or_default();
        let mut inv = self.register.prepare_invoke();
        inv.key(keys.agent(&agent.id))
            .key(keys.agents())
            .arg(keys.base())
            .arg(&agent.id.0)
            .arg(&agent.name)
            .arg(depts)
            .arg(agent.max_concurrent)
            .arg(skills);
        for d in all_departments {
            inv.arg(&d.0);
        }
        inv
    }

    /// `open.lua`: the visitor's conversation, unless one is open already (its id comes back).
    pub(super) fn open(
        &self,
        keys: &SiteKeys,
        new: &Conversation,
        visitor_ttl_ms: Millis,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.open.prepare_invoke();
        inv.key(keys.visitor(&new.visitor))
            .key(keys.conv(&new.id))
            .arg(keys.base())
            .arg(&new.id.0)
            .arg(visitor_ttl_ms);
        conv_fields(&mut inv, new);
        inv
    }

    /// `start.lua`: a conversation an agent starts, assigned to them at once.
    pub(super) fn start(
        &self,
        keys: &SiteKeys,
        new: &Conversation,
        agent: &AgentId,
        now: Millis,
        grace_ms: Millis,
        visitor_ttl_ms: Millis,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.start.prepare_invoke();
        inv.key(keys.visitor(&new.visitor))
            .key(keys.conv(&new.id))
            .key(keys.agent(agent))
            .arg(keys.base())
            .arg(&new.id.0)
            .arg(&agent.0)
            .arg(now)
            .arg(grace_ms)
            .arg(visitor_ttl_ms);
        // The script sets state and owner itself after these.
        conv_fields(&mut inv, new);
        inv
    }

    /// `append.lua`: one event stored and published, guarded and counted as asked.
    pub(super) fn append(
        &self,
        keys: &SiteKeys,
        conv: &ConvId,
        args: AppendArgs<'_>,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.append.prepare_invoke();
        inv.key(keys.conv(conv))
            .key(keys.log(conv))
            .key(keys.cids(conv))
            .key(keys.activity())
            .key(keys.pending());
        let (limit, window) = match &args.rate {
            Some((rate, counters)) => {
                for k in counters {
                    inv.key(keys.rate(k, rate.window_ms, rate.now));
                }
                (rate.limit.to_string(), rate.window_ms.max(1).to_string())
            }
            None => (String::new(), String::new()),
        };
        inv.arg(args.client_id)
            .arg(args.json)
            .arg(keys.channel())
            .arg(args.site)
            .arg(&conv.0)
            .arg(args.visitor_at.map(|t| t.to_string()).unwrap_or_default())
            .arg(args.guard.unwrap_or_default())
            .arg(args.publish)
            .arg(limit)
            .arg(window)
            .arg(if args.answers { "1" } else { "0" });
        inv
    }

    /// `enqueue.lua`: a conversation into its department's queue (at the head on a requeue);
    /// with `only_from`, only if it is waiting in that department's queue now (a move).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn enqueue(
        &self,
        keys: &SiteKeys,
        conv: &ConvId,
        dept: &DeptId,
        now: Millis,
        at_head: bool,
        priority_unit: i64,
        only_from: Option<&DeptId>,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.enqueue.prepare_invoke();
        inv.key(keys.conv(conv))
            .key(keys.queue(dept))
            .key(keys.arrivals())
            .arg(&conv.0)
            .arg(&dept.0)
            .arg(now)
            .arg(if at_head { "1" } else { "0" })
            .arg(keys.base())
            .arg(priority_unit);
        if let Some(from) = only_from {
            inv.arg(&from.0);
        }
        inv
    }

    /// `snapshot.lua`: the head of a department's queue (`routing::window` of it) and as many
    /// of its agents as a decision of `batch` assignments can use (`routing::reach`).
    pub(super) fn snapshot(
        &self,
        keys: &SiteKeys,
        dept: &DeptId,
        now: Millis,
        grace_ms: Millis,
        batch: usize,
        widen_after_ms: Option<Millis>,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.snapshot.prepare_invoke();
        inv.key(keys.queue(dept))
            .key(keys.available(dept))
            .arg(keys.base())
            .arg(now)
            .arg(grace_ms)
            .arg(&dept.0)
            .arg(routing::window(batch))
            .arg(batch)
            .arg(widen_after_ms.unwrap_or(-1));
        inv
    }

    /// `apply.lua`: a decision's assignments, if what it read of each agent still holds.
    pub(super) fn apply(
        &self,
        keys: &SiteKeys,
        dept: &DeptId,
        now: Millis,
        grace_ms: Millis,
        offer: bool,
        decided: &[Assignment],
    ) -> ScriptInvocation<'_> {
        let mut inv = self.apply.prepare_invoke();
        inv.key(keys.queue(dept))
            .arg(keys.base())
            .arg(now)
            .arg(grace_ms)
            .arg(if offer { "1" } else { "0" });
        for a in decided {
            inv.arg(&a.conv.0)
                .arg(&a.agent.0)
                .arg(a.read_load)
                .arg(a.read_max);
        }
        inv
    }

    /// `queue.lua`: a department's queue, in order, with arrival times.
    pub(super) fn queue(
        &self,
        keys: &SiteKeys,
        dept: &DeptId,
        first: usize,
        page: usize,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.queue.prepare_invoke();
        inv.key(keys.queue(dept))
            .arg(keys.base())
            .arg(first)
            .arg(page);
        inv
    }

    /// `close.lua`: a conversation closed, its keys set to expire after the retention.
    pub(super) fn close(
        &self,
        keys: &SiteKeys,
        conv: &ConvId,
        reason: &str,
        now: Millis,
        retention_ms: Millis,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.close.prepare_invoke();
        inv.key(keys.conv(conv))
            .key(keys.log(conv))
            .key(keys.cids(conv))
            .arg(keys.base())
            .arg(&conv.0)
            .arg(reason)
            .arg(now)
            .arg(retention_ms.max(1));
        inv
    }

    /// `unassign.lua`: an agent's conversation back to the head of its queue.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn unassign(
        &self,
        keys: &SiteKeys,
        conv: &ConvId,
        owner: &AgentId,
        dept: &DeptId,
        now: Millis,
        priority_unit: i64,
        needs: Option<&crate::routing::Needs>,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.unassign.prepare_invoke();
        inv.key(keys.conv(conv))
            .key(keys.queue(dept))
            .key(keys.arrivals())
            .arg(keys.base())
            .arg(&conv.0)
            .arg(&owner.0)
            .arg(&dept.0)
            .arg(now)
            .arg(priority_unit)
            // Plain data of our own: serialising it cannot fail.
            .arg(
                needs
                    .map(|n| serde_json::to_string(n).unwrap_or_default())
                    .unwrap_or_default(),
            );
        inv
    }

    /// `accept.lua`: the owner accepts a chat offered to them.
    pub(super) fn accept(
        &self,
        keys: &SiteKeys,
        conv: &ConvId,
        owner: &AgentId,
        now: Millis,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.accept.prepare_invoke();
        inv.key(keys.conv(conv))
            .key(keys.pending())
            .arg(&conv.0)
            .arg(&owner.0)
            .arg(now);
        inv
    }

    /// `reassign.lua`: a transfer from one agent to another, within the target's limit.
    pub(super) fn reassign(
        &self,
        keys: &SiteKeys,
        conv: &ConvId,
        from: &AgentId,
        to: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.reassign.prepare_invoke();
        inv.key(keys.conv(conv))
            .key(keys.agent(from))
            .key(keys.agent(to))
            .arg(&conv.0)
            .arg(&from.0)
            .arg(&to.0)
            .arg(now)
            .arg(grace_ms)
            .arg(keys.base());
        inv
    }

    /// `set.lua`: an agent's `status` or `max`, with the department sets and routing index.
    pub(super) fn set(
        &self,
        keys: &SiteKeys,
        agent: &AgentId,
        field: &str,
        value: &str,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.set.prepare_invoke();
        inv.key(keys.agent(agent))
            .arg(keys.base())
            .arg(&agent.0)
            .arg(field)
            .arg(value);
        inv
    }

    /// `presence.lua`: `node` vouches for the agent until `until`; fields of nodes silent
    /// since before `prune_before` go.
    pub(super) fn presence(
        &self,
        keys: &SiteKeys,
        agent: &AgentId,
        node: &str,
        until: Millis,
        prune_before: Millis,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.presence.prepare_invoke();
        inv.key(keys.agent(agent))
            .arg(format!("node:{node}"))
            .arg(until)
            .arg(prune_before)
            .arg(keys.base())
            .arg(&agent.0);
        inv
    }

    /// `read.lua`: one side's read mark raised to `seq` (capped at the last event).
    pub(super) fn read(
        &self,
        keys: &SiteKeys,
        conv: &ConvId,
        agent: bool,
        seq: u64,
    ) -> ScriptInvocation<'_> {
        let mut inv = self.read.prepare_invoke();
        inv.key(keys.conv(conv))
            .arg(if agent { "ar" } else { "vr" })
            .arg(seq);
        inv
    }
}
