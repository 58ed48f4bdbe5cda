//! Prometheus metrics: the recorder (`metrics` with its Prometheus exporter, the well-kept pair
//! whose macros cost an atomic add on the hot path), the names, and `GET /metrics`.
//!
//! What is counted where: connections by kind (`ws`), messages relayed (`engine::intake`,
//! `engine::agents`), events delivered to this node's sockets (`hub`), assignments
//! (`engine::routing`), queue size and oldest wait per department (the queue refresh, four
//! times a second per department at most), agents by status (the agents snapshot), queue wait,
//! first response and handling time of every ticket filed (`engine::lifecycle`), webhook
//! deliveries by outcome (`tickets::webhooks`), errors by code (`ws::session`, `http::error`).
//!
//! Two kinds of figures, and a fleet adds them up differently:
//! - **per node** (connections, messages relayed, events delivered, errors, round trips,
//!   readiness, process figures): each node counts its own; `sum` over nodes.
//! - **site-wide** (agents by status, agents available, queue size and oldest wait, the webhook
//!   outbox): read from the shared state or database, so every node reports the same value;
//!   `max` over nodes. They are kept in the engine's `SiteFigures`, not in the recorder, so a deleted site's
//!   series go away (the recorder never forgets one), and each site's and department's are
//!   written at zero when it appears.
//!
//! Counters with a fixed set of labels (outcomes, statuses) start at zero, so `increase()` sees
//! the first event after a restart.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const CONNECTIONS: &str = "switchboard_connections";
pub const MESSAGES: &str = "switchboard_messages_total";
pub const ATTACHMENTS: &str = "switchboard_attachments_total";
pub const EVENTS: &str = "switchboard_events_delivered_total";
pub const ASSIGNMENTS: &str = "switchboard_assignments_total";
pub const ROUTING_CONFLICTS: &str = "switchboard_routing_conflicts_total";
pub const QUEUE_SIZE: &str = "switchboard_queue_size";
pub const QUEUE_OLDEST: &str = "switchboard_queue_oldest_wait_seconds";
pub const AGENTS: &str = "switchboard_agents";
pub const QUEUE_WAIT: &str = "switchboard_queue_wait_seconds";
pub const FIRST_RESPONSE: &str = "switchboard_first_response_seconds";
pub const HANDLING: &str = "switchboard_handling_seconds";
pub const TICKETS: &str = "switchboard_tickets_total";
pub const WEBHOOKS: &str = "switchboard_webhook_deliveries_total";
pub const ERRORS: &str = "switchboard_errors_total";
pub const REDIS_SECONDS: &str = "switchboard_redis_seconds";
pub const DB_SECONDS: &str = "switchboard_db_seconds";
pub const CONNECTIONS_REFUSED: &str = "switchboard_connections_refused_total";
pub const HTTP_CONNECTIONS: &str = "switchboard_http_connections";
pub const REQUEST_TIMEOUTS: &str = "switchboard_request_timeouts_total";
pub const MAIL: &str = "switchboard_mail_total";
pub const PUSHES: &str = "switchboard_push_total";
pub const ESTIMATE_ERROR: &str = "switchboard_wait_estimate_error_ratio";
pub const ESTIMATES: &str = "switchboard_wait_estimates_total";
pub const OVERFLOWS: &str = "switchboard_overflows_total";
pub const SLA_BREACHES: &str = "switchboard_sla_breaches_total";
pub const MISSED: &str = "switchboard_missed_chats_total";
pub const AGENTS_AVAILABLE: &str = "switchboard_agents_available";
pub const OUTBOX_PENDING: &str = "switchboard_outbox_pending";
pub const OUTBOX_DEAD: &str = "switchboard_outbox_dead";
pub const READY: &str = "switchboard_ready";
pub const BUILD_INFO: &str = "switchboard_build_info";
pub const HTTP_SECONDS: &str = "switchboard_http_request_duration_seconds";

/// Buckets of the wait estimate's relative error (|estimate − real| ÷ real).
const RATIO_BUCKETS: &[f64] = &[0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0];

/// Buckets of the time histograms, in seconds: from a quick answer to an hour's chat.
const TIME_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Buckets of the backend call latencies, in seconds: from a loopback round trip to a stall.
const LATENCY_BUCKETS: &[f64] = &[
    0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use (every `Application` of a process shares it,
/// as the `metrics` macros do).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REDIS_SECONDS.into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(DB_SECONDS.into()), LATENCY_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(HTTP_SECONDS.into()), LATENCY_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), TIME_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(ESTIMATE_ERROR.into()), RATIO_BUCKETS)
            })
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics stays empty");
        }
        describe();
        zero();
        handle
    })
}

/// Process figures (CPU, memory, descriptors, threads, start time), read at each scrape.
fn process() -> &'static metrics_process::Collector {
    static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();
    PROCESS.get_or_init(|| {
        let c = metrics_process::Collector::default();
        c.describe();
        c
    })
}

/// The fixed label sets, at zero; `switchboard_build_info` at one.
fn zero() {
    use metrics::{counter, gauge};
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for outcome in ["delivered", "failed", "dead"] {
        counter!(WEBHOOKS, "outcome" => outcome).absolute(0);
    }
    for author in ["visitor", "agent"] {
        counter!(MESSAGES, "author" => author).absolute(0);
    }
    for kind in ["visitor", "agent"] {
        gauge!(CONNECTIONS, "kind" => kind).increment(0.0);
    }
    counter!(ERRORS, "code" => "unavailable").absolute(0);
    counter!(EVENTS).absolute(0);
    counter!(ASSIGNMENTS).absolute(0);
}

/// A series: the metric's name and its labels.
type Series = (&'static str, Vec<(&'static str, String)>);

/// The node's site-wide gauges, for the sites in its directory only, and its readiness (one
/// per `Engine`: tests run several in one process).
#[derive(Default)]
pub struct SiteFigures(Mutex<BTreeMap<Series, f64>>);

impl SiteFigures {
    /// Sets a gauge; `labels` start with `site`.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        );
        if let Ok(mut figures) = self.0.lock() {
            figures.insert(key, value);
        }
    }

    /// Sets a gauge to zero unless it has a value.
    pub fn zero(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        );
        if let Ok(mut figures) = self.0.lock() {
            figures.entry(key).or_insert(0.0);
        }
    }

    /// Forgets every series of a site or department that `keep` refuses.
    pub fn retain(&self, keep: impl Fn(&str, Option<&str>) -> bool) {
        if let Ok(mut figures) = self.0.lock() {
            figures.retain(|(_, labels), _| {
                let get = |k: &str| {
                    labels
                        .iter()
                        .find(|(n, _)| *n == k)
                        .map(|(_, v)| v.as_str())
                };
                get("site").is_none_or(|site| keep(site, get("department")))
            });
        }
    }

    /// The figures in the Prometheus text format.
    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let Ok(figures) = self.0.lock() else {
            return;
        };
        let mut current = "";
        for ((name, labels), value) in figures.iter() {
            if *name != current {
                current = name;
                let _ = writeln!(out, "# HELP {name} {}", site_help(name));
                let _ = writeln!(out, "# TYPE {name} gauge");
            }
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| {
                    let v = v
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    format!("{k}=\"{v}\"")
                })
                .collect();
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
            }
        }
    }
}

fn site_help(name: &str) -> &'static str {
    match name {
        AGENTS => {
            "Agents of the site by status, present ones only (an agent whose consoles are all closed past the grace is offline); site-wide: max over nodes"
        }
        AGENTS_AVAILABLE => {
            "Agents present, online and with a free slot, per department; site-wide: max over nodes"
        }
        QUEUE_SIZE => "Conversations waiting, per department; site-wide: max over nodes",
        QUEUE_OLDEST => {
            "Wait of the oldest queued visitor, per department; site-wide: max over nodes"
        }
        OUTBOX_PENDING => {
            "Webhook deliveries waiting to be sent or retried, in the record database; fleet-wide: max over nodes"
        }
        READY => {
            "1 while this node's /readyz says ready, 0 otherwise; per node: sum over nodes for how many are ready"
        }
        OUTBOX_DEAD => {
            "Webhook deliveries that gave up (dead letters), in the record database; fleet-wide: max over nodes"
        }
        _ => "",
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        CONNECTIONS,
        "Open WebSocket connections on this node, by kind"
    );
    describe_counter!(
        MESSAGES,
        "Chat messages stored through this node, by author"
    );
    describe_counter!(ATTACHMENTS, "Files sent in chats through this node");
    describe_counter!(EVENTS, "Stored events this node delivered to its sockets");
    describe_counter!(ASSIGNMENTS, "Conversations this node assigned to an agent");
    describe_counter!(
        SLA_BREACHES,
        "Chats past their department's sla_wait_secs (target=wait) or, unanswered, its sla_first_response_secs (target=first_response)"
    );
    describe_counter!(
        OVERFLOWS,
        "Chats that waited their department's max_wait_secs: moved to the next department, or to the offline form"
    );
    describe_counter!(
        MISSED,
        "Chats taken back from an agent who declined an offer, let it time out or did not answer in first_reply_secs, per agent and reason"
    );
    describe_histogram!(
        ESTIMATE_ERROR,
        "Per assigned chat filed: |estimated wait − real wait| ÷ real wait"
    );
    describe_counter!(
        ESTIMATES,
        "Assigned chats filed whose visitor was given a wait estimate, by whether the real wait fell in its range"
    );
    describe_counter!(
        ROUTING_CONFLICTS,
        "Routing decisions refused because another node changed what they read (Redis); decided again"
    );
    describe_histogram!(
        QUEUE_WAIT,
        "Queue wait of each conversation filed as a ticket"
    );
    describe_histogram!(FIRST_RESPONSE, "First response time of each ticket filed");
    describe_histogram!(HANDLING, "Handling time of each ticket filed");
    describe_histogram!(
        REDIS_SECONDS,
        "Round trips to Redis (a command, script or pipeline) of this node"
    );
    describe_histogram!(
        DB_SECONDS,
        "Record database operations of this node, by operation"
    );
    describe_counter!(
        TICKETS,
        "Tickets filed, by status (resolved, missed, offline)"
    );
    describe_counter!(
        WEBHOOKS,
        "Webhook delivery attempts by outcome (delivered, failed, dead)"
    );
    describe_counter!(ERRORS, "Errors answered to clients, by stable code");
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the release this node runs, as the version label"
    );
    describe_histogram!(
        HTTP_SECONDS,
        "REST and page requests of this node, by method, route template and status"
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "TCP connections refused at accept, by reason (per_address, full)"
    );
    describe_gauge!(
        HTTP_CONNECTIONS,
        "Open TCP connections on this node (HTTP and upgraded WebSocket)"
    );
    describe_counter!(
        REQUEST_TIMEOUTS,
        "Requests whose body or answer missed limits.body_timeout_secs"
    );
    describe_counter!(
        MAIL,
        "Mail asked of a site's SMTP server, by kind and outcome (sent, limited, failed)"
    );
    describe_counter!(
        PUSHES,
        "Web Push notes to agents' browsers, by outcome (sent, gone, failed, dropped)"
    );
}

/// `GET /metrics`: the Prometheus text format, the node's site-wide figures last.
pub fn render(sites: &SiteFigures) -> String {
    let handle = handle();
    process().collect();
    handle.run_upkeep();
    let mut out = handle.render();
    sites.render(&mut out);
    out
}
