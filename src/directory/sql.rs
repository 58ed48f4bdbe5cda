//! The directory's rows in the record database (SQLite or PostgreSQL): entries as JSON bodies
//! in the configuration's own shape, agents with their credentials, console sessions, and the
//! version counter that tells every node to reload.
//!
//! Writes are optimistic: a change names the version it was computed from, and the first
//! statement of its transaction moves the counter only from that version. Two admins editing
//! at once on two nodes therefore never overwrite each other unseen; the loser recomputes.

use sqlx::Row;

use super::{Credentials, Write};
use crate::db::{Database, RecordError};
use crate::directory::model::{AgentConfig, SiteConfig};
use crate::model::{AgentId, Millis, SiteId};

type Result<T> = std::result::Result<T, RecordError>;

fn corrupt(e: impl std::fmt::Display) -> RecordError {
    RecordError::Corrupt(format!("directory record: {e}"))
}

/// The directory's storage. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DirectoryStore {
    db: Database,
}

/// A console sign-in, found by its cookie.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub site: SiteId,
    pub agent: AgentId,
    /// Must come back in `X-CSRF-Token` on every request that changes something.
    pub csrf: String,
}

/// What signing in by address needs.
pub struct Login {
    pub site: SiteId,
    pub agent: AgentId,
    pub password_hash: Option<String>,
}

impl DirectoryStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The version every change moves.
    pub async fn version(&self) -> Result<i64> {
        crate::db::timed("directory_version", async move {
            let row = sqlx::query("SELECT version FROM directory_version WHERE id = 1")
                .fetch_one(self.db.pool())
                .await?;
            Ok(row.try_get(0)?)
        })
        .await
    }

    /// The whole directory and the version it is at, read in one transaction.
    pub async fn load(&self) -> Result<(i64, Vec<SiteConfig>)> {
        let mut tx = self.db.pool().begin().await?;
        let version: i64 = sqlx::query("SELECT version FROM directory_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let entries =
            sqlx::query("SELECT kind, site, body FROM directory ORDER BY position, kind, site, id")
                .fetch_all(&mut *tx)
                .await?;
        let agents = sqlx::query(
            "SELECT site, body, credentials, token_sha256, credentials_at FROM agents \
             ORDER BY position, id",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut sites: Vec<SiteConfig> = Vec::new();
        for row in &entries {
            let kind: String = row.try_get(0)?;
            if kind == "site" {
                let body: String = row.try_get(2)?;
                sites.push(serde_json::from_str(&body).map_err(corrupt)?);
            }
        }
        for row in &entries {
            let (kind, site, body): (String, String, String) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let Some(s) = sites.iter_mut().find(|s| s.id.0 == site) else {
                continue;
            };
            match kind.as_str() {
                "department" => s
                    .departments
                    .push(serde_json::from_str(&body).map_err(corrupt)?),
                "canned" => s.canned.push(serde_json::from_str(&body).map_err(corrupt)?),
                "trigger" => s
                    .triggers
                    .push(serde_json::from_str(&body).map_err(corrupt)?),
                "webhook" => s
                    .webhooks
                    .push(serde_json::from_str(&body).map_err(corrupt)?),
                _ => {}
            }
        }
        for row in &agents {
            let site: String = row.try_get(0)?;
            let body: String = row.try_get(1)?;
            let mut agent: AgentConfig = serde_json::from_str(&body).map_err(corrupt)?;
            agent.credentials = row.try_get(2)?;
            agent.credentials_at = row.try_get(4)?;
            // Whether it has one, not the hash: validation needs no more.
            agent.token_sha256 = None;
            if let Some(s) = sites.iter_mut().find(|s| s.id.0 == site) {
                s.agents.push(agent);
            }
        }
        Ok((version, sites))
    }

    /// Whether `site` is the id of a deleted site (never given again).
    pub async fn is_retired(&self, site: &SiteId) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) FROM retired_sites WHERE site = $1")
            .bind(&site.0)
            .fetch_one(self.db.pool())
            .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// Whether no site has been stored yet (the file then seeds the directory).
    pub async fn is_empty(&self) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) FROM directory WHERE kind = 'site'")
            .fetch_one(self.db.pool())
            .await?;
        Ok(row.try_get::<i64, _>(0)? == 0)
    }

    /// Applies writes if the directory is still at `expected`; the new version, or None when
    /// another change came first.
    pub async fn commit(
        &self,
        expected: i64,
        writes: &[Write],
        now: Millis,
    ) -> Result<Option<i64>> {
        let _turn = self.db.write_turn().await;
        let mut tx = self.db.begin_write().await?;
        // First statement a write: the transaction holds the write lock from here on.
        let moved = sqlx::query(
            "UPDATE directory_version SET version = version + 1 WHERE id = 1 AND version = $1",
        )
        .bind(expected)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(None);
        }
        for (n, write) in writes.iter().enumerate() {
            // New entries go after existing ones, in the order given.
            let position = now * 1000 + n as i64;
            match write {
                Write::Entry {
                    kind,
                    site,
                    id,
                    body,
                } => {
                    sqlx::query(
                        "INSERT INTO directory (kind, site, id, position, body) \
                         VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (kind, site, id) DO UPDATE SET body = excluded.body",
                    )
                    .bind(*kind)
                    .bind(&site.0)
                    .bind(id)
                    .bind(position)
                    .bind(body)
                    .execute(&mut *tx)
                    .await?;
                }
                Write::Remove { kind, site, id } => {
                    sqlx::query("DELETE FROM directory WHERE kind = $1 AND site = $2 AND id = $3")
                        .bind(*kind)
                        .bind(&site.0)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                Write::RemoveSite(site) => {
                    for sql in [
                        "DELETE FROM directory WHERE site = $1",
                        "DELETE FROM agents WHERE site = $1",
                        "DELETE FROM agent_sessions WHERE site = $1",
                        "DELETE FROM push_subscriptions WHERE site = $1",
                    ] {
                        sqlx::query(sql).bind(&site.0).execute(&mut *tx).await?;
                    }
                    sqlx::query(
                        "INSERT INTO retired_sites (site, retired_at) VALUES ($1, $2) \
                         ON CONFLICT (site) DO NOTHING",
                    )
                    .bind(&site.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                Write::Agent { site, agent } => {
                    write_agent(&mut tx, site, agent, position, now).await?;
                }
                Write::RemoveAgent { site, id } => {
                    for sql in [
                        "DELETE FROM agents WHERE site = $1 AND id = $2",
                        "DELETE FROM agent_sessions WHERE site = $1 AND agent = $2",
                        "DELETE FROM push_subscriptions WHERE site = $1 AND agent = $2",
                    ] {
                        sqlx::query(sql)
                            .bind(&site.0)
                            .bind(&id.0)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                Write::Credentials { site, id, change } => {
                    write_credentials(&mut tx, site, id, change, now).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(Some(expected + 1))
    }

    /// The agent an API token belongs to (whether they are enabled is the directory's word).
    pub async fn agent_by_token(&self, hash: &str) -> Result<Option<(SiteId, AgentId)>> {
        crate::db::timed("agent_by_token", async move {
            let row = sqlx::query("SELECT site, id FROM agents WHERE token_sha256 = $1")
                .bind(hash.to_ascii_lowercase())
                .fetch_optional(self.db.pool())
                .await?;
            row.map(|r| Ok((SiteId(r.try_get(0)?), AgentId(r.try_get(1)?))))
                .transpose()
        })
        .await
    }

    /// The agents with this address (one per site at most), for signing in.
    pub async fn login(&self, email: &str) -> Result<Vec<Login>> {
        // Addresses are unique per site: a few sites may share one.
        let rows = sqlx::query(
            "SELECT site, id, password_hash FROM agents WHERE email = $1 ORDER BY site LIMIT 8",
        )
        .bind(super::accounts::normalize_email(email))
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Login {
                    site: SiteId(r.try_get(0)?),
                    agent: AgentId(r.try_get(1)?),
                    password_hash: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// The agent a live invite names.
    pub async fn invited(&self, hash: &str, now: Millis) -> Result<Option<(SiteId, AgentId)>> {
        let row = sqlx::query(
            "SELECT site, id FROM agents WHERE invite_sha256 = $1 AND invite_until > $2",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| Ok((SiteId(r.try_get(0)?), AgentId(r.try_get(1)?))))
            .transpose()
    }

    /// Takes the live invite with this hash, once: a single conditional update, so of several
    /// simultaneous acceptances exactly one gets the agent.
    pub async fn consume_invite(
        &self,
        hash: &str,
        now: Millis,
    ) -> Result<Option<(SiteId, AgentId)>> {
        let Some((site, agent)) = self.invited(hash, now).await? else {
            return Ok(None);
        };
        let taken = sqlx::query(
            "UPDATE agents SET invite_sha256 = NULL, invite_until = NULL \
             WHERE site = $1 AND id = $2 AND invite_sha256 = $3 AND invite_until > $4",
        )
        .bind(&site.0)
        .bind(&agent.0)
        .bind(hash)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok((taken.rows_affected() == 1).then_some((site, agent)))
    }

    /// Starts a console session for the agent; the cookie's hash and the CSRF token are kept.
    pub async fn create_session(
        &self,
        site: &SiteId,
        agent: &AgentId,
        id_sha256: &str,
        csrf: &str,
        now: Millis,
        until: Millis,
    ) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "INSERT INTO agent_sessions (id_sha256, site, agent, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id_sha256)
        .bind(&site.0)
        .bind(&agent.0)
        .bind(csrf)
        .bind(now)
        .bind(until)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// The live session a cookie names.
    pub async fn session(&self, id_sha256: &str, now: Millis) -> Result<Option<SessionRow>> {
        crate::db::timed("session", async move {
            let row = sqlx::query(
                "SELECT site, agent, csrf FROM agent_sessions WHERE id_sha256 = $1 AND expires_at > $2",
            )
            .bind(id_sha256)
            .bind(now)
            .fetch_optional(self.db.pool())
            .await?;
            row.map(|r| {
                Ok(SessionRow {
                    site: SiteId(r.try_get(0)?),
                    agent: AgentId(r.try_get(1)?),
                    csrf: r.try_get(2)?,
                })
            })
            .transpose()
        })
        .await
    }

    pub async fn end_session(&self, id_sha256: &str) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query("DELETE FROM agent_sessions WHERE id_sha256 = $1")
            .bind(id_sha256)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Deletes sessions and invites past their time (hourly).
    pub async fn expire(&self, now: Millis) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query("DELETE FROM agent_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(self.db.pool())
            .await?;
        sqlx::query(
            "UPDATE agents SET invite_sha256 = NULL, invite_until = NULL WHERE invite_until <= $1",
        )
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

/// Inserts or updates an agent's record. A token or password hash given (a file seeding or
/// importing) replaces the stored one; none given keeps it.
async fn write_agent(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    site: &SiteId,
    agent: &AgentConfig,
    position: i64,
    now: Millis,
) -> Result<()> {
    let mut body = agent.clone();
    body.email = body.email.map(|e| e.to_lowercase());
    let token = body.token_sha256.take().map(|t| t.to_ascii_lowercase());
    let email = body.email.clone();
    let json = serde_json::to_string(&body).map_err(corrupt)?;
    let old = sqlx::query("SELECT token_sha256 FROM agents WHERE site = $1 AND id = $2")
        .bind(&site.0)
        .bind(&agent.id.0)
        .fetch_optional(&mut **tx)
        .await?;
    match old {
        None => {
            sqlx::query(
                "INSERT INTO agents (site, id, position, body, email, token_sha256, \
                 password_hash, credentials) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
            )
            .bind(&site.0)
            .bind(&agent.id.0)
            .bind(position)
            .bind(json)
            .bind(email)
            .bind(token)
            .bind(agent.password_argon2.clone())
            .execute(&mut **tx)
            .await?;
        }
        Some(row) => {
            let old_token: Option<String> = row.try_get(0)?;
            let rotated = token.is_some() && token != old_token;
            sqlx::query(
                "UPDATE agents SET body = $3, email = $4, \
                 token_sha256 = COALESCE($5, token_sha256), \
                 password_hash = COALESCE($6, password_hash), \
                 credentials = credentials + $7 WHERE site = $1 AND id = $2",
            )
            .bind(&site.0)
            .bind(&agent.id.0)
            .bind(json)
            .bind(email)
            .bind(token)
            .bind(agent.password_argon2.clone())
            .bind(i64::from(rotated))
            .execute(&mut **tx)
            .await?;
        }
    }
    // Disabling ends the account's sessions and invalidates its API token and single-sign-on
    // tokens issued until now, as removal does: enabling it again brings back none of them.
    if agent.disabled {
        sqlx::query(
            "UPDATE agents SET token_sha256 = NULL, credentials_at = $3 \
             WHERE site = $1 AND id = $2",
        )
        .bind(&site.0)
        .bind(&agent.id.0)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM agent_sessions WHERE site = $1 AND agent = $2")
            .bind(&site.0)
            .bind(&agent.id.0)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Changes an agent's credentials; every change closes the agent's sockets everywhere.
async fn write_credentials(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    site: &SiteId,
    id: &AgentId,
    change: &Credentials,
    now: Millis,
) -> Result<()> {
    let query = match change {
        Credentials::Token(hash) => sqlx::query(
            "UPDATE agents SET token_sha256 = $3, credentials = credentials + 1 \
             WHERE site = $1 AND id = $2",
        )
        .bind(&site.0)
        .bind(&id.0)
        .bind(hash.clone()),
        Credentials::Invite { hash, until } => sqlx::query(
            "UPDATE agents SET invite_sha256 = $3, invite_until = $4, password_hash = NULL, \
             credentials = credentials + 1 WHERE site = $1 AND id = $2",
        )
        .bind(&site.0)
        .bind(&id.0)
        .bind(hash.clone())
        .bind(*until),
        Credentials::Password(hash) => sqlx::query(
            "UPDATE agents SET password_hash = $3, invite_sha256 = NULL, invite_until = NULL, \
             credentials = credentials + 1 WHERE site = $1 AND id = $2",
        )
        .bind(&site.0)
        .bind(&id.0)
        .bind(hash.clone()),
    };
    query.execute(&mut **tx).await?;
    sqlx::query("UPDATE agents SET credentials_at = $3 WHERE site = $1 AND id = $2")
        .bind(&site.0)
        .bind(&id.0)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    // A reset, and a password set, end every console session (the new password's own session
    // starts after); a rotated API token leaves them (its sockets close all the same, and
    // consoles come back on their cookie).
    if matches!(
        change,
        Credentials::Invite { .. } | Credentials::Password(_)
    ) {
        sqlx::query("DELETE FROM agent_sessions WHERE site = $1 AND agent = $2")
            .bind(&site.0)
            .bind(&id.0)
            .execute(&mut **tx)
            .await?;
    }
    // A reset also silences the browsers the account turned notifications on in: one of
    // them may be why it was reset.
    if matches!(change, Credentials::Invite { .. }) {
        sqlx::query("DELETE FROM push_subscriptions WHERE site = $1 AND agent = $2")
            .bind(&site.0)
            .bind(&id.0)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
