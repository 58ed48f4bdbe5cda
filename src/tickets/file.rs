//! Tickets and outbox in the data directory (embedded mode): one JSON file per ticket
//! (`tickets/<id>.json`) and per pending delivery (`outbox/<id>.json`), each written to a
//! temporary file, fsynced and renamed into place (then the directory fsynced), so a crash leaves
//! either the old or the new version, never half of one. Everything is also kept in memory for
//! listing; the files are read once at start-up.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Delivery, Result, Ticket, TicketFilter, TicketStore};
use crate::model::{Millis, SiteId};
use crate::state::StoreError;

pub struct FileTickets {
    tickets_dir: PathBuf,
    outbox_dir: PathBuf,
    /// A std Mutex: held only for map updates, never across an await or file I/O.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tickets: BTreeMap<String, Ticket>,
    outbox: BTreeMap<String, Delivery>,
    /// Deliveries in flight on this process, hidden until the instant given.
    leased: HashMap<String, Millis>,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Corrupt(format!("{what} {}: {e}", path.display()))
}

/// Writes a file so that it is either wholly there or not at all, and survives power loss.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

fn load<T: serde::de::DeserializeOwned>(dir: &Path) -> std::result::Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io_err("cannot read", dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| io_err("cannot read", dir, e))?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| io_err("cannot read", &path, e))?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => out.push(v),
            Err(e) => {
                tracing::error!(cause = %e, path = %path.display(), "skipping unreadable file")
            }
        }
    }
    Ok(out)
}

impl FileTickets {
    /// Opens (creating) `<data_dir>/tickets` and `<data_dir>/outbox` and loads what is there.
    pub fn open(data_dir: &Path) -> std::result::Result<Self, StoreError> {
        let tickets_dir = data_dir.join("tickets");
        let outbox_dir = data_dir.join("outbox");
        for d in [&tickets_dir, &outbox_dir] {
            std::fs::create_dir_all(d).map_err(|e| io_err("cannot create", d, e))?;
        }
        let mut state = State::default();
        for t in load::<Ticket>(&tickets_dir)? {
            state.tickets.insert(t.id.clone(), t);
        }
        for d in load::<Delivery>(&outbox_dir)? {
            state.outbox.insert(d.id.clone(), d);
        }
        tracing::info!(
            tickets = state.tickets.len(),
            deliveries = state.outbox.len(),
            dir = %data_dir.display(),
            "ticket store opened"
        );
        Ok(Self {
            tickets_dir,
            outbox_dir,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn write(&self, dir: PathBuf, name: String, bytes: Vec<u8>) -> Result<()> {
        tokio::task::spawn_blocking(move || {
            write_durably(&dir, &name, &bytes)
                .map_err(|e| io_err("cannot write", &dir.join(&name), e))
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("write task failed: {e}")))?
    }

    async fn write_deliveries(&self, deliveries: &[Delivery]) -> Result<()> {
        for d in deliveries {
            let bytes = serde_json::to_vec(d).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            self.write(self.outbox_dir.clone(), format!("{}.json", d.id), bytes)
                .await?;
        }
        let mut s = self.lock();
        for d in deliveries {
            s.outbox.insert(d.id.clone(), d.clone());
        }
        Ok(())
    }
}

#[async_trait]
impl TicketStore for FileTickets {
    async fn save(&self, ticket: &Ticket, deliveries: &[Delivery]) -> Result<()> {
        let bytes = serde_json::to_vec(ticket).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The deliveries first: they carry the ticket, so nothing announced is ever lost.
        self.write_deliveries(deliveries).await?;
        self.write(
            self.tickets_dir.clone(),
            format!("{}.json", ticket.id),
            bytes,
        )
        .await?;
        self.lock()
            .tickets
            .insert(ticket.id.clone(), ticket.clone());
        Ok(())
    }

    async fn get(&self, site: &SiteId, id: &str) -> Result<Option<Ticket>> {
        Ok(self
            .lock()
            .tickets
            .get(id)
            .filter(|t| &t.site == site)
            .cloned())
    }

    async fn list(&self, site: &SiteId, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        let s = self.lock();
        let upper = filter.cursor.clone();
        Ok(s.tickets
            .iter()
            .rev()
            .filter(|(id, _)| upper.as_ref().is_none_or(|c| *id < c))
            .map(|(_, t)| t)
            .filter(|t| &t.site == site && filter.matches(t))
            .take(filter.limit)
            .cloned()
            .collect())
    }

    async fn enqueue(&self, deliveries: &[Delivery]) -> Result<()> {
        self.write_deliveries(deliveries).await
    }

    async fn claim(&self, now: Millis, lease_until: Millis, max: usize) -> Result<Vec<Delivery>> {
        let mut s = self.lock();
        let State { outbox, leased, .. } = &mut *s;
        let due: Vec<Delivery> = outbox
            .values()
            .filter(|d| !d.dead && d.next_at <= now)
            .filter(|d| leased.get(&d.id).is_none_or(|&until| until <= now))
            .take(max)
            .cloned()
            .collect();
        for d in &due {
            leased.insert(d.id.clone(), lease_until);
        }
        Ok(due)
    }

    async fn delivered(&self, id: &str) -> Result<()> {
        let path = self.outbox_dir.join(format!("{id}.json"));
        tokio::task::spawn_blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("cannot remove", &path, e)),
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("remove task failed: {e}")))??;
        let mut s = self.lock();
        s.outbox.remove(id);
        s.leased.remove(id);
        Ok(())
    }

    async fn reschedule(&self, delivery: &Delivery) -> Result<()> {
        self.write_deliveries(std::slice::from_ref(delivery))
            .await?;
        self.lock().leased.remove(&delivery.id);
        Ok(())
    }

    async fn dead(&self, site: &SiteId) -> Result<Vec<Delivery>> {
        Ok(self
            .lock()
            .outbox
            .values()
            .filter(|d| d.dead && &d.site == site)
            .cloned()
            .collect())
    }

    async fn revive(&self, id: &str, now: Millis, expires_at: Millis) -> Result<bool> {
        let Some(mut d) = self.lock().outbox.get(id).filter(|d| d.dead).cloned() else {
            return Ok(false);
        };
        d.dead = false;
        d.next_at = now;
        d.expires_at = expires_at;
        self.reschedule(&d).await?;
        Ok(true)
    }
}
