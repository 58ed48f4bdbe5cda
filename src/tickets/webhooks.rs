//! Webhook delivery: at-least-once from the outbox, signed, retried with exponential backoff and
//! jitter until the receiver answers 2xx or the delivery expires (then it is kept as dead).
//!
//! Each node runs one `Courier`. It claims due deliveries with a lease; a node that dies holding
//! some lets the lease lapse and another node takes them over. The delivery id never changes, so
//! receivers deduplicate by `Switchboard-Delivery`.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

use super::{Delivery, TicketStore};
use crate::config::Live;
use crate::directory::model::SiteConfig;
use crate::model::{Clock, Millis, Secret, now_ms};
use crate::shutdown::Shutdown;

/// Deliveries taken per claim; they are sent concurrently.
const CLAIM_BATCH: usize = 16;
/// How often the outbox is polled when nothing wakes the courier (retries, takeovers).
const POLL: Duration = Duration::from_millis(250);

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one `v1=` per secret in
/// force (the current one first, then the one being rotated out), as Stripe signs.
pub fn signature(secrets: &[&[u8]], t: i64, body: &str) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any size");
        mac.update(format!("{t}.{body}").as_bytes());
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac.finalize().into_bytes()));
    }
    header
}

/// The secrets a delivery is signed with at `now`: the webhook's, then the previous one while
/// its rotation lasts.
fn signing_secrets(w: &crate::directory::model::WebhookConfig, now: Millis) -> Vec<Secret> {
    let mut secrets = vec![w.secret.clone()];
    if let Some(previous) = &w.previous_secret
        && w.previous_secret_expires_at.is_none_or(|until| now < until)
    {
        secrets.push(previous.clone());
    }
    secrets
}

/// The body of every delivery, signed in `Switchboard-Signature`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = WebhookPayload)]
pub struct Payload<'a> {
    /// The delivery's id, the same across retries (`Switchboard-Delivery`): deduplicate by it
    pub id: &'a str,
    /// The event
    #[serde(rename = "type")]
    #[schema(schema_with = crate::directory::model::webhook_event_schema)]
    pub kind: &'a str,
    /// Unix milliseconds
    pub created_at: Millis,
    #[schema(value_type = String)]
    pub site: &'a crate::model::SiteId,
    /// `ticket.*`: the ticket; `conversation.*`: the conversation, its department and
    /// visitor (and the agent, the transfer or the close reason). docs/tickets.md lists them.
    #[schema(value_type = Object)]
    pub data: &'a serde_json::Value,
}

/// The deliveries of one event for every webhook of the site that subscribes to it.
pub fn deliveries_for(
    site: &SiteConfig,
    event: &str,
    data: &serde_json::Value,
    now: Millis,
) -> Vec<Delivery> {
    site.webhooks
        .iter()
        .filter(|w| w.events.iter().any(|e| e == event))
        .map(|w| {
            let id = ulid::Ulid::new().to_string();
            let body = serde_json::to_string(&Payload {
                id: &id,
                kind: event,
                created_at: now,
                site: &site.id,
                data,
            })
            .unwrap_or_default();
            Delivery {
                id,
                site: site.id.clone(),
                url: w.url.clone(),
                event: event.to_owned(),
                body,
                attempts: 0,
                created_at: now,
                next_at: now,
                expires_at: now + (w.retry_for_secs * 1000.0) as Millis,
                last_error: None,
                dead: false,
                visitor: data
                    .pointer("/visitor/id")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            }
        })
        .collect()
}

/// Sends deliveries from the outbox. Cheap to clone.
#[derive(Clone)]
pub struct Courier {
    tickets: Arc<dyn TicketStore>,
    /// Read per delivery: receivers and their secrets change at run time.
    config: Live,
    client: reqwest::Client,
    /// Wakes the courier when this node queued something, so delivery starts at once.
    wake: Arc<Notify>,
    /// The engine's clock, which schedules deliveries (`Delivery::next_at`): what is due is
    /// read on the same clock.
    clock: Arc<dyn Clock>,
}

impl Courier {
    pub fn new(tickets: Arc<dyn TicketStore>, config: Live, clock: Arc<dyn Clock>) -> Self {
        let timeout = config.get().timing.webhook_timeout_secs;
        let client = super::outbound::client(&config, Duration::from_secs_f64(timeout));
        Self {
            tickets,
            config,
            client,
            wake: Arc::new(Notify::new()),
            clock,
        }
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until shutdown. Attempts in flight at shutdown finish and record their outcome;
    /// one cut off anyway (the process killed) keeps its lease and is retried after it, here or
    /// on another node.
    pub async fn run(self, mut shutdown: Shutdown) {
        loop {
            let lease = (self.config.get().timing.delivery_lease_secs * 1000.0) as Millis;
            let now = self.clock.now_ms();
            match self.tickets.claim(now, now + lease, CLAIM_BATCH).await {
                Ok(batch) if !batch.is_empty() => {
                    let full = batch.len() == CLAIM_BATCH;
                    let sends =
                        futures_util::future::join_all(batch.into_iter().map(|d| self.attempt(d)));
                    tokio::pin!(sends);
                    tokio::select! {
                        _ = &mut sends => {}
                        _ = shutdown.recv() => {
                            // Attempts in flight finish (each within its request timeout), so
                            // their outcome is recorded; nothing new starts.
                            sends.await;
                            return;
                        }
                    }
                    if full {
                        continue;
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(cause = %e, "outbox claim failed"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.recv() => return,
            }
        }
    }

    async fn attempt(&self, d: Delivery) {
        let secret = self
            .config
            .get()
            .site(&d.site)
            .and_then(|s| s.webhooks.iter().find(|w| w.url == d.url))
            .map(|w| signing_secrets(w, now_ms()));
        let Some(secrets) = secret else {
            // The webhook was removed from the configuration: nothing to send it to.
            tracing::warn!(delivery = %d.id, url = %loggable(&d.url), "webhook no longer configured; dropping delivery");
            let _ = self.tickets.delivered(&d.id).await;
            return;
        };
        let allowed = self.config.get().webhook_allowed_networks.clone();
        if super::outbound::literal_refused(&d.url, &allowed) {
            self.failed(d, super::outbound::PrivateAddress.to_string())
                .await;
            return;
        }
        // The signature's time is the receiver's to check against its own clock: the wall's.
        let t = now_ms() / 1000;
        let result = self
            .client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("switchboard-delivery", &d.id)
            .header("switchboard-event", &d.event)
            .header(
                "switchboard-signature",
                signature(
                    &secrets.iter().map(|s| s.expose()).collect::<Vec<_>>(),
                    t,
                    &d.body,
                ),
            )
            .body(d.body.clone())
            .send()
            .await;
        // What the site admin sees says the status or that the address was refused, nothing
        // that would tell an open port from a closed one; the log keeps the cause.
        let error = match result {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
            Err(e) if super::outbound::is_refusal(&e) => {
                Some(super::outbound::PrivateAddress.to_string())
            }
            Err(e) => {
                // Without the URL: its query string may carry the receiver's key.
                tracing::info!(delivery = %d.id, cause = %e.without_url(), "webhook request failed");
                Some("request failed".to_owned())
            }
        };
        match error {
            None => {
                metrics::counter!(crate::observe::WEBHOOKS, "outcome" => "delivered").increment(1);
                tracing::debug!(delivery = %d.id, event = %d.event, "webhook delivered");
                if let Err(e) = self.tickets.delivered(&d.id).await {
                    tracing::warn!(cause = %e, delivery = %d.id, "could not record delivery outcome");
                }
            }
            Some(err) => self.failed(d, err).await,
        }
    }

    /// Records a failed attempt: retried with backoff, or dead past its retry window.
    async fn failed(&self, mut d: Delivery, err: String) {
        d.attempts += 1;
        d.next_at = self.clock.now_ms() + self.backoff(d.attempts);
        d.last_error = Some(err.clone());
        d.dead = d.next_at > d.expires_at;
        let outcome = if d.dead { "dead" } else { "failed" };
        metrics::counter!(crate::observe::WEBHOOKS, "outcome" => outcome).increment(1);
        if d.dead {
            tracing::warn!(delivery = %d.id, url = %loggable(&d.url), cause = %err, attempts = d.attempts, "webhook delivery gave up; kept as dead");
        } else {
            tracing::info!(delivery = %d.id, url = %loggable(&d.url), cause = %err, attempts = d.attempts, "webhook delivery failed; will retry");
        }
        if let Err(e) = self.tickets.reschedule(&d).await {
            // The lease runs out and the delivery is retried: at-least-once holds.
            tracing::warn!(cause = %e, delivery = %d.id, "could not record delivery outcome");
        }
    }

    /// Exponential backoff with ±20 % jitter, capped.
    fn backoff(&self, attempts: u32) -> Millis {
        let config = self.config.get();
        let t = &config.timing;
        let base = t.webhook_backoff_secs * 2f64.powi(attempts.saturating_sub(1).min(30) as i32);
        let capped = base.min(t.webhook_max_backoff_secs);
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        (capped * jitter * 1000.0) as Millis
    }
}

/// A webhook URL fit for logs: scheme, host, port and path; never credentials or the query
/// string, where receivers' keys often travel.
pub fn loggable(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => String::from("(unparsable URL)"),
    }
}

/// A webhook URL as REST reads show it: a password in it and every query value replaced by
/// `***` (receivers' keys often travel there), the rest as written so the admin recognises
/// it. A URL without either is shown unchanged; one that does not parse keeps only its scheme
/// (`https://***`, still the shape the document promises).
pub fn masked(url: &str) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else {
        let scheme = ["https://", "http://"]
            .into_iter()
            .find(|s| url.starts_with(s));
        return format!("{}***", scheme.unwrap_or_default());
    };
    if u.password().is_none() && u.query().is_none() {
        return url.to_owned();
    }
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query().is_some() {
        let names: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let mut q = u.query_pairs_mut();
        q.clear();
        for name in &names {
            q.append_pair(name, "***");
        }
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads hide a URL's password and query values, and leave a plain URL as written.
    #[test]
    fn masked_urls() {
        assert_eq!(
            masked("https://user:pw@hooks.example:8443/in/x?api_key=secret&v=2#f"),
            "https://user:***@hooks.example:8443/in/x?api_key=***&v=***#f"
        );
        assert_eq!(
            masked("https://hooks.example/in?token=abc"),
            "https://hooks.example/in?token=***"
        );
        assert_eq!(masked("https://hooks.example"), "https://hooks.example");
        assert_eq!(masked("not a url"), "***");
        assert_eq!(masked("http://\u{fb}\u{9c}"), "http://***");
    }

    /// The signature is HMAC-SHA256 over "<t>.<body>", as documented for receivers, one
    /// `v1=` per secret in force, the current one first; the expected values were computed
    /// with Python's hmac module.
    #[test]
    fn signature_format() {
        const CURRENT: &str = "b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163";
        const PREVIOUS: &str = "f8c6f59ee2ec1372beccd4c3f181539af9d0f0e1207f48dfbebd2bcc9ebbc227";
        assert_eq!(
            signature(&[b"secret"], 1_700_000_000, "{}"),
            format!("t=1700000000,v1={CURRENT}")
        );
        assert_eq!(
            signature(&[b"secret", b"previous-secret"], 1_700_000_000, "{}"),
            format!("t=1700000000,v1={CURRENT},v1={PREVIOUS}")
        );
    }

    /// The previous secret signs until it expires, and not after.
    #[test]
    fn a_rotation_ends_when_it_expires() {
        let mut w: crate::directory::model::WebhookConfig =
            serde_json::from_value(serde_json::json!({
                "url": "https://hooks.example/in",
                "secret": "current-secret-0123",
                "previous_secret": "previous-secret-0123",
                "previous_secret_expires_at": 2_000,
            }))
            .unwrap();
        assert_eq!(signing_secrets(&w, 1_999).len(), 2);
        assert_eq!(signing_secrets(&w, 2_000).len(), 1);
        w.previous_secret_expires_at = None;
        assert_eq!(signing_secrets(&w, 1_000_000).len(), 2);
        w.previous_secret = None;
        assert_eq!(signing_secrets(&w, 0).len(), 1);
    }

    /// Keys in a receiver's URL never reach a log line.
    #[test]
    fn urls_in_logs() {
        assert_eq!(
            loggable("https://user:pw@hooks.example:8443/in/x?api_key=secret#f"),
            "https://hooks.example:8443/in/x"
        );
        assert_eq!(loggable("not a url"), "(unparsable URL)");
    }
}
