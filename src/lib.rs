//! Switchboard: a self-hosted live-chat backend.
//!
//! The modules, in the order a visitor's message travels through them:
//! - `server` — binds the listener, picks the state backend, starts the background duties,
//!   serves `http::router()` merged with `ws::router()`; `shutdown` is the signal every loop
//!   also waits for.
//! - `listener` — admits each TCP connection (caps in all and per address, a reserve that
//!   still answers health checks when full) and serves it with a header deadline.
//! - `notify` — systemd's readiness, reload, stopping and watchdog notifications.
//! - `config` — the server's settings: flags (`config::cli`), environment and TOML, each section
//!   validated with field names (`config::settings`); `demo` — the demo site, the fallback.
//! - `validation` — the field-naming error and the shapes of ids, addresses, language tags.
//! - `geo` — the country of a visitor's address (a trusted proxy's header, or a MaxMind
//!   database).
//! - `app` — the state every handler reaches (`AppState`) and the per-IP connection limit.
//! - `request` — what `http` and `ws` both read from a request: the client's address behind
//!   trusted proxies, TLS at the proxy, cookies, bearer tokens.
//! - `ws` — the WebSocket surfaces: upgrade checks (site, Origin, per-IP limit), `Connection`
//!   (frame and rate limits, heartbeats, close frames), `ws::session` (hello phase, serving
//!   loop, error frames, log pages), and the `ws::visitor` and `ws::agent` sessions.
//! - `protocol` — protocol v1 wire types, error and close codes, input newtypes, page bounds.
//! - `auth` — signed visitor tokens, identity hashes, agent tokens.
//! - `engine` — what each message, close, transfer and capacity change does: intake, routing,
//!   agents, lifecycle, presence, triggers, background loops. Shared by both backends.
//! - `templates` — automatic replies in English and Russian, overridable per site/department.
//! - `hours` — business hours per department, in its own time zone, with holidays.
//! - `routing` — each routing decision written once: `routing::decide`, a pure function over
//!   a snapshot of a department (which waiting chat next, to which agent), the queue's order,
//!   and `routing::policy` (priorities, skills and languages, the last agent) from the directory.
//! - `state` — the `Store` interface and its two backends, each a folder: `state::memory`
//!   (decisions in `memory::site`, on disk through `memory::journal`, so a restart resumes)
//!   and `state::redis` (keys, one typed call per Lua script, connections, the subscriber).
//! - `envelope` — what the backends hand over for delivery, and the `Sink` that takes it.
//! - `hub` — this node's sessions and their bounded queues: the `Sink` that fans envelopes out.
//! - `triggers` — proactive-message rules and this node's schedule of them.
//! - `tickets` — finished chats as tickets, and the webhook outbox and courier; `tickets::timed`
//!   times every record operation for the metrics.
//! - `directory` — sites, departments, agents and accounts: the model (`directory::model`),
//!   how it checks itself (`directory::validate`), and its rows in the database.
//! - `db` — the record database (SQLite or PostgreSQL), its migrations; `backup` — online
//!   copies of the SQLite files and their restore.
//! - `attachments` — files sent in chats, in the record database, their types read from their bytes.
//! - `email` — outgoing mail through a site's SMTP server (answers, copies of chats);
//!   `inbound` — visitors' email replies back into their ticket (reply addresses, MIME);
//!   `smtp` — the optional SMTP listener they arrive through.
//! - `push` — Web Push to agents' browsers (new chats while the console is closed): the
//!   subscriptions, the server's VAPID key, RFC 8291 encryption.
//! - `http` — REST (tickets, webhooks, supervisor figures, live visitors, privacy requests, the
//!   audit log), the widget's configuration, health; handlers take typed bodies and query
//!   parameters (`http::extract::Params`) and answer typed structs, from which `http::openapi`
//!   generates the OpenAPI document (a unit test keeps the served file equal to it); one
//!   `ApiError`.
//! - `model` — identifiers, conversations, stored events, agents, the clock.
//! - `observe` — Prometheus metrics: what is counted where, and `/metrics`.
//!
//! A visitor's message, file by file: `ws/mod.rs` (`visitor_upgrade`: site and Origin) →
//! `ws/session.rs` (the hello phase, then the serving loop reads the frame) → `ws/visitor.rs`
//! (`on_frame`: parsed into `protocol::VisitorIn`, the text into `MessageText`) →
//! `engine/intake.rs` (`visitor_message`: stored with `Store::append`; the first message is
//! answered at once by `route_new`: `engine/routing.rs` queues or assigns) →
//! `state/memory/mod.rs` or `state/redis/store.rs` (append and publish in one step) → `envelope.rs`
//! (`Sink::deliver`, on every node) → `hub.rs` (to the bounded queue of each session that
//! follows the conversation) → `ws/agent.rs` (`on_push`: in order by sequence number, gaps
//! backfilled from the log) → the agent's console.

pub mod app;
pub mod attachments;
pub mod auth;
pub mod backup;
pub mod config;
pub mod db;
pub mod demo;
pub mod directory;
pub mod email;
pub mod engine;
pub mod envelope;
pub mod geo;
pub mod hours;
pub mod http;
pub mod hub;
pub mod inbound;
pub mod listener;
pub mod model;
pub mod notify;
pub mod observe;
pub mod protocol;
pub mod push;
pub mod request;
pub mod routing;
pub mod server;
pub mod shutdown;
pub mod simulate;
pub mod smtp;
pub mod state;
pub mod templates;
pub mod tickets;
pub mod triggers;
pub mod validation;
pub mod ws;
