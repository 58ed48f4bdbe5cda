//! Versioned schema migrations, embedded in the binary: one list per kind of database, applied
//! in order and recorded by sqlx in `_sqlx_migrations`. Never edit a released migration; add
//! the next one.
//!
//! **Expand, then contract.** A fleet on one PostgreSQL upgrades node by node, so the release
//! before keeps serving the schema of the release after: a binary applies the migrations it
//! has and serves a database migrated further as it is (sqlx's `ignore_missing`), and every
//! migration only expands (new tables, indexes, nullable or defaulted columns, backfills; a
//! constraint only loosened). Dropping or renaming what a release reads waits until the
//! release after the last one that reads it, and is listed in `CONTRACTS` with why it is safe;
//! `tests::migrations_only_expand` holds the rest to it.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::AnyPool;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use super::Kind;

/// (version, description, SQLite, PostgreSQL). A migration written in the SQL both accept
/// names the same file twice.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "tickets and the webhook outbox",
        include_str!("sql/0001_tickets.sql"),
        include_str!("sql/0001_tickets.sql"),
    ),
    (
        2,
        "ticket figures as columns",
        include_str!("sql/0002_ticket_figures.sqlite.sql"),
        include_str!("sql/0002_ticket_figures.postgres.sql"),
    ),
    (
        3,
        "audit log",
        include_str!("sql/0003_audit.sql"),
        include_str!("sql/0003_audit.sql"),
    ),
    (
        4,
        "full-text search over tickets",
        include_str!("sql/0004_search.sqlite.sql"),
        include_str!("sql/0004_search.postgres.sql"),
    ),
    (
        5,
        "follow-up status and tags",
        include_str!("sql/0005_follow_up.sqlite.sql"),
        include_str!("sql/0005_follow_up.postgres.sql"),
    ),
    (
        6,
        "visitor records",
        include_str!("sql/0006_visitors.sql"),
        include_str!("sql/0006_visitors.sql"),
    ),
    (
        7,
        "the last agent of a ticket",
        include_str!("sql/0007_ticket_agent.sqlite.sql"),
        include_str!("sql/0007_ticket_agent.postgres.sql"),
    ),
    (
        8,
        "a covering index for figures",
        include_str!("sql/0008_figures_index.sql"),
        include_str!("sql/0008_figures_index.sql"),
    ),
    (
        9,
        "figures kept as tickets are written",
        include_str!("sql/0009_figures.sqlite.sql"),
        include_str!("sql/0009_figures.postgres.sql"),
    ),
    (
        10,
        "the directory and agent accounts",
        include_str!("sql/0010_directory.sql"),
        include_str!("sql/0010_directory.sql"),
    ),
    (
        11,
        "files sent in chats",
        include_str!("sql/0011_attachments.sqlite.sql"),
        include_str!("sql/0011_attachments.postgres.sql"),
    ),
    (
        12,
        "ids of deleted sites",
        include_str!("sql/0012_retired_sites.sql"),
        include_str!("sql/0012_retired_sites.sql"),
    ),
    (
        13,
        "the visitor of a webhook delivery",
        include_str!("sql/0013_delivery_visitor.sql"),
        include_str!("sql/0013_delivery_visitor.sql"),
    ),
    (
        14,
        "search text as words",
        include_str!("sql/0014_search_words.sqlite.sql"),
        include_str!("sql/0014_search_words.postgres.sql"),
    ),
    (
        15,
        "when an agent's credentials last changed",
        include_str!("sql/0015_credentials_at.sql"),
        include_str!("sql/0015_credentials_at.sql"),
    ),
    (
        16,
        "agent addresses unique per site",
        include_str!("sql/0016_email_per_site.sql"),
        include_str!("sql/0016_email_per_site.sql"),
    ),
    (
        17,
        "web push subscriptions and the server's keys",
        include_str!("sql/0017_push.sql"),
        include_str!("sql/0017_push.sql"),
    ),
    (
        18,
        "the wait estimate each ticket's visitor was given",
        include_str!("sql/0018_wait_estimates.sql"),
        include_str!("sql/0018_wait_estimates.sql"),
    ),
    (
        19,
        "answers kept for Idempotency-Key",
        include_str!("sql/0019_idempotency.sql"),
        include_str!("sql/0019_idempotency.sql"),
    ),
];

/// The version a fully migrated database is at.
pub fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// The embedded migrations of one kind, as sqlx wants a source.
#[derive(Debug)]
struct Embedded(Kind);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sqlite, postgres)| {
                    let sql = match self.0 {
                        Kind::Sqlite => sqlite,
                        Kind::Postgres => postgres,
                    };
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        sqlx::SqlStr::from_static(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Migrations that drop or rename, each with why the release before keeps working.
#[cfg_attr(not(test), allow(dead_code))]
const CONTRACTS: &[(i64, &str)] = &[(
    16,
    "replaces the unique index on agents' email with one per site: looser, so nothing the \
     release before writes is refused",
)];

/// Applies the migrations this binary has; applied ones it does not know (a newer release
/// migrated the database) are left as they are.
pub async fn run(pool: &AnyPool, kind: Kind) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = Migrator::new(Embedded(kind)).await?;
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every migration only expands the schema, but those listed in `CONTRACTS`: no table,
    /// column or index dropped, nothing renamed or retyped, no column added NOT NULL without a
    /// default (the release before inserts rows without it).
    #[test]
    fn migrations_only_expand() {
        for &(version, description, sqlite, postgres) in MIGRATIONS {
            if CONTRACTS.iter().any(|(v, _)| *v == version) {
                continue;
            }
            for sql in [sqlite, postgres] {
                let code: String = sql
                    .lines()
                    .map(|l| l.split("--").next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_uppercase();
                let words: Vec<&str> = code.split_whitespace().collect();
                for (i, w) in words.iter().enumerate() {
                    let next = words.get(i + 1).copied().unwrap_or("");
                    let refused = match *w {
                        "DROP" => next != "TRIGGER",
                        "RENAME" => true,
                        "ALTER" => next == "COLUMN",
                        _ => false,
                    };
                    assert!(
                        !refused,
                        "migration {version} ({description}) contracts the schema ({w} {next}): \
                         wait a release and list it in CONTRACTS"
                    );
                }
                for statement in code.split(';') {
                    if statement.contains("ADD COLUMN") && statement.contains("NOT NULL") {
                        assert!(
                            statement.contains("DEFAULT"),
                            "migration {version} ({description}) adds a NOT NULL column without \
                             a default: the release before cannot insert"
                        );
                    }
                }
            }
        }
    }
}
