//! A webhook receiver that answers as the test says and records what arrived.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::Value;
use switchboard::config::Config;

use super::*;

/// What a webhook receiver does with the next request.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Fail,
    /// Never answer (the sender is stuck until its timeout or death).
    Hang,
    Ok,
}

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Hook {
    pub delivery: String,
    pub event: String,
    pub signature: String,
    pub body: String,
    /// The request's query string, if any.
    pub query: Option<String>,
}

impl Hook {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// The `v1=` values of `Switchboard-Signature`, in order.
    pub fn signatures(&self) -> Vec<&str> {
        self.signature
            .split(',')
            .filter_map(|p| p.strip_prefix("v1="))
            .collect()
    }

    /// Verifies `t=…,v1=…[,v1=…]` as a receiver would: one of the `v1=` is
    /// HMAC-SHA256(secret, "<t>.<body>").
    pub fn signed_with(&self, secret: &str) -> bool {
        use hmac::{KeyInit, Mac};
        let Some(t) = self.signature.split(',').find_map(|p| p.strip_prefix("t=")) else {
            return false;
        };
        self.signatures().into_iter().any(|v1| {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("{t}.{}", self.body).as_bytes());
            hex::decode(v1).is_ok_and(|sig| mac.verify_slice(&sig).is_ok())
        })
    }
}

/// A real HTTP webhook receiver on a free port, answering by a plan (then 200 for everything).
pub struct Receiver {
    pub url: String,
    hooks: tokio::sync::mpsc::UnboundedReceiver<Hook>,
    /// The answer once the plan is used up (200 unless changed).
    fallback: Arc<std::sync::Mutex<Answer>>,
}

pub const HOOK_SECRET: &str = "webhook-secret-0123456789";

impl Receiver {
    pub async fn start(plan: &[Answer]) -> Receiver {
        use axum::http::HeaderMap;
        let (tx, hooks) = tokio::sync::mpsc::unbounded_channel();
        let plan = Arc::new(std::sync::Mutex::new(
            plan.iter().copied().collect::<VecDeque<_>>(),
        ));
        let fallback = Arc::new(std::sync::Mutex::new(Answer::Ok));
        let handler_fallback = fallback.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |axum::extract::RawQuery(query): axum::extract::RawQuery,
                      headers: HeaderMap,
                      body: String| {
                    let tx = tx.clone();
                    let plan = plan.clone();
                    let fallback = handler_fallback.clone();
                    async move {
                        let h = |k: &str| {
                            headers
                                .get(k)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned()
                        };
                        let _ = tx.send(Hook {
                            delivery: h("switchboard-delivery"),
                            event: h("switchboard-event"),
                            signature: h("switchboard-signature"),
                            body,
                            query,
                        });
                        let next = plan.lock().unwrap().pop_front();
                        let answer = next.unwrap_or_else(|| *fallback.lock().unwrap());
                        match answer {
                            Answer::Ok => axum::http::StatusCode::OK,
                            Answer::Fail => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            Answer::Hang => std::future::pending().await,
                        }
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hook"),
            hooks,
            fallback,
        }
    }

    /// The next request, waiting at most `WAIT`.
    pub async fn next(&mut self) -> Hook {
        tokio::time::timeout(WAIT, self.hooks.recv())
            .await
            .expect("timed out waiting for a webhook")
            .expect("receiver running")
    }

    /// The next request of an event type (others are skipped).
    pub async fn next_event(&mut self, event: &str) -> Hook {
        loop {
            let h = self.next().await;
            if h.event == event {
                return h;
            }
        }
    }

    /// What to answer once the plan is used up.
    pub fn answer_from_now(&self, a: Answer) {
        *self.fallback.lock().unwrap() = a;
    }

    /// Collects one request of each listed event, in whatever order they come.
    pub async fn each(&mut self, events: &[&str]) -> std::collections::HashMap<String, Hook> {
        let mut got = std::collections::HashMap::new();
        while got.len() < events.len() {
            let h = self.next().await;
            if events.contains(&h.event.as_str()) {
                got.entry(h.event.clone()).or_insert(h);
            }
        }
        got
    }
}

/// Adds a webhook for `events` to the test site.
pub fn with_webhook(config: &mut Config, url: &str, events: &[&str]) {
    let toml = format!(
        "url = {url:?}\nsecret = {HOOK_SECRET:?}\nevents = {:?}\n",
        events
    );
    let hook: switchboard::directory::model::WebhookConfig = toml::from_str(&toml).unwrap();
    config.sites[0].webhooks.push(hook);
    config.timing.webhook_backoff_secs = 0.05;
    config.timing.webhook_max_backoff_secs = 0.2;
}
