//! `switchboard simulate`: replays recorded traffic through candidate routing policies
//! (`routing::simulate`) and prints their results side by side. The traffic comes from the
//! record database (the tickets of a time range: when each chat arrived, where, how long an
//! agent held it, whether the visitor left the queue) or from a trace file (JSON, as
//! `switchboard-loadtest estimate --trace` writes it). The site's directory (departments,
//! agents, the routing in force) comes from the database, as the server reads it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::config::Config;
use crate::directory::model::SiteConfig;
use crate::model::{DeptId, Millis, SiteId};
use crate::routing::policy::RoutingPolicy;
use crate::routing::simulate::{self as sim, Arrival, Report, Shift, Trace};
use crate::tickets::{TicketFilter, TicketStore};

/// What `switchboard simulate` was asked.
#[derive(Clone, Debug)]
pub struct Request {
    /// The site whose traffic and directory are read (the only one, when left out).
    pub site: Option<SiteId>,
    /// Tickets closed from `since` (inclusive) to `until` (exclusive), ms since the epoch.
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// A trace file instead of the database's tickets.
    pub trace: Option<PathBuf>,
    /// Candidate policy files; the policy in force is always reported first.
    pub policies: Vec<PathBuf>,
}

/// A candidate policy file: the site's `routing`, and departments' overrides. It replaces the
/// routing in force as a whole: a department it does not name has no override.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// Its name in the report (default: the file's name).
    pub name: Option<String>,
    #[serde(default)]
    pub routing: RoutingPolicy,
    #[serde(default)]
    pub departments: BTreeMap<DeptId, RoutingPolicy>,
}

impl Candidate {
    /// The site as it would be under this policy, validated as the directory validates it.
    pub fn apply(&self, site: &SiteConfig) -> anyhow::Result<SiteConfig> {
        let mut site = site.clone();
        site.routing = self.routing.clone();
        for d in &mut site.departments {
            d.routing = self.departments.get(&d.id).cloned();
        }
        if let Some(unknown) = self
            .departments
            .keys()
            .find(|d| site.department(d).is_none())
        {
            bail!("the policy names department {unknown}, which the site does not have");
        }
        crate::directory::validate_sites(std::slice::from_ref(&site))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(site)
    }
}

/// Runs the request: the policy in force, then each candidate, on the same traffic.
pub async fn run(config: &Config, request: &Request) -> anyhow::Result<Vec<Report>> {
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| crate::db::default_url(&config.data_dir));
    let db = crate::db::Database::open_with(&url, config.durability).await?;
    let (_, sites) = crate::directory::DirectoryStore::new(db.clone())
        .load()
        .await?;
    let sites = if sites.is_empty() {
        config.sites.clone()
    } else {
        sites
    };
    let site = match &request.site {
        Some(id) => sites
            .iter()
            .find(|s| &s.id == id)
            .with_context(|| format!("no site {id}"))?,
        None if sites.len() == 1 => &sites[0],
        None => bail!("several sites: name one with --site"),
    }
    .clone();
    let trace = match &request.trace {
        Some(path) => read_trace(path)?,
        None => {
            let tickets = crate::tickets::sql::SqlTickets::new(db);
            from_tickets(&tickets, &site, request.since, request.until).await?
        }
    };
    let mut reports = vec![report("in force", &site, &trace)];
    for path in &request.policies {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let candidate: Candidate =
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        let name = candidate.name.clone().unwrap_or_else(|| file_name(path));
        let under = candidate
            .apply(&site)
            .with_context(|| format!("{}", path.display()))?;
        reports.push(report(&name, &under, &trace));
    }
    Ok(reports)
}

fn report(name: &str, site: &SiteConfig, trace: &Trace) -> Report {
    let fates = sim::run(site, trace);
    sim::report(name, site, trace, &fates)
}

fn file_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

fn read_trace(path: &Path) -> anyhow::Result<Trace> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a trace", path.display()))
}

/// The traffic of the tickets closed in the range. Chats that no routing decided (nobody on
/// duty, out of hours, an offline message) are left out. Every agent who took a chat in the
/// range counts as on duty for the whole range, with their limit, departments and skills of
/// now: the database does not keep when agents were online (a trace file gives shifts).
pub async fn from_tickets(
    tickets: &dyn TicketStore,
    site: &SiteConfig,
    since: Option<Millis>,
    until: Option<Millis>,
) -> anyhow::Result<Trace> {
    let filter = TicketFilter {
        since,
        until,
        limit: 100_000,
        ..TicketFilter::default()
    };
    let mut list = tickets.list(&site.id, &filter).await?;
    list.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    let undecided = ["no_agent", "out_of_hours", "offline_message"];
    list.retain(|t| !undecided.contains(&t.close_reason.as_str()));
    // Chats never held (the visitor left, or no agent took them) are held for the mean here.
    let held: Vec<f64> = list
        .iter()
        .filter_map(|t| t.metrics.handling_secs)
        .collect();
    let mean_ms = if held.is_empty() {
        300_000.0
    } else {
        held.iter().sum::<f64>() / held.len() as f64 * 1000.0
    };
    let secs_ms = |s: f64| (s * 1000.0).round() as Millis;
    let arrivals = list
        .iter()
        .map(|t| {
            let served = t.metrics.handling_secs.is_some();
            let page = t
                .visitor
                .pages
                .iter()
                .rev()
                .find(|p| p.at <= t.started_at)
                .or(t.visitor.pages.first());
            Arrival {
                id: t.id.clone(),
                at: t.started_at,
                department: t.department.clone(),
                handling_ms: t.metrics.handling_secs.map_or(mean_ms as Millis, secs_ms),
                abandon_after_ms: (t.status == "missed")
                    .then(|| t.metrics.queue_wait_secs.map(secs_ms))
                    .flatten(),
                page_url: page.map(|p| p.url.clone()),
                verified: t.visitor.verified,
                attributes: t.visitor.attributes.clone(),
                locale: t.visitor.locale.clone(),
                recorded_wait_ms: served
                    .then(|| t.metrics.queue_wait_secs.map(secs_ms))
                    .flatten(),
            }
        })
        .collect::<Vec<_>>();
    let from = since
        .or_else(|| arrivals.iter().map(|a| a.at).min())
        .unwrap_or(0);
    let to = until
        .or_else(|| list.iter().map(|t| t.closed_at + 1).max())
        .unwrap_or(0);
    let mut seen = std::collections::BTreeSet::new();
    let agents = list
        .iter()
        .flat_map(|t| t.agents.iter())
        .filter(|a| seen.insert(a.id.clone()))
        .filter_map(|a| site.agent(&a.id))
        .map(|a| Shift {
            id: a.id.clone(),
            departments: if a.departments.is_empty() {
                site.departments.iter().map(|d| d.id.clone()).collect()
            } else {
                a.departments.clone()
            },
            max_concurrent: a.max_concurrent,
            skills: a.skills.clone(),
            from,
            until: to,
        })
        .collect();
    Ok(Trace { agents, arrivals })
}

/// The reports side by side, one policy per row.
pub fn table(reports: &[Report]) -> String {
    let mut out = format!(
        "{:<20} {:>6} {:>6} {:>9} {:>9} {:>8} {:>9} {:>7} {:>9}\n",
        "policy",
        "chats",
        "served",
        "wait p50",
        "wait p90",
        "offline",
        "abandoned",
        "sla",
        "fairness"
    );
    for r in reports {
        out.push_str(&format!(
            "{:<20} {:>6} {:>6} {:>8.1}s {:>8.1}s {:>8} {:>9} {:>7} {:>9.3}\n",
            r.policy,
            r.chats,
            r.served,
            r.wait_p50_secs,
            r.wait_p90_secs,
            r.offline,
            r.abandoned,
            r.sla_breaches,
            r.fairness
        ));
    }
    if let (Some(p50), Some(max)) = (
        reports.first().and_then(|r| r.replay_error_p50_ms),
        reports.first().and_then(|r| r.replay_error_max_ms),
    ) {
        out.push_str(&format!(
            "replay of the policy in force against the recorded waits: median difference {p50} ms, largest {max} ms\n"
        ));
    }
    out
}

/// An instant on the command line: RFC 3339 (`2026-12-01T09:00:00Z`), a day
/// (`2026-12-01`, from its midnight UTC), or milliseconds since the epoch.
pub fn parse_instant(v: &str) -> anyhow::Result<Millis> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = v.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    // A day: from its midnight, UTC.
    format!("{v}T00:00:00Z")
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .with_context(|| format!("{v:?} is not a time (2026-12-01, 2026-12-01T09:00:00Z or ms)"))
}
