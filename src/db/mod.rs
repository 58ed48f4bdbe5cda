//! The record database: tickets and the webhook outbox (and, as the issues that build on it
//! land, the directory and the audit log). SQLite by default, a file in the data directory that
//! needs no setup; PostgreSQL when several nodes share their records.
//!
//! One `Database` handle over a pool of either kind (sqlx's `Any` driver: one set of queries,
//! written in the SQL both understand, and a per-kind statement where they differ). Versioned
//! migrations (`migrations.rs`) are applied at start and by `switchboard migrate`.

mod migrations;

use std::path::Path;
use std::str::FromStr;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection};

/// A record-database failure (tickets, the outbox, the directory, files): the operation did not
/// happen, or its outcome is unknown. Live state has its own error (`state::StoreError`).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored record that does not read back (a hand edit, or a bug).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The one-time import of what earlier versions kept in Redis (`tickets::redis`).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    pub fn of(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            anyhow::bail!("database_url: expected sqlite://… or postgres://…")
        }
    }
}

/// What a committed write survives on SQLite (PostgreSQL follows its own configuration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous = NORMAL` in WAL: a crash of the process loses nothing committed; a power
    /// loss may lose the last commits. The fast default.
    #[default]
    Process,
    /// `synchronous = FULL`: every commit is on disk before it is acknowledged (an fsync each).
    Power,
}

/// The record database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Database {
    pool: AnyPool,
    kind: Kind,
    /// SQLite has one writer at a time. Writers of this process take turns here rather than
    /// in SQLite, whose lock, under concurrent transactions on pooled connections, can answer
    /// "database is locked" at once instead of waiting. Reads stay concurrent; other processes
    /// on the same file still wait through busy_timeout.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// The default database of a data directory: `sqlite://<data-dir>/switchboard.db`.
pub fn default_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("switchboard.db").display())
}

impl Database {
    /// Connects (creating a SQLite file and its directory if missing) and applies migrations.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        Self::open_with(url, Durability::default()).await
    }

    /// As `open`, with the durability SQLite commits get.
    pub async fn open_with(url: &str, durability: Durability) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let kind = Kind::of(url)?;
        if kind == Kind::Sqlite {
            prepare_sqlite_file(url)?;
        }
        let options = AnyConnectOptions::from_str(&connect_url(url, kind))
            .context("database_url is not a valid URL")?
            // Statements are logged at debug only: they carry visitors' data.
            .log_statements(tracing::log::LevelFilter::Debug);
        if kind == Kind::Sqlite {
            // WAL (readers never wait for the writer) is a property of the file: set it once,
            // on a connection of its own. Switching it needs a lock that a pool growing under
            // load would not get, so connections the pool opens later never touch it.
            let mut conn = sqlx::AnyConnection::connect_with(&options)
                .await
                .with_context(|| format!("cannot open the database ({})", redacted(url)))?;
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&mut conn)
                .await?;
            conn.close().await?;
        }
        let pool = AnyPoolOptions::new()
            // SQLite serializes writers; more connections only wait on its lock.
            .max_connections(if kind == Kind::Sqlite { 4 } else { 8 })
            // A database that is gone fails a call in seconds instead of holding it (and the
            // client waiting on it) for sqlx's default 30 s.
            .acquire_timeout(std::time::Duration::from_secs(2))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if kind == Kind::Sqlite {
                        // busy_timeout first: a write waits for another connection's instead
                        // of failing (another process on the same file).
                        let synchronous = match durability {
                            Durability::Process => "PRAGMA synchronous = NORMAL",
                            Durability::Power => "PRAGMA synchronous = FULL",
                        };
                        for pragma in [
                            "PRAGMA busy_timeout = 5000",
                            synchronous,
                            "PRAGMA foreign_keys = ON",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the database ({})", redacted(url)))?;
        let db = Self {
            pool,
            kind,
            writer: Default::default(),
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Applies the migrations this binary knows that the database has not seen.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        migrations::run(&self.pool, self.kind)
            .await
            .context("cannot migrate the database")
    }

    /// The schema version this binary migrates to.
    pub fn schema_version() -> i64 {
        migrations::latest()
    }

    /// Closes every connection: SQLite checkpoints its log into the file.
    pub async fn close(self) {
        self.pool.close().await;
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A transaction that writes. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred one that reads first cannot become a writer once another
    /// process (`switchboard import`, a test's own pool) has committed since its read began,
    /// and fails with "database is locked" whatever the busy timeout.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.kind {
            Kind::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Kind::Postgres => self.pool.begin().await,
        }
    }

    /// This process's turn to write (SQLite); PostgreSQL writers need none.
    pub async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.kind {
            Kind::Sqlite => Some(self.writer.lock().await),
            Kind::Postgres => None,
        }
    }
}

/// The URL as sqlx wants it: SQLite files are created when missing (`mode=rwc`).
fn connect_url(url: &str, kind: Kind) -> String {
    if kind == Kind::Sqlite && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    }
}

/// The file a SQLite URL names; `None` for PostgreSQL and in-memory databases.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    if Kind::of(url).ok()? != Kind::Sqlite {
        return None;
    }
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(path.into())
}

/// Gives `path` (and its `-wal` and `-shm` files) to the owner of its directory, when that is
/// another user and this process may: `migrate`, `import` or `restore` run as root must not
/// leave the service user a database it cannot open.
#[cfg(unix)]
pub fn own_like_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let owner = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        match std::fs::metadata(file) {
            Ok(m) if m.uid() != owner.uid() || m.gid() != owner.gid() => {
                std::os::unix::fs::chown(file, Some(owner.uid()), Some(owner.gid())).with_context(
                    || format!("cannot give {} to its directory's owner", file.display()),
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Creates the SQLite file's directory, so a fresh data directory works.
fn prepare_sqlite_file(url: &str) -> anyhow::Result<()> {
    let Some(path) = sqlite_path(url) else {
        return Ok(());
    };
    let path = path.as_path();
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        crate::db::private_dir(dir)?;
    }
    // Visitors' conversations live in it: readable by this user only (SQLite gives its -wal
    // and -shm files the same permissions).
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
    }
    Ok(())
}

/// A URL fit for logs: no password.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Runs one record-database operation, recording how long it took in
/// `switchboard_db_seconds{op}` (an operation is one statement or one transaction).
pub async fn timed<T>(op: &'static str, operation: impl Future<Output = T>) -> T {
    let start = std::time::Instant::now();
    let out = operation.await;
    metrics::histogram!(crate::observe::DB_SECONDS, "op" => op)
        .record(start.elapsed().as_secs_f64());
    out
}

/// Creates a data directory the binary owns, private to its user (0700): it holds the record
/// database, the journal and their secrets. One that exists keeps its mode (the operator's).
pub fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passwords never reach a log line; the kind comes from the scheme.
    #[test]
    fn urls() {
        assert_eq!(
            redacted("postgres://sb:secret@db.local:5432/sb"),
            "postgres://…@db.local:5432/sb"
        );
        assert_eq!(
            redacted("sqlite:///var/lib/sb.db"),
            "sqlite:///var/lib/sb.db"
        );
        assert_eq!(Kind::of("postgresql://x/y").unwrap(), Kind::Postgres);
        assert!(Kind::of("mysql://x").is_err());
        assert_eq!(
            connect_url("sqlite:///tmp/a.db", Kind::Sqlite),
            "sqlite:///tmp/a.db?mode=rwc"
        );
    }
}
