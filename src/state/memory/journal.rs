//! The embedded backend's disk: its live state in SQLite (`<data-dir>/live.db`), so a restart or
//! an upgrade of the single binary resumes every conversation where it was.
//!
//! The memory store stays the source of truth while the process runs; each of its atomic steps
//! also hands the journal the rows it changed (under the site's lock, so the journal's order is
//! the order of the steps) and waits for them to be committed before it returns. The caller
//! acknowledges only then: nothing acknowledged is lost by a crash. One writer thread commits
//! whatever has accumulated in one transaction (group commit): under load one commit carries the
//! writes of many sessions, and a quiet server commits each write at once.
//!
//! Envelopes of stored events are delivered after their commit too, in journal order, so no
//! client ever sees an event a crash could take back, and sessions still see each
//! conversation's events in sequence order.
//!
//! The writer is a plain thread on a blocking SQLite connection (rusqlite, on the same SQLite
//! library sqlx links): a commit is a few microseconds of SQLite work, and one hand-over from
//! the async sessions to the thread and one back, where sqlx's async connection would add a
//! hand-over per statement. WAL checkpoints (copying the log into the database file, with an
//! fsync) run on a second thread and connection, so a commit does not wait for the disk; the
//! writer restarts the log itself, briefly, each time it has grown past `WAL_LIMIT_FRAMES`.
//!
//! Bounds: every step that submits waits for its commit, so what is pending is at most one
//! step per concurrent store call. A lock file (`live.lock`, flock) refuses a second process on
//! the same data directory instead of letting it fork the state; the kernel releases it when the
//! process dies, however it dies.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::db::Durability;
use crate::envelope::{Envelope, Sink};
use crate::model::{AgentState, ConvId, Conversation, DeptId, Event, EventBody, Millis, SiteId};
use crate::state::{Result, StoreError};

/// The journal's page size: a commit appends whole pages to the log, and most commits change a
/// few hundred bytes.
const PAGE_BYTES: i64 = 1024;
/// The write-ahead log is restarted (a short pause of the writer) once it holds this many
/// frames (64 MiB): under continuous writes the background checkpoints copy it, but SQLite
/// never gets a quiet moment to restart it on its own.
const WAL_LIMIT_FRAMES: i64 = (64 << 20) / PAGE_BYTES;
/// How often the checkpointer copies the log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// One changed row.
pub(super) enum Write {
    /// A stored event (its client id, if any, is in the body).
    Event {
        site: SiteId,
        conv: ConvId,
        event: Event,
    },
    /// A conversation's routing record and queue place, replacing the last.
    Conv { site: SiteId, row: ConvRow },
    /// A conversation and its events are gone (swept after retention, or erased).
    ForgetConv { site: SiteId, conv: ConvId },
    /// An agent's routing record (status, limit, load, chats).
    Agent { site: SiteId, state: AgentState },
    /// The site's queue arrival counter.
    Arrivals { site: SiteId, n: u64 },
}

/// A conversation as the memory store keeps it, minus its events.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct ConvRow {
    pub conv: Conversation,
    /// While active: when the inactivity timer started (the visitor's later messages count too;
    /// they are read back from the events).
    pub activity: Option<Millis>,
    pub expires_at: Option<Millis>,
    /// Where it waits: department, score and since when.
    pub queue: Option<(DeptId, i64, Millis)>,
    /// Closed and its ticket not yet known to be saved.
    pub unticketed: bool,
}

/// Where each conversation's events lie in the events table: the first and last row id.
/// Events are appended in row-id order (so a commit touches the table's last pages, not a page
/// per conversation), and a conversation is deleted by scanning its own range only.
/// Keyed by conversation alone: conversation ids are ULIDs, unique across sites.
type Ranges = std::collections::HashMap<ConvId, (i64, i64)>;

/// Everything the journal holds, read back at start.
#[derive(Default)]
pub(super) struct Snapshot {
    pub arrivals: Vec<(SiteId, u64)>,
    pub agents: Vec<(SiteId, AgentState)>,
    pub convs: Vec<(SiteId, ConvRow)>,
    /// In order of conversation, then sequence number.
    pub events: Vec<(SiteId, ConvId, Event)>,
}

/// Submitted and not yet taken by the writer.
#[derive(Default)]
struct Pending {
    /// The number of the last submitted step.
    submitted: u64,
    writes: Vec<Write>,
    deliveries: Vec<Envelope>,
    /// Who waits for which step: each woken once, when its step is committed.
    waiters: Vec<oneshot::Sender<()>>,
    /// The journal is closing: the writer commits what is here and stops.
    closed: bool,
}

/// What `committed` waits on. A step's own waiter is woken alone (a watch would wake every
/// waiting session on every commit); reads wait for a step number, which is rare.
pub(super) enum Ticket {
    Step(oneshot::Receiver<()>),
    Upto(u64),
}

/// What the store and the writer thread share.
struct Shared {
    pending: Mutex<Pending>,
    /// Signalled on every submission and on close.
    wake: Condvar,
    /// Frames in the log at the last checkpoint (the checkpointer's count, for the writer).
    wal_frames: AtomicI64,
}

fn lock(m: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The handle the memory store holds. Dropping it (or `close`) stops the writer after it has
/// committed everything submitted.
pub(super) struct Journal {
    shared: Arc<Shared>,
    /// The number of the last committed step; its sender is gone once the writer stopped.
    committed_rx: watch::Receiver<u64>,
}

impl Journal {
    /// Opens (creating) the journal in `dir` and reads back what it holds. Fails when another
    /// process has the directory.
    pub async fn open(
        dir: &Path,
        durability: Durability,
        sink: Arc<dyn Sink>,
    ) -> anyhow::Result<(Self, Snapshot)> {
        let dir = dir.to_owned();
        let (lock_file, writer, checkpointer, snapshot) =
            tokio::task::spawn_blocking(move || open_files(&dir, durability))
                .await
                .context("opening the embedded state panicked")??;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            wal_frames: AtomicI64::new(0),
        });
        let (committed_tx, committed_rx) = watch::channel(0);
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let checkpoint_shared = shared.clone();
        std::thread::Builder::new()
            .name("journal-checkpoint".into())
            .spawn(move || {
                run_checkpointer(checkpointer.0, checkpointer.1, &checkpoint_shared, stop_rx)
            })
            .context("cannot start the checkpoint thread")?;
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || {
                let (conn, ranges) = writer;
                run_writer(conn, ranges, &writer_shared, &committed_tx, &*sink);
                // The checkpointer's last truncation, once nothing more is written; then the
                // directory is free for the next process (the flock goes with the file).
                drop(stop_tx);
                drop(lock_file);
            })
            .context("cannot start the journal thread")?;
        Ok((
            Self {
                shared,
                committed_rx,
            },
            snapshot,
        ))
    }

    /// Queues one step's writes, and an envelope to deliver once they are committed. Called
    /// under the site's lock. Returns what `committed` waits on.
    pub fn submit(&self, writes: Vec<Write>, delivery: Option<Envelope>) -> Ticket {
        let (tx, rx) = oneshot::channel();
        let mut p = lock(&self.shared.pending);
        p.submitted += 1;
        p.writes.extend(writes);
        p.deliveries.extend(delivery);
        p.waiters.push(tx);
        drop(p);
        self.shared.wake.notify_one();
        Ticket::Step(rx)
    }

    /// Every step submitted so far: reads wait for it so that what they saw is on disk before
    /// a client sees it.
    pub fn submitted(&self) -> Ticket {
        Ticket::Upto(lock(&self.shared.pending).submitted)
    }

    /// Waits until the ticket's steps are committed. An error when the journal closed first.
    pub async fn committed(&self, ticket: Ticket) -> Result<()> {
        let done = match ticket {
            Ticket::Step(rx) => rx.await.is_ok(),
            Ticket::Upto(n) => self
                .committed_rx
                .clone()
                .wait_for(|&c| c >= n)
                .await
                .is_ok(),
        };
        if done {
            Ok(())
        } else {
            Err(StoreError::ShuttingDown)
        }
    }

    /// Commits what is pending and stops the writer, releasing the file. Steps submitted after
    /// this are not written, and their callers get an error.
    pub async fn close(&self) {
        self.stop();
        let mut rx = self.committed_rx.clone();
        while rx.changed().await.is_ok() {}
    }

    fn stop(&self) {
        lock(&self.shared.pending).closed = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Takes the data directory's lock: one process at a time.
pub(crate) fn lock_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("live.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        let held = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if held != 0 {
            anyhow::bail!(
                "{} is in use by another switchboard process: one embedded node per data \
                 directory (several nodes share Redis and PostgreSQL)",
                dir.display()
            );
        }
    }
    Ok(file)
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS sites (site TEXT PRIMARY KEY, arrivals INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS agents (site TEXT NOT NULL, id TEXT NOT NULL,
        body TEXT NOT NULL, PRIMARY KEY (site, id));
    CREATE TABLE IF NOT EXISTS convs (site TEXT NOT NULL, id TEXT NOT NULL,
        body TEXT NOT NULL, PRIMARY KEY (site, id));
    CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, site TEXT NOT NULL,
        conv TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL);
";

fn connect(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Effective for a new file only.
    conn.pragma_update(None, "page_size", PAGE_BYTES)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        },
    )?;
    Ok(conn)
}

type Opened = (
    std::fs::File,
    (Connection, Ranges),
    (Connection, PathBuf),
    Snapshot,
);

/// Locks the directory, opens the writer's and the checkpointer's connections, prepares the
/// schema and reads everything back.
fn open_files(dir: &Path, durability: Durability) -> anyhow::Result<Opened> {
    crate::db::private_dir(dir)?;
    let lock_file = lock_dir(dir)?;
    let path = dir.join("live.db");
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Conversations live in it: readable by this user only (SQLite gives its -wal and
        // -shm files the same permissions).
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
    }
    let open = || {
        connect(&path, durability)
            .with_context(|| format!("cannot open the embedded state {}", path.display()))
    };
    let writer = open()?;
    // The checkpointer copies the log; the writer never stops for it.
    writer.pragma_update(None, "wal_autocheckpoint", 0)?;
    writer
        .execute_batch(SCHEMA)
        .with_context(|| format!("cannot prepare {}", path.display()))?;
    let (snapshot, ranges) = read(&writer)?;
    let checkpointer = (open()?, path.clone());
    Ok((lock_file, (writer, ranges), checkpointer, snapshot))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("the embedded state has a bad {what} row: {e}")
}

fn read(conn: &Connection) -> anyhow::Result<(Snapshot, Ranges)> {
    let mut snap = Snapshot::default();
    let mut q = conn.prepare("SELECT site, arrivals FROM sites")?;
    let mut rows = q.query([])?;
    while let Some(row) = rows.next()? {
        let n: i64 = row.get(1)?;
        snap.arrivals
            .push((SiteId(row.get(0)?), u64::try_from(n).unwrap_or(0)));
    }
    let mut q = conn.prepare("SELECT site, body FROM agents")?;
    let mut rows = q.query([])?;
    while let Some(row) = rows.next()? {
        let body: String = row.get(1)?;
        let state = serde_json::from_str(&body).map_err(|e| corrupt("agent", e))?;
        snap.agents.push((SiteId(row.get(0)?), state));
    }
    let mut q = conn.prepare("SELECT site, body FROM convs")?;
    let mut rows = q.query([])?;
    while let Some(row) = rows.next()? {
        let body: String = row.get(1)?;
        let conv = serde_json::from_str(&body).map_err(|e| corrupt("conversation", e))?;
        snap.convs.push((SiteId(row.get(0)?), conv));
    }
    let mut ranges = Ranges::new();
    let mut q = conn.prepare("SELECT id, site, conv, seq, body FROM events ORDER BY id")?;
    let mut rows = q.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let (site, conv) = (SiteId(row.get(1)?), ConvId(row.get(2)?));
        let seq: i64 = row.get(3)?;
        let body: String = row.get(4)?;
        let body: EventBody = serde_json::from_str(&body).map_err(|e| corrupt("event", e))?;
        let range = ranges.entry(conv.clone()).or_insert((id, id));
        range.1 = id;
        snap.events.push((
            site,
            conv,
            Event {
                seq: u64::try_from(seq).unwrap_or(0),
                body,
            },
        ));
    }
    // Each conversation's events in order of their numbers (appends are, already).
    snap.events
        .sort_by(|a, b| (&a.0, &a.1, a.2.seq).cmp(&(&b.0, &b.1, b.2.seq)));
    Ok((snap, ranges))
}

/// Takes what accumulated, commits it in one transaction (retrying until it succeeds: the
/// steps are already visible in memory, so giving up would fork memory from disk), delivers
/// the envelopes, and announces the step number. Ends after committing what was submitted
/// before the journal closed.
fn run_writer(
    mut conn: Connection,
    mut ranges: Ranges,
    shared: &Shared,
    committed_tx: &watch::Sender<u64>,
    sink: &dyn Sink,
) {
    let mut done = 0;
    loop {
        let (upto, writes, deliveries, waiters, closed) = {
            let mut p = lock(&shared.pending);
            while p.submitted == done && !p.closed {
                p = shared.wake.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            (
                p.submitted,
                std::mem::take(&mut p.writes),
                std::mem::take(&mut p.deliveries),
                std::mem::take(&mut p.waiters),
                p.closed,
            )
        };
        if !writes.is_empty() {
            let mut backoff = Duration::from_millis(50);
            let start = std::time::Instant::now();
            while let Err(e) = commit(&mut conn, &writes, &mut ranges) {
                tracing::error!(cause = %e, "cannot write the embedded state; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            metrics::histogram!(crate::observe::DB_SECONDS, "op" => "journal_commit")
                .record(start.elapsed().as_secs_f64());
        }
        for envelope in deliveries {
            sink.deliver(envelope);
        }
        done = upto;
        committed_tx.send_replace(upto);
        for waiter in waiters {
            let _ = waiter.send(());
        }
        if closed {
            return;
        }
        // The checkpointer has copied nearly all of a long log: restart it from the top (a
        // brief pause: the rest is copied and synced; the file is reused, not truncated).
        if shared.wal_frames.load(Ordering::Relaxed) > WAL_LIMIT_FRAMES {
            match conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0)) {
                Ok(0) => shared.wal_frames.store(0, Ordering::Relaxed),
                // Busy: the checkpointer is at work; the next commit tries again.
                Ok(_) => {}
                Err(e) => tracing::warn!(cause = %e, "cannot restart the embedded state's log"),
            }
        }
    }
}

/// Commits a batch in one transaction. Within a batch only the last record of a conversation
/// or agent counts; conversations forgotten are deleted after everything else (their ids are
/// never reused).
fn commit(conn: &mut Connection, writes: &[Write], ranges: &mut Ranges) -> rusqlite::Result<()> {
    use std::collections::HashMap;
    let mut records: HashMap<(&'static str, &str, &str), String> = HashMap::new();
    let mut arrivals: HashMap<&str, u64> = HashMap::new();
    let mut forget = Vec::new();
    // Ranges change only once the transaction commits (a failed one is retried whole).
    let mut appended: Vec<(&SiteId, &ConvId, i64)> = Vec::new();
    let tx = conn.transaction()?;
    {
        let mut insert_event = tx
            .prepare_cached("INSERT INTO events (site, conv, seq, body) VALUES (?1, ?2, ?3, ?4)")?;
        for w in writes {
            match w {
                Write::Event { site, conv, event } => {
                    insert_event.execute(params![
                        site.0,
                        conv.0,
                        i64::try_from(event.seq).unwrap_or(i64::MAX),
                        json(&event.body)
                    ])?;
                    appended.push((site, conv, tx.last_insert_rowid()));
                }
                Write::Conv { site, row } => {
                    records.insert(("convs", &site.0, &row.conv.id.0), json(row));
                }
                Write::Agent { site, state } => {
                    records.insert(("agents", &site.0, &state.id.0), json(state));
                }
                Write::Arrivals { site, n } => {
                    arrivals.insert(&site.0, *n);
                }
                Write::ForgetConv { site, conv } => forget.push((site, conv)),
            }
        }
        let mut conv =
            tx.prepare_cached("INSERT OR REPLACE INTO convs (site, id, body) VALUES (?1, ?2, ?3)")?;
        let mut agent = tx
            .prepare_cached("INSERT OR REPLACE INTO agents (site, id, body) VALUES (?1, ?2, ?3)")?;
        for ((table, site, id), body) in &records {
            let statement = if *table == "convs" {
                &mut conv
            } else {
                &mut agent
            };
            statement.execute(params![site, id, body])?;
        }
        for (site, n) in arrivals {
            tx.prepare_cached("INSERT OR REPLACE INTO sites (site, arrivals) VALUES (?1, ?2)")?
                .execute(params![site, i64::try_from(n).unwrap_or(i64::MAX)])?;
        }
        for (site, conv) in &forget {
            tx.prepare_cached("DELETE FROM convs WHERE site = ?1 AND id = ?2")?
                .execute(params![site.0, conv.0])?;
            let range = appended
                .iter()
                .filter(|(s, c, _)| s == site && c == conv)
                .fold(ranges.get(*conv).copied(), |r, &(_, _, id)| {
                    Some(r.map_or((id, id), |(a, b)| (a.min(id), b.max(id))))
                });
            if let Some((first, last)) = range {
                tx.prepare_cached(
                    "DELETE FROM events WHERE id BETWEEN ?1 AND ?2 AND site = ?3 AND conv = ?4",
                )?
                .execute(params![first, last, site.0, conv.0])?;
            }
        }
    }
    tx.commit()?;
    for (_, conv, id) in appended {
        match ranges.get_mut(conv) {
            Some(range) => range.1 = id,
            None => {
                ranges.insert(conv.clone(), (id, id));
            }
        }
    }
    for (_, conv) in forget {
        ranges.remove(conv);
    }
    Ok(())
}

/// Copies the log into the database file every `CHECKPOINT_EVERY`, off the writer's path,
/// until the writer stops; then truncates the log.
fn run_checkpointer(
    conn: Connection,
    db: PathBuf,
    shared: &Shared,
    stop_rx: std::sync::mpsc::Receiver<()>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    let db_file = std::fs::File::open(&db).ok();
    while let Err(RecvTimeoutError::Timeout) = stop_rx.recv_timeout(CHECKPOINT_EVERY) {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
            Ok(frames) => shared.wal_frames.store(frames, Ordering::Relaxed),
            Err(e) => tracing::warn!(cause = %e, "embedded state checkpoint failed"),
        }
        // Under steady writes a passive checkpoint never completes, and SQLite syncs the
        // database file only when one does: flush the pages it copied here, so the writer's
        // truncation has next to nothing left to sync.
        if let Some(db) = &db_file
            && let Err(e) = db.sync_data()
        {
            tracing::warn!(cause = %e, "cannot sync the embedded state");
        }
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// A row's JSON column (these types always serialize).
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
