//! The import of what earlier versions kept in Redis: tickets (`<prefix>:{<site>}:t:<id>`,
//! indexed by `<prefix>:{<site>}:tickets`) and the webhook outbox (`<prefix>:{outbox}:d:<id>`,
//! indexed by `…:due` and `…:dead`). Redis now holds live state only; on start a node copies
//! these into the record database and renames the indexes `…:imported`, so the next start finds
//! nothing left to do. The documents stay until an operator deletes them (operations.md).

use crate::state::redis::Conn;
use redis::AsyncCommands;

use super::{Delivery, Ticket, TicketStore};
use crate::db::RecordError;
use crate::model::SiteId;

/// How many documents one round trip reads.
const BATCH: usize = 500;

/// Copies one index's documents into the database with `save`, then renames the index.
async fn import_index<T, F, Fut>(
    conn: &mut Conn,
    index: &str,
    key_of: impl Fn(&str) -> String,
    mut save: F,
) -> Result<usize, RecordError>
where
    T: serde::de::DeserializeOwned,
    F: FnMut(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<(), RecordError>>,
{
    let ids: Vec<String> = conn.zrange(index, 0, -1).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    for chunk in ids.chunks(BATCH) {
        let keys: Vec<String> = chunk.iter().map(|id| key_of(id)).collect();
        let docs: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(conn).await?;
        let mut records = Vec::new();
        for doc in docs.into_iter().flatten() {
            match serde_json::from_str(&doc) {
                Ok(r) => records.push(r),
                Err(e) => tracing::warn!(cause = %e, index, "skipping an unreadable record"),
            }
        }
        save(records).await?;
    }
    let _: () = conn.rename(index, format!("{index}:imported")).await?;
    Ok(ids.len())
}

/// Imports every site's tickets and the outbox from Redis, once.
pub async fn import(
    mut conn: Conn,
    prefix: &str,
    sites: &[SiteId],
    store: &dyn TicketStore,
) -> Result<(), RecordError> {
    for site in sites {
        let key = |rest: &str| format!("{prefix}:{{{site}}}:{rest}");
        let save = |tickets: Vec<Ticket>| async move {
            for t in &tickets {
                store.save(t, &[]).await?;
            }
            Ok(())
        };
        let tickets = key("tickets");
        let count = import_index(&mut conn, &tickets, |id| key(&format!("t:{id}")), save).await?;
        if count > 0 {
            tracing::info!(count, site = %site, "imported tickets from Redis");
        }
    }
    let outbox = |rest: &str| format!("{prefix}:{{outbox}}:{rest}");
    for index in ["due", "dead"] {
        let count = import_index(
            &mut conn,
            &outbox(index),
            |id| outbox(&format!("d:{id}")),
            |deliveries: Vec<Delivery>| async move { store.enqueue(&deliveries).await },
        )
        .await?;
        if count > 0 {
            tracing::info!(count, index, "imported webhook deliveries from Redis");
        }
    }
    Ok(())
}
