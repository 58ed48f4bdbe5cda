//! A visitor arrives and writes: `hello`, page views, the first message that opens a
//! conversation and is answered at once (queued, assigned or offline), offline messages.

use super::effects::Notice;
use super::{Ack, Engine, EngineError, Result, clip};
use crate::directory::model::SiteConfig;
use crate::envelope::Envelope;
use crate::model::{
    AgentId, AgentState, AgentStatus, AuthorKind, ConvId, ConvState, Conversation, DeptId,
    EventBody, Millis, NoticeKind, SiteId, VisitorId, VisitorProfile,
};
use crate::protocol::{ClientId, ErrorCode, MessageText, VisitorHello};
use crate::routing::policy::{self, Policy};
use crate::state::{Guard, Guarded};
use crate::templates::Template;

/// What a visitor's `hello` establishes.
pub struct VisitorSession {
    pub id: VisitorId,
    pub token: String,
    pub profile: VisitorProfile,
    pub conversation: Option<Conversation>,
}

/// Where a visitor's first message goes.
#[derive(Clone, Copy, Default)]
pub struct Route<'a> {
    /// Chosen by the visitor (pre-chat form); the site's default without it.
    pub department: Option<&'a DeptId>,
    /// The trigger whose proactive message the visitor answers: its department wins.
    pub trigger: Option<&'a str>,
}

impl Engine {
    /// Stores a visitor's record. A failure is logged, not returned: the record database briefly
    /// gone must not stop a chat, and the next page view or hello writes the record again.
    async fn save_visitor(&self, site: &SiteId, profile: &VisitorProfile) {
        if let Err(e) = self.inner.tickets.put_visitor(site, profile).await {
            tracing::warn!(cause = %e, "visitor record not saved");
        }
    }

    /// Whether one more occurrence of `key` fits `limit` per window of `window_ms`, counted
    /// across every node by the state backend (0: no limit).
    pub(crate) async fn within(
        &self,
        site: &SiteId,
        keys: &[String],
        limit: u32,
        window_ms: i64,
    ) -> Result<bool> {
        if limit == 0 {
            return Ok(true);
        }
        let n = self
            .inner
            .store
            .count(site, keys, window_ms, self.now())
            .await?;
        Ok(n <= u64::from(limit))
    }

    /// Identifies (or mints) the visitor and records where they are. A new visitor counts
    /// against `limits.new_visitors_per_ip_per_hour` of the client's address.
    pub async fn visitor_hello(
        &self,
        site_id: &SiteId,
        hello: VisitorHello,
        client: crate::model::VisitorClient,
        ip: std::net::IpAddr,
    ) -> Result<VisitorSession> {
        let site = self.site(site_id)?;
        let site = &*site;
        let now = self.now();
        let known = match &hello.token {
            Some(t) => Some(self.inner.keys.verify_visitor(site_id, t).ok_or_else(|| {
                EngineError::new(ErrorCode::Unauthorized, "invalid visitor token")
            })?),
            None => None,
        };
        let (id, existing) = match known {
            Some(id) => {
                // The record database briefly gone must not keep visitors out of the chat:
                // without their record they are greeted as on a first visit.
                let p = match self.inner.tickets.visitor(site_id, &id).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(cause = %e, visitor = %id, "visitor record unavailable");
                        None
                    }
                };
                (id, p)
            }
            None => {
                let limit = self.config().limits.new_visitors_per_ip_per_hour;
                if !self
                    .within(site_id, &[format!("nv:{ip}")], limit, 3_600_000)
                    .await?
                {
                    return Err(EngineError::new(
                        ErrorCode::RateLimited,
                        "too many new visitors from this address; try again later",
                    ));
                }
                (VisitorId::generate(), None)
            }
        };
        let mut profile = existing.unwrap_or_else(|| VisitorProfile {
            id: Some(id.clone()),
            first_seen: now,
            ..VisitorProfile::default()
        });
        // A new visit on first contact or after half an hour away; page loads within a visit
        // do not count again.
        if profile.visits == 0 || now - profile.last_seen > crate::model::VISIT_GAP_MS {
            profile.visits += 1;
            profile.visit_started = now;
        }
        profile.last_seen = now;
        if let Some(user_id) = clip(hello.user_id, 200) {
            let secret = site.identity_secret.as_ref().ok_or_else(|| {
                EngineError::new(
                    ErrorCode::IdentityMismatch,
                    "this site does not verify identities",
                )
            })?;
            let hash = hello.user_hash.unwrap_or_default();
            if !crate::auth::verify_user_hash(secret, &user_id, &hash) {
                return Err(EngineError::new(
                    ErrorCode::IdentityMismatch,
                    "user_hash does not match user_id",
                ));
            }
            if profile.user_id.as_deref() != Some(user_id.as_str()) {
                // Another identity: what was vouched for the previous one is not theirs.
                profile.attributes.clear();
            }
            profile.user_id = Some(user_id);
            profile.verified = true;
        }
        if !hello.attributes.is_empty() {
            // They may raise a chat's priority (routing rules): never taken unsigned, and only
            // for the identity they were signed with.
            if !crate::auth::attributes_valid(&hello.attributes) {
                return Err(EngineError::new(
                    ErrorCode::InvalidMessage,
                    "attributes: at most 10, keys of 1 to 32 a-z, 0-9 or _, values of 1 to 100 characters",
                ));
            }
            let user = profile.user_id.as_deref().filter(|_| profile.verified);
            let signed = match (&site.identity_secret, user) {
                (Some(secret), Some(user)) => crate::auth::attributes_signed(
                    secret,
                    user,
                    &hello.attributes,
                    hello.attributes_hash.as_deref().unwrap_or(""),
                ),
                _ => false,
            };
            if !signed {
                return Err(EngineError::new(
                    ErrorCode::IdentityMismatch,
                    "attributes_hash does not match the verified user_id and attributes",
                ));
            }
            profile.attributes = hello.attributes;
        }
        profile.locale = clip(hello.locale, 35)
            .or_else(|| Some(profile.locale.clone()).filter(|l| !l.is_empty()))
            .unwrap_or_else(|| site.default_locale.clone());
        // A zone the server does not know is not kept (the console would show nonsense).
        if let Some(tz) = clip(hello.timezone, 64).filter(|t| jiff::tz::TimeZone::get(t).is_ok()) {
            profile.timezone = Some(tz);
        }
        let page = hello.page.unwrap_or_default();
        if page.url.is_some() {
            profile.page_url = clip(page.url, 2048);
            profile.page_title = clip(page.title, 512);
            if let Some(url) = profile.page_url.clone() {
                profile.visit(&url, profile.page_title.clone(), now);
            }
        }
        if let Some(r) = clip(page.referrer, 2048) {
            profile.referrer = Some(r);
        }
        if let Some(n) = clip(hello.name, 200) {
            profile.name = Some(n);
        }
        if let Some(e) = clip(hello.email, 320) {
            // A verified identity's email must be signed as its id is: otherwise a verified
            // visitor could claim anyone's address and keep the badge.
            let signed = || {
                site.identity_secret.as_ref().is_some_and(|secret| {
                    crate::auth::verify_user_hash(
                        secret,
                        &e,
                        hello.email_hash.as_deref().unwrap_or(""),
                    )
                })
            };
            if !profile.verified || profile.email.as_deref() == Some(e.as_str()) || signed() {
                profile.email = Some(e);
            } else {
                tracing::info!(site = %site_id, visitor = %id, "unsigned email of a verified visitor ignored");
            }
        }
        for (k, v) in hello.fields.into_iter().take(20) {
            if let (Some(k), Some(v)) = (clip(Some(k), 64), clip(Some(v), 500)) {
                profile.fields.insert(k, v);
            }
        }
        if let Some(ua) = clip(client.user_agent, 512) {
            profile.device = Some(crate::model::Device::from_user_agent(&ua));
            profile.user_agent = Some(ua);
        }
        if client.country.is_some() {
            profile.country = client.country;
        }
        self.save_visitor(site_id, &profile).await;
        let conversation = self.inner.store.visitor_conversation(site_id, &id).await?;
        let token = self.inner.keys.visitor_token(site_id, &id);
        Ok(VisitorSession {
            id,
            token,
            profile,
            conversation,
        })
    }

    /// `limits.visitor_messages_per_minute` as an append's rate (None: no limit).
    fn visitor_rate(&self) -> Option<crate::state::Rate> {
        let limit = self.config().limits.visitor_messages_per_minute;
        (limit > 0).then(|| crate::state::Rate {
            limit,
            window_ms: 60_000,
            now: self.now(),
        })
    }

    /// Counts one message (or file) of the visitor against `visitor_rate`, per visitor and
    /// per conversation, on the state backend so that many sockets or nodes do not multiply
    /// it. For what is not relayed by `append_guarded`, which counts in the same step.
    pub async fn visitor_within_rate(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        conv: Option<&ConvId>,
    ) -> Result<()> {
        let Some(rate) = self.visitor_rate() else {
            return Ok(());
        };
        let keys = crate::state::Rate::keys(visitor, conv);
        if self.within(site, &keys, rate.limit, rate.window_ms).await? {
            Ok(())
        } else {
            Err(visitor_over_rate())
        }
    }

    /// A navigation inside the site.
    pub async fn visitor_page(
        &self,
        site: &SiteId,
        profile: &mut VisitorProfile,
        url: Option<String>,
        title: Option<String>,
    ) -> Result<()> {
        profile.page_url = clip(url, 2048);
        profile.page_title = clip(title, 512);
        profile.last_seen = self.now();
        if let Some(url) = profile.page_url.clone() {
            profile.visit(&url, profile.page_title.clone(), profile.last_seen);
        }
        self.save_visitor(site, profile).await;
        if let Some(id) = &profile.id {
            self.visitor_changed(site, id, true).await;
        }
        Ok(())
    }

    /// Stores a visitor's message; the first one opens a conversation and is answered at once.
    /// With the conversation the session follows, a message in an open chat is one store call.
    pub async fn visitor_message(
        &self,
        site_id: &SiteId,
        profile: &VisitorProfile,
        route: Route<'_>,
        current: Option<&ConvId>,
        client_id: ClientId,
        text: MessageText,
    ) -> Result<Ack> {
        let site = self.site(site_id)?;
        let site = &*site;
        let visitor = profile
            .id
            .clone()
            .ok_or_else(|| EngineError::new(ErrorCode::HelloRequired, "say hello first"))?;
        let body = EventBody::Message {
            at: self.now(),
            author: AuthorKind::Visitor,
            author_id: Some(visitor.0.clone()),
            author_name: profile.name.clone(),
            text: text.into_inner(),
            client_id: Some(client_id.as_str().to_owned()),
            attachment: None,
        };
        if let Some(conv) = current {
            // Ownership and the rate are checked, and the rate counted, inside the append: a
            // message in an open chat is one round trip.
            let guard = Guard::VisitorOpen(visitor.clone(), self.visitor_rate());
            match self
                .inner
                .store
                .append_guarded(site_id, conv, &body, &guard)
                .await?
            {
                Guarded::Stored(appended) => {
                    metrics::counter!(crate::observe::MESSAGES, "author" => "visitor").increment(1);
                    return Ok(Ack {
                        conv: conv.clone(),
                        seq: appended.seq,
                    });
                }
                Guarded::Limited => return Err(visitor_over_rate()),
                // Closed or moved on: the message opens a new conversation.
                Guarded::Refused => {}
            }
        }
        // A conversation's first message.
        self.visitor_within_rate(site_id, &visitor, None).await?;
        // An answer to a trigger's message goes to the trigger's department.
        let trigger = route.trigger.and_then(|t| site.trigger(t));
        let department = trigger
            .and_then(|t| t.department.as_ref())
            .or(route.department);
        let dept = match department {
            Some(d) if site.department(d).is_some() => d.clone(),
            Some(d) => {
                return Err(EngineError::new(
                    ErrorCode::UnknownDepartment,
                    format!("no department {d}"),
                ));
            }
            None => site.default_department().clone(),
        };
        let now = self.now();
        let current = self
            .inner
            .store
            .visitor_conversation(site_id, &visitor)
            .await?;
        let (conv, created) = match current {
            Some(c) if c.state != ConvState::Closed => (c, false),
            previous => {
                let policy = Policy::resolve(site, &dept);
                let last = self
                    .last_agent(site_id, &visitor, &policy, previous.as_ref())
                    .await?;
                let mut new = Conversation::new(visitor.clone(), dept, profile.locale.clone(), now);
                (new.priority, new.needs) = policy.needs(profile, last);
                self.inner.store.open_conversation(site_id, &new).await?
            }
        };
        if created && let Some(rule) = trigger {
            // The transcript starts with the message the visitor answered.
            let (author, author_id, name) = self.trigger_author(site, rule);
            let proactive = EventBody::Message {
                at: now,
                author,
                author_id,
                author_name: Some(name),
                text: crate::triggers::message_for(rule, &conv.locale).to_owned(),
                client_id: None,
                attachment: None,
            };
            self.inner
                .store
                .append(site_id, &conv.id, &proactive)
                .await?;
        }
        let appended = self.inner.store.append(site_id, &conv.id, &body).await?;
        metrics::counter!(crate::observe::MESSAGES, "author" => "visitor").increment(1);
        if created {
            self.route_new(site, &conv).await?;
        }
        Ok(Ack {
            conv: conv.id,
            seq: appended.seq,
        })
    }

    /// The agents of the site, and whether one of them is on duty in the department (online or
    /// away, connected or within the grace). Never says no on a stale snapshot.
    pub(super) async fn staffed(
        &self,
        site: &SiteId,
        dept: &DeptId,
    ) -> Result<(std::sync::Arc<Vec<AgentState>>, bool)> {
        let (now, grace) = (self.now(), self.grace_ms());
        let agents = self.agents_cached(site, false).await?;
        if on_duty(&agents, dept, now, grace) {
            return Ok((agents, true));
        }
        let agents = self.agents_cached(site, true).await?;
        let staffed = on_duty(&agents, dept, now, grace);
        Ok((agents, staffed))
    }

    /// Whether a first message to the department (the site's default without one, or for one
    /// it does not have) would reach an agent now, rather than get the offline reply: told to a
    /// visitor before they write. Read from `departments_now`.
    pub fn answerable(
        &self,
        site: &SiteId,
        dept: Option<&DeptId>,
        departments: &[DepartmentNow],
    ) -> bool {
        let Ok(config) = self.site(site) else {
            return false;
        };
        let dept = dept
            .filter(|d| config.department(d).is_some())
            .unwrap_or_else(|| config.default_department());
        departments.iter().any(|d| &d.id == dept && d.available)
    }

    /// Every department of the site as a visitor may choose it now: whether a first message
    /// would reach an agent there, and when a closed one opens next. One read of the agents
    /// (a fresh one when the cached read finds a department unstaffed).
    pub async fn departments_now(&self, site: &SiteId) -> Vec<DepartmentNow> {
        let Ok(config) = self.site(site) else {
            return Vec::new();
        };
        let (now, grace) = (self.now(), self.grace_ms());
        let mut agents = self.agents_cached(site, false).await.ok();
        // Read afresh only when a department within its hours looks unstaffed.
        let doubtful = |a: &[AgentState]| {
            config
                .departments
                .iter()
                .any(|d| config.department_open(&d.id, now) && !on_duty(a, &d.id, now, grace))
        };
        if agents.as_deref().is_some_and(|a| doubtful(a)) {
            agents = self.agents_cached(site, true).await.ok().or(agents);
        }
        config
            .departments
            .iter()
            .map(|d| {
                let open = config.department_open(&d.id, now);
                // A backend failure is not "nobody is there": the message will tell.
                let staffed = agents
                    .as_deref()
                    .is_none_or(|a| on_duty(a, &d.id, now, grace));
                DepartmentNow {
                    id: d.id.clone(),
                    name: config.department_name(&d.id),
                    names: d.names.clone(),
                    available: open && staffed,
                    opens_at: d.hours.as_ref().and_then(|h| h.next_open(now)),
                }
            })
            .collect()
    }

    /// Answers a new conversation at once: queued (and perhaps assigned right away) or offline.
    /// The agent of the visitor's last chat, when the policy routes returning visitors to
    /// them and that chat ended within its time: the chat still in live state, or the tickets.
    async fn last_agent(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        policy: &Policy,
        previous: Option<&Conversation>,
    ) -> Result<Option<AgentId>> {
        let Some(window) = policy.sticky_ms() else {
            return Ok(None);
        };
        let since = self.now().saturating_sub(window);
        if let Some(c) = previous
            && c.closed_at.is_some_and(|t| t >= since)
            && c.agent.is_some()
        {
            return Ok(c.agent.clone());
        }
        Ok(self.inner.tickets.last_agent(site, visitor, since).await?)
    }

    pub(super) async fn route_new(&self, site: &SiteConfig, conv: &Conversation) -> Result<()> {
        self.visitor_changed(&site.id, &conv.visitor, true).await;
        let store = &self.inner.store;
        let now = self.now();
        let dept = &conv.department;
        let (agents, staffed) = self.staffed(&site.id, dept).await?;
        let open = site.department_open(dept, self.now());
        if !open || !staffed {
            self.notice(
                site,
                dept,
                &conv.id,
                &conv.locale,
                Notice::plain(NoticeKind::Offline, Template::Offline, None),
            )
            .await?;
            let reason = if open { "no_agent" } else { "out_of_hours" };
            tracing::info!(site = %site.id, conversation = %conv.id, visitor = %conv.visitor, department = %dept, reason, "conversation opened: nobody to answer, offline reply");
            self.close_conversation(site, &conv.id, AuthorKind::System, reason)
                .await?;
            return Ok(());
        }
        let rules = policy::rules(site, dept);
        store
            .enqueue(&site.id, &conv.id, dept, false, now, &rules)
            .await?;
        tracing::info!(site = %site.id, conversation = %conv.id, visitor = %conv.visitor, department = %dept, "conversation opened and queued");
        self.emit(
            site,
            "conversation.queued",
            serde_json::json!({"conversation": conv.id, "department": dept, "visitor": conv.visitor}),
        )
        .await;
        self.drain(&site.id, dept).await?;
        // Still waiting? Then say where in line, with an estimate.
        if let Some(position) = store.queue_position(&site.id, dept, &conv.id).await? {
            let estimate = self.estimate(&agents, &site.id, dept, position, now).await;
            self.inner.hub.note_position(&conv.id, position);
            self.notice(
                site,
                dept,
                &conv.id,
                &conv.locale,
                Notice::queued(position, estimate),
            )
            .await?;
            self.queue_changed(&site.id, dept).await;
            self.push_department(
                site,
                dept,
                crate::push::Note {
                    kind: "waiting",
                    conversation: Some(conv.id.clone()),
                    department: Some(site.department_name(dept)),
                    ..Default::default()
                },
            );
        }
        Ok(())
    }

    /// The visitor has seen their conversation up to `seq`: stored, and the agent told.
    pub async fn visitor_read(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        conv: &ConvId,
        seq: u64,
    ) -> Result<()> {
        self.mark_read(site, conv, visitor, false, seq).await
    }

    /// The visitor is typing (or stopped). With the site's `typing_preview` on, the draft
    /// goes to the agent too, cut to the longest message; without it, it goes nowhere.
    pub async fn visitor_typing(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        conv: &ConvId,
        on: bool,
        draft: Option<String>,
    ) {
        let preview = self.site(site).is_ok_and(|s| s.widget.typing_preview);
        let max = self.config().limits.max_message_chars;
        let draft = draft
            .filter(|_| preview && on)
            .map(|d| d.chars().take(max).collect());
        self.publish(
            site,
            Envelope::Typing {
                site: site.clone(),
                conv: conv.clone(),
                visitor: visitor.clone(),
                agent: false,
                on,
                name: None,
                draft,
            },
        )
        .await;
    }
}

fn visitor_over_rate() -> EngineError {
    EngineError::new(
        ErrorCode::RateLimited,
        "too many messages from this visitor; wait a minute",
    )
}

/// Someone who can take a chat of the department now: in it, not offline, and connected (or
/// within the reconnect grace).
fn on_duty(agents: &[AgentState], dept: &DeptId, now: Millis, grace: Millis) -> bool {
    agents.iter().any(|a| {
        a.departments.contains(dept) && a.status != AgentStatus::Offline && a.present(now, grace)
    })
}

/// A department as the widget's `welcome` lists it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DepartmentNow {
    pub id: DeptId,
    pub name: String,
    /// The name in other languages (`DepartmentConfig::names`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub names: std::collections::BTreeMap<String, String>,
    /// A first message would reach an agent now: open, and someone on duty.
    pub available: bool,
    /// When a department outside its hours opens next (Unix ms), if within two weeks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<Millis>,
}
