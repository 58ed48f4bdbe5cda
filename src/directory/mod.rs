//! The directory: sites (origins, widget, pre-chat form, templates, identity secret),
//! departments (hours, holidays, time zone), agents (departments, limits, role), canned
//! responses, triggers and webhooks. It lives in the record database (`sql`) and is managed at
//! run time over REST; the TOML file seeds it when the database has none, and
//! `switchboard import FILE` upserts one from a file.
//!
//! Every change is computed on a copy of the whole directory, validated as strictly as the file
//! is (`validate_sites`, so errors name the field), and stored as the rows that
//! differ (`diff`). The engine installs the new directory at once on the node that made the
//! change; every other node sees the version counter move within its poll interval.
//!
//! `accounts` holds what signing in needs: password hashes, tokens, the sign-in limiter.

pub mod accounts;
pub mod model;
pub mod sql;
mod validate;

pub use validate::validate_sites;

use std::collections::BTreeMap;

pub use sql::DirectoryStore;

use crate::db::RecordError;
use crate::directory::model::{AgentConfig, SiteConfig};
use crate::model::{AgentId, Millis, SiteId};
use crate::validation::ConfigError;

/// Why a directory change was not made.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The directory it would make is invalid; the error names the field.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what is stored (an id already taken).
    #[error("{0}")]
    Conflict(String),
    #[error("directory storage: {0}")]
    Unavailable(#[from] RecordError),
}

/// How often a change computed on a stale directory is recomputed before giving up.
const ATTEMPTS: usize = 8;

/// Computes a change on the stored directory, validates the result (the directory alone: the
/// server's settings are not the directory's to check), and stores the rows that differ.
/// Returns the new version, or None when nothing changed.
pub async fn change(
    store: &DirectoryStore,
    now: Millis,
    mut edit: impl FnMut(&mut Vec<SiteConfig>) -> Result<(), DirectoryError>,
) -> Result<Option<i64>, DirectoryError> {
    for _ in 0..ATTEMPTS {
        let (version, stored) = store.load().await?;
        let mut next = stored.clone();
        edit(&mut next)?;
        validate_sites(&next)?;
        let writes = diff(&stored, &next);
        if writes.is_empty() {
            return Ok(None);
        }
        // A deleted site's id is never given again: what it left behind stays its own.
        for site in &next {
            if !stored.iter().any(|s| s.id == site.id) && store.is_retired(&site.id).await? {
                return Err(DirectoryError::Conflict(format!(
                    "site id {} belonged to a deleted site and is not given again",
                    site.id
                )));
            }
        }
        if let Some(v) = store.commit(version, &writes, now).await? {
            return Ok(Some(v));
        }
    }
    Err(DirectoryError::Conflict(
        "the directory kept changing under this request; retry".into(),
    ))
}

/// Stores credential changes of one agent (no validation needed: they are not configuration).
pub async fn set_credentials(
    store: &DirectoryStore,
    site: &SiteId,
    agent: &AgentId,
    change: Credentials,
    now: Millis,
) -> Result<i64, DirectoryError> {
    let write = [Write::Credentials {
        site: site.clone(),
        id: agent.clone(),
        change,
    }];
    for _ in 0..ATTEMPTS {
        let version = store.version().await?;
        if let Some(v) = store.commit(version, &write, now).await? {
            return Ok(v);
        }
    }
    Err(DirectoryError::Conflict(
        "the directory kept changing under this request; retry".into(),
    ))
}

/// One stored row's change.
#[derive(Clone, Debug)]
pub enum Write {
    /// A site's own settings, or one of its departments, canned responses, triggers, webhooks.
    Entry {
        kind: &'static str,
        site: SiteId,
        id: String,
        body: String,
    },
    Remove {
        kind: &'static str,
        site: SiteId,
        id: String,
    },
    /// A site and everything in it.
    RemoveSite(SiteId),
    Agent {
        site: SiteId,
        agent: AgentConfig,
    },
    RemoveAgent {
        site: SiteId,
        id: AgentId,
    },
    Credentials {
        site: SiteId,
        id: AgentId,
        change: Credentials,
    },
}

/// A change of an agent's credentials. Each signs the agent out everywhere.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// A new API token's hash, or none (revoked).
    Token(Option<String>),
    /// A new invite (or reset) link's hash; the password is cleared.
    Invite { hash: String, until: Millis },
    /// A password set from an invite link.
    Password(String),
}

/// The entries of a site other than agents, by kind and id, as stored JSON.
fn entries(site: &SiteConfig) -> BTreeMap<(&'static str, String), String> {
    fn json(v: &impl serde::Serialize) -> String {
        serde_json::to_string(v).expect("directory entries serialize")
    }
    let mut own = site.clone();
    own.departments.clear();
    own.agents.clear();
    own.canned.clear();
    own.triggers.clear();
    own.webhooks.clear();
    let mut out = BTreeMap::new();
    out.insert(("site", site.id.0.clone()), json(&own));
    for d in &site.departments {
        out.insert(("department", d.id.0.clone()), json(d));
    }
    for c in &site.canned {
        out.insert(("canned", c.shortcut.clone()), json(c));
    }
    for t in &site.triggers {
        out.insert(("trigger", t.id.clone()), json(t));
    }
    for w in &site.webhooks {
        out.insert(("webhook", w.id.clone()), json(w));
    }
    out
}

/// The agent as the database keeps its body: no credentials.
fn agent_body(a: &AgentConfig) -> String {
    let mut a = a.clone();
    a.token_sha256 = None;
    a.email = a.email.map(|e| e.to_lowercase());
    serde_json::to_string(&a).expect("agents serialize")
}

/// The rows that turn `old` into `new`. Agents that carry a token or password hash (from a
/// file) are written even when nothing else changed, so an import can rotate a token.
pub fn diff(old: &[SiteConfig], new: &[SiteConfig]) -> Vec<Write> {
    let mut writes = Vec::new();
    for site in old {
        if !new.iter().any(|s| s.id == site.id) {
            writes.push(Write::RemoveSite(site.id.clone()));
        }
    }
    for site in new {
        let before = old.iter().find(|s| s.id == site.id);
        let was = before.map(entries).unwrap_or_default();
        let is = entries(site);
        // The site's own row first: a new site's entries follow it in position.
        let mut keys: Vec<_> = is.keys().collect();
        keys.sort_by_key(|(kind, _)| *kind != "site");
        for key in keys {
            if was.get(key) != is.get(key) {
                writes.push(Write::Entry {
                    kind: key.0,
                    site: site.id.clone(),
                    id: key.1.clone(),
                    body: is[key].clone(),
                });
            }
        }
        for key in was.keys().filter(|k| !is.contains_key(*k)) {
            writes.push(Write::Remove {
                kind: key.0,
                site: site.id.clone(),
                id: key.1.clone(),
            });
        }
        for agent in &site.agents {
            let prior = before.and_then(|b| b.agent(&agent.id));
            let changed = prior.is_none_or(|p| agent_body(p) != agent_body(agent));
            if changed || agent.token_sha256.is_some() || agent.password_argon2.is_some() {
                writes.push(Write::Agent {
                    site: site.id.clone(),
                    agent: agent.clone(),
                });
            }
        }
        for agent in before.iter().flat_map(|b| b.agents.iter()) {
            if site.agent(&agent.id).is_none() {
                writes.push(Write::RemoveAgent {
                    site: site.id.clone(),
                    id: agent.id.clone(),
                });
            }
        }
    }
    writes
}

/// `import`: every site of the file replaces the stored site of the same id (agents keep their
/// passwords and, unless the file names one, their tokens); other stored sites stay.
pub fn merged(stored: &[SiteConfig], file: &[SiteConfig]) -> Vec<SiteConfig> {
    let mut out = stored.to_vec();
    for site in file {
        match out.iter_mut().find(|s| s.id == site.id) {
            Some(s) => *s = site.clone(),
            None => out.push(site.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeding writes every entry; an unchanged directory writes nothing; one edited field
    /// writes one row; a removed department is removed.
    #[test]
    fn diffs() {
        let (config, _) = crate::demo::config();
        let seed = diff(&[], &config.sites);
        assert!(seed.len() > 5, "{seed:?}");
        assert!(matches!(&seed[0], Write::Entry { kind: "site", .. }));
        let mut stored = config.sites.clone();
        for a in &mut stored[0].agents {
            a.token_sha256 = None;
            a.password_argon2 = None;
        }
        assert!(diff(&stored, &stored).is_empty());
        let mut edited = stored.clone();
        edited[0].widget.color = "#000000".into();
        edited[0].departments.pop();
        let w = diff(&stored, &edited);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(matches!(&w[0], Write::Entry { kind: "site", .. }));
        assert!(matches!(
            &w[1],
            Write::Remove {
                kind: "department",
                ..
            }
        ));
    }
}
