//! `switchboard backup DIR` and `switchboard restore DIR`: the node's SQLite files, copied
//! whole while it serves, and put back while it is stopped.
//!
//! Two files can hold what a node must not lose: the record database (`switchboard.db`:
//! tickets, the directory, the outbox, attachments; when `database_url` is SQLite) and the
//! embedded state (`live.db`: open conversations, queues, loads; without `redis_url`).
//! PostgreSQL has `pg_dump` and Redis holds live state only, so a node on both has nothing
//! here to copy, and says so.
//!
//! A backup is SQLite's online backup API in one step: one read transaction, so each copy is
//! the database at one instant, while the node keeps writing (WAL: readers never block the
//! writer). Each copy is checked (`PRAGMA integrity_check`), switched to a single file
//! (journal mode DELETE) and renamed into place, with `backup.json` naming the files and the
//! schema. A restore refuses while a node holds the data directory (`live.lock`), checks each
//! file, removes the old `-wal` and `-shm` (a log left beside a restored file would be replayed
//! into it), renames the copy into place and gives it to the data directory's owner.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};

use crate::config::Config;

/// The record database's file name in a backup.
const RECORDS: &str = "switchboard.db";
/// The embedded state's file name, in a backup and in the data directory.
const LIVE: &str = "live.db";
/// What a backup holds and where it came from.
const MANIFEST: &str = "backup.json";

/// The files this configuration keeps in SQLite: (name in a backup, path in use).
fn files(config: &Config) -> Vec<(&'static str, PathBuf)> {
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| crate::db::default_url(&config.data_dir));
    let mut files = Vec::new();
    if let Some(path) = crate::db::sqlite_path(&url) {
        files.push((RECORDS, path));
    }
    if config.redis_url.is_none() {
        files.push((LIVE, config.data_dir.join(LIVE)));
    }
    files
}

/// Copies the node's SQLite files into `dest` (created if missing; files there are not
/// overwritten) and returns what it wrote.
pub fn backup(config: &Config, dest: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let files = files(config);
    if files.is_empty() {
        bail!(
            "nothing to back up here: the records are in PostgreSQL (back them up with pg_dump) \
             and live state is in Redis"
        );
    }
    crate::db::private_dir(dest)?;
    let mut written = Vec::new();
    let mut names = Vec::new();
    for (name, source) in &files {
        if !source.exists() {
            // A node that never started in this mode has no such file yet.
            continue;
        }
        let target = dest.join(name);
        if target.exists() {
            bail!(
                "{} exists: back up into an empty directory",
                target.display()
            );
        }
        let partial = dest.join(format!("{name}.partial"));
        let _ = std::fs::remove_file(&partial);
        copy_online(source, &partial)
            .with_context(|| format!("cannot back up {}", source.display()))?;
        std::fs::rename(&partial, &target)?;
        names.push(*name);
        written.push(target);
    }
    if written.is_empty() {
        bail!(
            "nothing to back up yet: no database file in {}",
            config.data_dir.display()
        );
    }
    let manifest = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "schema": crate::db::Database::schema_version(),
        "taken_at_ms": crate::model::now_ms(),
        "files": names,
    });
    let path = dest.join(MANIFEST);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)?;
    written.push(path);
    sync_dir(dest);
    Ok(written)
}

/// Puts a backup made by `backup` back in place of the node's files. The node must be stopped.
pub fn restore(config: &Config, from: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(from.join(MANIFEST))
            .with_context(|| format!("{} is not a backup: no {MANIFEST}", from.display()))?,
    )
    .with_context(|| format!("{MANIFEST} does not parse"))?;
    let schema = manifest["schema"].as_i64().unwrap_or(0);
    if schema > crate::db::Database::schema_version() {
        bail!(
            "the backup's schema ({schema}) is newer than this binary's ({}): restore it with \
             the release that took it",
            crate::db::Database::schema_version()
        );
    }
    let files = files(config);
    let present: Vec<_> = files
        .iter()
        .filter(|(name, _)| from.join(name).exists())
        .collect();
    if present.is_empty() {
        bail!(
            "{} holds none of the files this configuration uses ({})",
            from.display(),
            files.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        );
    }
    // Held until the end: no embedded node starts on the directory meanwhile, and none runs.
    crate::db::private_dir(&config.data_dir)?;
    let _lock = crate::state::memory::journal::lock_dir(&config.data_dir)
        .context("stop the node before restoring")?;
    for (name, _) in &present {
        check(&from.join(name)).with_context(|| format!("{name} in the backup is damaged"))?;
    }
    let mut restored = Vec::new();
    for (name, target) in present {
        let partial = with_suffix(target, ".restoring");
        std::fs::copy(from.join(name), &partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::File::open(&partial)?.sync_all()?;
        for log in ["-wal", "-shm"] {
            let path = with_suffix(target, log);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).context(format!("cannot remove {}", path.display())),
            }
        }
        std::fs::rename(&partial, target)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o600))?;
            crate::db::own_like_dir(target)?;
        }
        if let Some(dir) = target.parent() {
            sync_dir(dir);
        }
        restored.push(target.clone());
    }
    Ok(restored)
}

/// SQLite's backup API, all pages in one step: one read transaction, one instant.
fn copy_online(source: &Path, dest: &Path) -> anyhow::Result<()> {
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The node may hold the write lock for a moment.
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut dst = Connection::open(dest)?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
        backup.step(-1)?;
    }
    // One self-contained file: no `-wal` beside it.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    integrity(&dst)?;
    drop(dst);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Conversations live in it: readable by this user only.
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::File::open(dest)?.sync_all()?;
    Ok(())
}

/// Opens a backup's file read-only and checks it.
fn check(path: &Path) -> anyhow::Result<()> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    integrity(&conn)
}

fn integrity(conn: &Connection) -> anyhow::Result<()> {
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    if verdict != "ok" {
        bail!("integrity check: {verdict}");
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Makes renames in `dir` durable; best effort (not every file system can).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
