//! Switchboard: a self-hosted live-chat backend.
//!
//! A map of the architecture, in the order a visitor's message travels:
//! - `config` — flags, environment and TOML, validated with field names; the demo site.
//! - `server` — binds, picks the state backend, starts background duties, serves.
//! - `http` — routes and the HTTP error type; `http::health` for `/healthz` and `/readyz`.
//! - `ws` — the WebSocket surfaces: upgrade checks (site, Origin, per-IP limit), `Connection`
//!   (frame and rate limits, heartbeats), `ws::visitor` and `ws::agent` sessions.
//! - `protocol` — protocol v1 wire types, error and close codes, input newtypes.
//! - `auth` — signed visitor tokens, hashed agent tokens.
//! - `engine` — what happens on each message, close, transfer and capacity change: routing,
//!   acknowledgements, queue drains, grace expiry. Shared by both backends.
//! - `state` — the `Store` interface and its two backends, `state::memory` and `state::redis`.
//! - `hub` — this node's sessions and their bounded queues; fan-out of stored events.
//! - `model` — identifiers, conversations, stored events, agents.
//! - `triggers` — proactive-message rules and this node's schedule of them.
//! - `templates` — automatic replies in English and Russian, overridable per site/department.
//! - `shutdown` — the graceful-shutdown signal every loop listens to.

pub mod app;
pub mod auth;
pub mod config;
pub mod engine;
pub mod envelope;
pub mod hours;
pub mod http;
pub mod hub;
pub mod model;
pub mod protocol;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod templates;
pub mod tickets;
pub mod triggers;
pub mod ws;
