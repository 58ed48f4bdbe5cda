//! Every key and channel of the Redis backend, built here and nowhere else.
//!
//! Keys are `<prefix>:{<site>}:…`: the braces are a Redis Cluster hash tag, so everything of one
//! site lives in one slot and each Lua script (in `lua/`) touches one slot. Layout:
//! - `c:<conv>` hash (routing record and `seq` counter), `c:<conv>:log` stream (events, id
//!   `0-<seq>`), `c:<conv>:cids` hash (client id → seq, for idempotent sends);
//! - `v:<visitor>` hash (the visitor's current `conv`), written when a conversation opens;
//!   visitor profiles are records in the database, so a visitor who never writes leaves no key;
//! - `a:<agent>` hash (status, max, cap, load, idle_since, depts, `node:<id>` presence per node),
//!   `a:<agent>:chats` set, `a:<agent>:since` hash (chat → when it was assigned, for the wait
//!   estimate), `agents` set;
//! - `d:<dept>:agents` set (the department's agents), `d:<dept>:online` set (those online),
//!   `d:<dept>:avail` sorted set (those online below their limit, best first: routing reads its
//!   head, `lua/index.lua`);
//! - `q:<dept>` sorted set (score: priority band, then arrival number), `arrivals` counter (that
//!   number, so two visitors in one millisecond keep their order);
//! - `activity` sorted set (active conversation → the visitor's last message, for the
//!   inactivity close), `unticketed` set (closed conversations whose ticket is not yet known to
//!   be saved), `live` sorted set (visitor → until when some node vouches for their socket);
//! - `rate:<key>:<window>` counters (`Store::count`), one per window, expiring with it;
//! - `epoch` (on a cluster; elsewhere `<prefix>:epoch` for the whole server): a random id the
//!   first node writes into an empty Redis, so a node can tell its data was lost;
//! - channel `ev` carries every `Envelope` of the site to every node.
//!
//! Scripts build the keys of the department sets and the routing index themselves from the
//! site's base (`SiteKeys::base`), since which departments an agent has is read inside them.
//! Tickets and the webhook outbox of earlier versions have their own keys (`tickets::redis`).

use std::fmt::Display;

use crate::model::{Millis, SiteId};

/// The keys of one site.
pub(super) struct SiteKeys {
    /// `<prefix>:{<site>}:`, which every key of the site starts with.
    base: String,
}

impl SiteKeys {
    pub(super) fn new(prefix: &str, site: &SiteId) -> Self {
        Self {
            base: format!("{prefix}:{{{site}}}:"),
        }
    }

    /// `<prefix>:{<site>}:`, for the scripts that build further keys of the site.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    fn key(&self, rest: impl Display) -> String {
        format!("{}{rest}", self.base)
    }

    pub(super) fn conv(&self, conv: impl Display) -> String {
        self.key(format_args!("c:{conv}"))
    }
    pub(super) fn log(&self, conv: impl Display) -> String {
        self.key(format_args!("c:{conv}:log"))
    }
    pub(super) fn cids(&self, conv: impl Display) -> String {
        self.key(format_args!("c:{conv}:cids"))
    }
    pub(super) fn visitor(&self, visitor: impl Display) -> String {
        self.key(format_args!("v:{visitor}"))
    }
    pub(super) fn agent(&self, agent: impl Display) -> String {
        self.key(format_args!("a:{agent}"))
    }
    pub(super) fn chats(&self, agent: impl Display) -> String {
        self.key(format_args!("a:{agent}:chats"))
    }
    pub(super) fn since(&self, agent: impl Display) -> String {
        self.key(format_args!("a:{agent}:since"))
    }
    pub(super) fn agents(&self) -> String {
        self.key("agents")
    }
    pub(super) fn queue(&self, dept: impl Display) -> String {
        self.key(format_args!("q:{dept}"))
    }
    pub(super) fn available(&self, dept: impl Display) -> String {
        self.key(format_args!("d:{dept}:avail"))
    }
    pub(super) fn arrivals(&self) -> String {
        self.key("arrivals")
    }
    pub(super) fn activity(&self) -> String {
        self.key("activity")
    }
    /// Active chats whose owner has not acted yet (accepted, or replied), by since when.
    pub(super) fn pending(&self) -> String {
        self.key("pending")
    }
    pub(super) fn live(&self) -> String {
        self.key("live")
    }
    pub(super) fn unticketed(&self) -> String {
        self.key("unticketed")
    }
    pub(super) fn epoch(&self) -> String {
        self.key("epoch")
    }
    /// The counter of `key` for the window `now` falls in: one key per window, expiring with
    /// it, so nothing is left behind.
    pub(super) fn rate(&self, key: &str, window_ms: i64, now: Millis) -> String {
        self.key(format_args!(
            "rate:{key}:{}",
            now.div_euclid(window_ms.max(1))
        ))
    }
    /// The site's channel: every `Envelope` of the site, in the site's slot.
    pub(super) fn channel(&self) -> String {
        self.key("ev")
    }
}

/// The epoch key of a whole (non-cluster) server.
pub(super) fn server_epoch(prefix: &str) -> String {
    format!("{prefix}:epoch")
}

/// The pattern every site's channel matches, for one subscription that hears them all.
pub(super) fn channel_pattern(prefix: &str) -> String {
    format!("{}:{{*}}:ev", glob_escape(prefix))
}

/// A key prefix as a literal in a Redis glob pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys keep the layout above (and the data of earlier versions readable): the site's
    /// hash tag, then the kind; a prefix's glob characters are escaped in the pattern.
    #[test]
    fn keys_keep_their_layout() {
        let k = SiteKeys::new("sb", &SiteId("demo".into()));
        assert_eq!(k.base(), "sb:{demo}:");
        assert_eq!(k.conv("c1"), "sb:{demo}:c:c1");
        assert_eq!(k.log("c1"), "sb:{demo}:c:c1:log");
        assert_eq!(k.cids("c1"), "sb:{demo}:c:c1:cids");
        assert_eq!(k.visitor("v1"), "sb:{demo}:v:v1");
        assert_eq!(k.agent("alice"), "sb:{demo}:a:alice");
        assert_eq!(k.chats("alice"), "sb:{demo}:a:alice:chats");
        assert_eq!(k.queue("support"), "sb:{demo}:q:support");
        assert_eq!(k.available("support"), "sb:{demo}:d:support:avail");
        assert_eq!(k.rate("v:v1", 60_000, 125_000), "sb:{demo}:rate:v:v1:2");
        assert_eq!(k.channel(), "sb:{demo}:ev");
        assert_eq!(server_epoch("sb"), "sb:epoch");
        assert_eq!(channel_pattern("a*b[c]"), "a\\*b\\[c\\]:{*}:ev");
    }
}
