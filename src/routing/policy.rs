//! What a team configures about routing, per site with per-department overrides (the
//! directory: `SiteConfig::routing`, `DepartmentConfig::routing`): priorities with an age
//! boost, page and visitor rules, required and optional skills (languages among them) that
//! widen after a while, and the visitor's last agent. `Policy::resolve` folds the two levels
//! into the policy in force for a department; it yields what a new conversation needs
//! (`needs`, `priority`) and what decisions follow (`rules`).

use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

use super::{Needs, Rules};
use crate::directory::model::SiteConfig;
use crate::model::{AgentId, DeptId, Millis, VisitorProfile};

/// Routing settings. On a site every field left out takes its default; on a department every
/// field left out is the site's.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingPolicy {
    /// The priority of chats (0–9, higher first) before any rule raises it. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 9)]
    pub priority: Option<u8>,
    /// Seconds of waiting worth one priority level, so lower priorities are never starved: a
    /// chat one level lower is served before a newer one once it has waited this much longer.
    /// Left out (and by default): strict priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub age_boost_secs: Option<f64>,
    /// Skills every chat here requires of its agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<String>>,
    /// Require the visitor's language as a skill (`lang:<code>`, e.g. `lang:ru`), optional
    /// (dropped on widening). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<bool>,
    /// After this many seconds in the queue, optional requirements (the language, a rule's
    /// optional skills) are dropped, so nobody waits for a skill nobody online has. Left out:
    /// never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub widen_after_secs: Option<f64>,
    /// A returning visitor whose last chat ended within this many days goes to that agent
    /// while the agent is online, connected and has room. Default 0 (off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub sticky_days: Option<f64>,
    /// How long a returning visitor's chat waits for their last agent while that agent is
    /// online but full, before it is routed normally. Default 0. An offline agent is never
    /// waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub sticky_wait_secs: Option<f64>,
    /// After this many seconds in a department's queue, a chat moves on: to `overflow_to`, or
    /// at the end of the chain to the offline form (what the visitor wrote becomes a ticket).
    /// Left out: it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_wait_secs: Option<f64>,
    /// The next department of the overflow chain (each department names its own next one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub overflow_to: Option<DeptId>,
    /// Service level: the longest a chat should wait in the queue, seconds. Supervisors are
    /// warned as a chat nears it (`sla_warn_share`) and told when it is passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub sla_wait_secs: Option<f64>,
    /// Service level: the longest from the visitor's first message to an agent's first reply,
    /// seconds. Breaches are counted in `/v1/stats`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub sla_first_response_secs: Option<f64>,
    /// The share of a target at which supervisors are warned. Default 0.8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.1, maximum = 1)]
    pub sla_warn_share: Option<f64>,
    /// `assign` (the default): a chat goes to its agent at once, and is taken back if the
    /// agent has not answered the visitor within `first_reply_secs`. `offer`: the agent is
    /// offered the chat and accepts or declines it within `accept_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RoutingMode>,
    /// `offer` mode: seconds an agent has to accept an offer before it goes to the next agent.
    /// Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 5)]
    pub accept_secs: Option<f64>,
    /// `assign` mode: seconds an agent has to answer the visitor before the chat goes to the
    /// next agent. Left out: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 5)]
    pub first_reply_secs: Option<f64>,
    /// How many agents a chat is tried with (offers declined or timed out, first replies
    /// missed) before it overflows (`overflow_to`, or the offline form). Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 20)]
    pub max_tries: Option<u32>,
    /// Rules on the page and the visitor, tried in order; every rule that matches raises the
    /// priority to its own (the highest wins) and adds its skills.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rules_as_objects"
    )]
    pub rules: Option<Vec<RoutingRule>>,
}

/// How a department gives a chat to an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoutingMode {
    Assign,
    Offer,
}

/// Raises the priority of, or requires skills for, the chats it matches.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    /// A pattern (`*` and `?`) the visitor's current page must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "https://shop.example/checkout*")]
    pub url: Option<String>,
    /// Only visitors the host site vouched for (identity verification), or only the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// Attributes the host site signed for a verified visitor (`{ tier = "gold" }`): the rule
    /// matches when the visitor has each with this value.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 9)]
    pub priority: Option<u8>,
    /// Required of the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// Required until the widening time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub optional_skills: Vec<String>,
}

/// Rules as objects only: serde would also read a struct from an array of its fields in order
/// (`[null, null]`), which the API's schema does not allow.
fn rules_as_objects<'de, D>(d: D) -> Result<Option<Vec<RoutingRule>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    let Some(items) = Option::<Vec<serde_json::Value>>::deserialize(d)? else {
        return Ok(None);
    };
    items
        .into_iter()
        .map(|v| {
            if !v.is_object() {
                return Err(D::Error::custom("each rule is an object"));
            }
            serde_json::from_value(v).map_err(D::Error::custom)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A policy as an object only (see `rules_as_objects`): a site's.
pub(crate) fn policy_object<'de, D>(d: D) -> Result<RoutingPolicy, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(optional_policy_object(d)?.unwrap_or_default())
}

/// A policy as an object only, or null: a department's.
pub(crate) fn optional_policy_object<'de, D>(d: D) -> Result<Option<RoutingPolicy>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(d)? {
        None => Ok(None),
        Some(v) if v.is_object() => serde_json::from_value(v)
            .map(Some)
            .map_err(D::Error::custom),
        Some(_) => Err(D::Error::custom("routing is an object")),
    }
}

impl RoutingRule {
    fn matches(&self, profile: &VisitorProfile) -> bool {
        let url = self.url.as_ref().is_none_or(|p| {
            profile
                .page_url
                .as_deref()
                .is_some_and(|u| WildMatch::new(p).matches(u))
        });
        url && self.verified.is_none_or(|v| v == profile.verified)
            && self
                .attributes
                .iter()
                .all(|(k, v)| profile.verified && profile.attributes.get(k) == Some(v))
    }
}

/// The policy in force for one department: the site's, with the department's fields over it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy(RoutingPolicy);

fn ms(secs: f64) -> Millis {
    (secs.max(0.0) * 1000.0) as Millis
}

/// A department's policy over its site's: each field the department's when it sets it, else
/// the site's. The one merge rule, for the whole policy (`Policy::resolve`) and for what the
/// backends follow on every drain (`rules`), which reads only its fields.
#[derive(Clone, Copy)]
struct Layered<'a> {
    over: Option<&'a RoutingPolicy>,
    base: &'a RoutingPolicy,
}

impl<'a> Layered<'a> {
    fn of(site: &'a SiteConfig, dept: &DeptId) -> Self {
        Self {
            over: site.department(dept).and_then(|d| d.routing.as_ref()),
            base: &site.routing,
        }
    }

    /// A field, the department's over the site's (only the chosen one is cloned).
    fn get<T>(self, field: impl Fn(&'a RoutingPolicy) -> Option<T>) -> Option<T> {
        self.over.and_then(&field).or_else(|| field(self.base))
    }
}

/// What the backends follow in a department, without copying the rest of the policy: it is
/// read on every drain.
pub fn rules(site: &SiteConfig, dept: &DeptId) -> Rules {
    let l = Layered::of(site, dept);
    Rules {
        priority_unit: super::priority_unit(l.get(|p| p.age_boost_secs).map(ms)),
        widen_after_ms: l.get(|p| p.widen_after_secs).map(ms),
        sticky_wait_ms: l.get(|p| p.sticky_wait_secs).map_or(0, ms),
        offer: l.get(|p| p.mode) == Some(RoutingMode::Offer),
    }
}

impl Policy {
    pub fn resolve(site: &SiteConfig, dept: &DeptId) -> Self {
        let l = Layered::of(site, dept);
        Self(RoutingPolicy {
            priority: l.get(|p| p.priority),
            age_boost_secs: l.get(|p| p.age_boost_secs),
            skills: l.get(|p| p.skills.clone()),
            language: l.get(|p| p.language),
            widen_after_secs: l.get(|p| p.widen_after_secs),
            sticky_days: l.get(|p| p.sticky_days),
            sticky_wait_secs: l.get(|p| p.sticky_wait_secs),
            rules: l.get(|p| p.rules.clone()),
            max_wait_secs: l.get(|p| p.max_wait_secs),
            sla_wait_secs: l.get(|p| p.sla_wait_secs),
            sla_first_response_secs: l.get(|p| p.sla_first_response_secs),
            sla_warn_share: l.get(|p| p.sla_warn_share),
            overflow_to: l.get(|p| p.overflow_to.clone()),
            mode: l.get(|p| p.mode),
            accept_secs: l.get(|p| p.accept_secs),
            first_reply_secs: l.get(|p| p.first_reply_secs),
            max_tries: l.get(|p| p.max_tries),
        })
    }

    /// How long the owner of a chat has to act on it before it goes to the next agent (ms):
    /// accept an offer (`offered`), or, in `assign` mode, answer the visitor. An accepted
    /// offer is not taken back for a slow reply (only the first-response target watches it).
    pub fn act_within_ms(&self, offered: bool) -> Option<Millis> {
        if offered {
            Some(ms(self.0.accept_secs.unwrap_or(30.0)))
        } else if self.offers() {
            None
        } else {
            self.0.first_reply_secs.map(ms)
        }
    }

    /// Whether chats here are offered (and may wait for acceptance).
    pub fn offers(&self) -> bool {
        self.0.mode == Some(RoutingMode::Offer)
    }

    /// How many agents a chat is tried with before it overflows.
    pub fn max_tries(&self) -> usize {
        self.0.max_tries.unwrap_or(3) as usize
    }

    /// How long a chat may wait in this department's queue before it moves on (ms).
    pub fn max_wait_ms(&self) -> Option<Millis> {
        self.0.max_wait_secs.map(ms)
    }

    /// The queue-wait target and the share of it that warns (ms, 0..=1).
    pub fn sla_wait(&self) -> Option<(Millis, f64)> {
        let share = self.0.sla_warn_share.unwrap_or(0.8);
        self.0.sla_wait_secs.map(|s| (ms(s), share))
    }

    /// The first-response target, seconds.
    pub fn sla_first_response_secs(&self) -> Option<f64> {
        self.0.sla_first_response_secs
    }

    /// The first-response target and the share of it that warns (ms, 0..=1).
    pub fn sla_first_response(&self) -> Option<(Millis, f64)> {
        let share = self.0.sla_warn_share.unwrap_or(0.8);
        self.0.sla_first_response_secs.map(|s| (ms(s), share))
    }

    /// The next department of the overflow chain, if any (never the department itself).
    pub fn overflow_to(&self, from: &DeptId) -> Option<&DeptId> {
        self.0.overflow_to.as_ref().filter(|d| *d != from)
    }

    /// How far back a visitor's last agent counts (ms), if at all.
    pub fn sticky_ms(&self) -> Option<Millis> {
        self.0
            .sticky_days
            .filter(|d| *d > 0.0)
            .map(|d| ms(d * 86_400.0))
    }

    /// A new chat's priority and needs: the department's, raised and extended by every rule
    /// that matches the visitor, the visitor's language when asked for, and their last agent
    /// (`last`, already found within `sticky_ms`).
    pub fn needs(&self, profile: &VisitorProfile, last: Option<AgentId>) -> (u8, Needs) {
        let mut priority = self.0.priority.unwrap_or(0);
        let mut needs = Needs {
            skills: self.0.skills.clone().unwrap_or_default(),
            prefer: last,
            ..Needs::default()
        };
        if self.0.language == Some(true) {
            let lang = profile.locale.split(['-', '_']).next().unwrap_or_default();
            if !lang.is_empty() {
                needs
                    .optional
                    .push(format!("lang:{}", lang.to_ascii_lowercase()));
            }
        }
        for rule in self.0.rules.iter().flatten() {
            if rule.matches(profile) {
                priority = priority.max(rule.priority.unwrap_or(0));
                needs.skills.extend(rule.skills.iter().cloned());
                needs.optional.extend(rule.optional_skills.iter().cloned());
            }
        }
        for list in [&mut needs.skills, &mut needs.optional] {
            list.sort();
            list.dedup();
        }
        needs.optional.retain(|s| !needs.skills.contains(s));
        (priority.min(9), needs)
    }
}
