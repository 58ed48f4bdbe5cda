//! Triggers: proactive messages for visitors browsing a site.
//!
//! A rule's conditions that hold for a whole page view (URL, visits, referrer, UTM tags) are
//! checked when the page view starts; the rules that match wait in this node's `Schedule` until
//! their time on page is reached. Then the engine checks what may have changed meanwhile (an
//! open conversation, business hours) and claims the rule for the visitor in the store, which
//! is atomic: a rule fires once per visitor even with tabs open on several nodes.
//!
//! The schedule holds at most one entry per visitor socket of this node, and the entry goes when
//! the socket does, so it is bounded by the connections.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use tokio::sync::Notify;
use wildmatch::WildMatch;

use crate::directory::model::TriggerConfig;
use crate::hub::SessionId;
use crate::model::{Millis, SiteId, VisitorId, VisitorProfile};

/// Whether a rule's page-view conditions hold for the visitor (time and hours come later).
pub fn matches(rule: &TriggerConfig, profile: &VisitorProfile) -> bool {
    let glob = |pattern: &Option<String>, value: Option<&str>| match pattern {
        None => true,
        Some(p) => value.is_some_and(|v| WildMatch::new(p).matches(v)),
    };
    glob(&rule.url, profile.page_url.as_deref())
        && glob(&rule.referrer, profile.referrer.as_deref())
        && rule.min_visits.is_none_or(|m| profile.visits >= m)
        && rule.max_visits.is_none_or(|m| profile.visits <= m)
        && rule.utm.iter().all(|(tag, pattern)| {
            profile
                .utm
                .get(tag)
                .is_some_and(|v| WildMatch::new(pattern).matches(v))
        })
}

/// The rule's message in the visitor's language: exact locale, then its language, then the
/// default message.
pub fn message_for<'a>(rule: &'a TriggerConfig, locale: &str) -> &'a str {
    let lang = locale.split(['-', '_']).next().unwrap_or(locale);
    rule.messages
        .get(locale)
        .or_else(|| rule.messages.get(lang))
        .unwrap_or(&rule.message)
}

/// The rules waiting for one visitor socket's page view.
#[derive(Clone, Debug)]
pub struct Pending {
    pub site: SiteId,
    pub visitor: VisitorId,
    pub locale: String,
    /// (due time, index into the site's triggers), earliest first.
    pub rules: Vec<(Millis, usize)>,
    /// Tells this page view from a later one of the same socket.
    generation: u64,
}

impl Pending {
    pub fn new(
        site: SiteId,
        visitor: VisitorId,
        locale: String,
        rules: Vec<(Millis, usize)>,
    ) -> Self {
        let mut rules = rules;
        rules.sort();
        Self {
            site,
            visitor,
            locale,
            rules,
            generation: 0,
        }
    }

    fn due(&self) -> Option<Millis> {
        self.rules.first().map(|r| r.0)
    }
}

/// This node's waiting trigger rules, by visitor socket.
#[derive(Default)]
pub struct Schedule {
    /// A std Mutex: held for map updates only, never across an await.
    state: Mutex<State>,
    /// Wakes the trigger task when an earlier entry arrives.
    pub wakeup: Notify,
}

#[derive(Default)]
struct State {
    pending: HashMap<SessionId, Pending>,
    /// (due time, session) of every entry, for the next wake-up.
    order: BTreeSet<(Millis, SessionId)>,
    next_generation: u64,
}

impl State {
    fn remove(&mut self, session: SessionId) {
        if let Some(old) = self.pending.remove(&session)
            && let Some(due) = old.due()
        {
            self.order.remove(&(due, session));
        }
    }

    fn insert(&mut self, session: SessionId, pending: Pending) {
        if let Some(due) = pending.due() {
            self.order.insert((due, session));
            self.pending.insert(session, pending);
        }
    }
}

impl Schedule {
    /// A socket's page view started: replaces what it waited for (None: nothing matches).
    pub fn set(&self, session: SessionId, pending: Option<Pending>) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.remove(session);
        if let Some(mut p) = pending {
            s.next_generation += 1;
            p.generation = s.next_generation;
            s.insert(session, p);
            drop(s);
            self.wakeup.notify_one();
        }
    }

    /// The earliest due time.
    pub fn next_due(&self) -> Option<Millis> {
        self.state.lock().ok()?.order.first().map(|e| e.0)
    }

    /// The entries with a rule due by `now`. They stay scheduled (out of the wake-up order)
    /// until `finish`, so a page view that starts meanwhile replaces them.
    pub fn take_due(&self, now: Millis) -> Vec<(SessionId, Pending)> {
        let Ok(mut s) = self.state.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some(&(due, session)) = s.order.first()
            && due <= now
        {
            s.order.pop_first();
            if let Some(p) = s.pending.get(&session) {
                out.push((session, p.clone()));
            }
        }
        out
    }

    /// Puts back what is left of an entry after its due rules were tried, unless the socket
    /// moved on (a new page view) or is gone.
    pub fn finish(&self, session: SessionId, rest: Pending) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if s.pending
            .get(&session)
            .is_some_and(|p| p.generation == rest.generation)
        {
            s.pending.remove(&session);
            s.insert(session, rest);
        }
    }

    /// Whether no socket waits for a trigger.
    pub fn is_empty(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.pending.is_empty())
            .unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml: &str) -> TriggerConfig {
        toml::from_str(&format!("id = 't'\nmessage = 'hi'\n{toml}")).unwrap()
    }

    fn profile(url: &str, visits: u32) -> VisitorProfile {
        let mut p = VisitorProfile {
            visits,
            ..Default::default()
        };
        p.page_url = Some(url.into());
        p.visit(url, None, 0);
        p
    }

    /// URL globs, visit counts and UTM tags must all hold.
    #[test]
    fn conditions() {
        let r = rule("url = '*/pricing*'\nmin_visits = 2\nutm = { utm_source = 'goo*' }");
        assert!(matches(
            &r,
            &profile("https://x.test/pricing?utm_source=google", 2)
        ));
        assert!(!matches(
            &r,
            &profile("https://x.test/pricing?utm_source=google", 1)
        ));
        assert!(!matches(
            &r,
            &profile("https://x.test/about?utm_source=google", 2)
        ));
        assert!(!matches(&r, &profile("https://x.test/pricing", 2)));
        assert!(matches(&rule(""), &profile("https://x.test/", 1)));
        let referred = rule("referrer = '*google.*'");
        let mut p = profile("https://x.test/", 1);
        assert!(!matches(&referred, &p));
        p.referrer = Some("https://www.google.com/".into());
        assert!(matches(&referred, &p));
    }

    /// The visitor's locale picks the message, falling back to the language, then the default.
    #[test]
    fn localized_message() {
        let r = rule("messages = { ru = 'привет', pt-BR = 'oi' }");
        assert_eq!(message_for(&r, "ru-RU"), "привет");
        assert_eq!(message_for(&r, "pt-BR"), "oi");
        assert_eq!(message_for(&r, "de"), "hi");
    }

    /// A new page view replaces the old entry; finishing a replaced entry changes nothing.
    #[test]
    fn schedule_replaces_and_finishes() {
        let s = Schedule::default();
        let p = |due| {
            Pending::new(
                SiteId("s".into()),
                VisitorId("v".into()),
                "en".into(),
                vec![(due, 0)],
            )
        };
        s.set(1, Some(p(100)));
        assert_eq!(s.next_due(), Some(100));
        let due = s.take_due(100);
        assert_eq!(due.len(), 1);
        s.set(1, Some(p(500)));
        let mut stale = due[0].1.clone();
        stale.rules = vec![(300, 1)];
        s.finish(1, stale);
        assert_eq!(s.next_due(), Some(500));
        s.set(1, None);
        assert!(s.is_empty());
        assert_eq!(s.next_due(), None);
    }
}
