//! Prometheus metrics: the recorder (`metrics` with its Prometheus exporter, the well-kept pair
//! whose macros cost an atomic add on the hot path), the names, and `GET /metrics`.
//!
//! What is counted where: connections by kind (`ws`), messages relayed (`engine::intake`,
//! `engine::agents`), events delivered to this node's sockets (`hub`), assignments
//! (`engine::routing`), queue size and oldest wait per department (the queue refresh, four
//! times a second per department at most), agents by status (the agents snapshot), queue wait,
//! first response and handling time of every ticket filed (`engine::lifecycle`), webhook
//! deliveries by outcome (`tickets::webhooks`), errors by code (`ws::session`, `http::error`).

use std::sync::OnceLock;

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
        handle
    })
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
    describe_gauge!(QUEUE_SIZE, "Conversations waiting, per department");
    describe_gauge!(
        QUEUE_OLDEST,
        "Wait of the oldest queued visitor, per department"
    );
    describe_gauge!(AGENTS, "Agents of the directory by status, as last read");
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

/// `GET /metrics`: the Prometheus text format.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}
