//! Configuration: command-line flags (each also an environment variable) over a TOML file over
//! built-in defaults. Without `--config` the binary runs a demo site so `cargo run` just works.
//!
//! `clap` gives flags with env fallbacks and help for free; `toml` + serde with
//! `deny_unknown_fields` reports a misspelled or mistyped field by name. Validation after parsing
//! names the offending field too (`sites[0].agents[1].max_concurrent: …`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{AgentId, DeptId, SiteId};

/// Command-line interface. Every flag can also come from the environment.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Self-hosted live-chat backend",
    after_help = "Environment: SWITCHBOARD_SECRET signs visitor tokens (all nodes need the same one; \
without it a random one is made at start-up). RUST_LOG sets the log level (default info; \
e.g. RUST_LOG=switchboard=debug). Logs go to stderr."
)]
pub struct Cli {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file; without it a demo site is configured
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Redis URL (redis://, rediss://, redis+sentinel://…/name, redis+cluster://h1:p1,h2:p2):
    /// switches state to Redis so several nodes can share it
    #[arg(long, env = "SWITCHBOARD_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Directory for durable data in embedded mode [default: ./data]
    #[arg(long, env = "SWITCHBOARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log lines as `text` (for people) or `json` (one object a line, for collectors)
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Record database (tickets, webhook outbox): sqlite://FILE or postgres://…
    /// [default: sqlite://<data-dir>/switchboard.db]
    #[arg(long, env = "SWITCHBOARD_DATABASE_URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do instead of serving.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Apply the record database's migrations, then exit (serving applies them too)
    Migrate,
    /// Upsert the directory (sites with their departments, agents, canned responses,
    /// triggers, webhooks) from a TOML file into the database, then exit. Running nodes pick
    /// it up within a second.
    Import {
        /// A configuration file; only its `[[sites]]` are read
        file: PathBuf,
    },
}

/// A secret that never shows in logs or debug output. It serializes whole, for the database
/// only: REST views of the directory leave secrets out.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The whole configuration, validated.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Reverse proxies (an address, or a network such as `10.0.0.0/8`) whose
    /// `X-Forwarded-For` is believed: behind them the client is the last address they did not
    /// add, so limits per IP, sign-in throttling and logs see visitors, not the proxy.
    #[serde(default)]
    pub trusted_proxies: Vec<Network>,
    /// Networks webhooks may reach although they are loopback, private or link-local
    /// (`tickets::outbound`); empty by default: a site admin's URL never reaches the
    /// deployment's own network.
    #[serde(default)]
    pub webhook_allowed_networks: Vec<Network>,
    /// Serve `/metrics` on this address only (a port the load balancer does not expose);
    /// without it, `/metrics` is on the main address. `/healthz` and `/readyz` are served
    /// here too, outside the connection caps of the main address.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// For `rediss://`: the PEM certificate of the authority that signed the Redis server's
    /// certificate. Without it the system's trusted roots are used.
    #[serde(default)]
    pub redis_ca_file: Option<PathBuf>,
    /// The record database; `sqlite://<data_dir>/switchboard.db` without it. Several nodes
    /// share one PostgreSQL.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Prefix of every Redis key and channel, so several deployments can share one Redis.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// Signs visitor tokens. All nodes sharing a Redis need the same one.
    /// Env `SWITCHBOARD_SECRET` overrides it; without either a random one is made at start-up.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Hex SHA-256 of the admin bearer token for the REST API (tickets, webhooks).
    #[serde(default)]
    pub admin_token_sha256: Option<String>,
    /// What a committed record survives on SQLite: `process` (a crash of the process; the
    /// default) or `power` (a power loss too, at an fsync per commit).
    #[serde(default)]
    pub durability: crate::db::Durability,
    /// Tickets closed more than this many days ago are deleted (checked hourly). None: kept.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Visitor records (profile, triggers fired) unseen for this many days are deleted
    /// (checked hourly). Their tickets follow `retention_days`.
    #[serde(default = "default_visitor_retention_days")]
    pub visitor_retention_days: u32,
    /// Log filter, e.g. `info` or `switchboard=debug,info` (`RUST_LOG` overrides it).
    /// SIGHUP applies a changed one.
    #[serde(default = "default_log")]
    pub log: String,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub timing: Timing,
    #[serde(default)]
    pub attachments: Attachments,
    /// Seeds an empty directory; from then on the directory lives in the database.
    pub sites: Vec<SiteConfig>,
}

/// An IP network: an address and how many leading bits of it count (`10.0.0.0/8`; a bare
/// address is the network of that address alone).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct Network {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl TryFrom<String> for Network {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("{s}: expected an IP address or network (10.0.0.0/8, fd00::/8)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s.as_str(), None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return Err(bad());
        }
        Ok(Self {
            addr: addr.to_canonical(),
            prefix,
        })
    }
}

impl Network {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        match (self.addr, ip.to_canonical()) {
            (V4(net), V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (V6(net), V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn default_log() -> String {
    "info".into()
}

/// Limits on what one client may send and hold.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Frames above this get an `frame_too_large` error; the connection stays.
    pub max_frame_bytes: usize,
    /// Frames above this are refused by the transport (close 1009): nobody buffers them.
    pub hard_frame_bytes: usize,
    /// Longest message text, in characters.
    pub max_message_chars: usize,
    /// Sustained frames per second per connection.
    pub messages_per_second: f64,
    /// Frames a connection may send at once before the rate applies.
    pub message_burst: f64,
    /// Open connections per client IP (0: no limit): TCP connections per peer address (a
    /// trusted proxy's are not counted here), and WebSocket sessions per client address (the
    /// one a trusted proxy forwards). Over it: 429 `too_many_connections`.
    pub connections_per_ip: usize,
    /// Open connections in all (HTTP and WebSocket). Over it, a small reserve of connections
    /// still answers `/healthz` and `/readyz`; everything else gets 503 `too_many_connections`.
    /// Lowered at start to fit the process's descriptor limit.
    pub max_connections: usize,
    /// A request's headers (and an idle keep-alive connection's next request) must arrive
    /// within this; otherwise the connection is closed.
    pub header_timeout_secs: f64,
    /// A request's body must arrive, and its answer be ready, within this (408
    /// `request_timeout`). File uploads have a deadline by size instead: their bytes must
    /// arrive at 16 KiB/s or more after the first 10 s.
    pub body_timeout_secs: f64,
    /// Messages and files one visitor stores per minute, across sockets and nodes; the same
    /// again per conversation (0: no limit). Over it: `rate_limited`, nothing stored.
    pub visitor_messages_per_minute: u32,
    /// Visitors first seen from one address per hour (a `hello` without a token); over it:
    /// `rate_limited`, and no visitor record is made (0: no limit).
    pub new_visitors_per_ip_per_hour: u32,
    /// Copies of a chat by email per hour: per visitor, per client address, per site.
    pub mail_per_visitor_per_hour: u32,
    pub mail_per_ip_per_hour: u32,
    pub mail_per_site_per_hour: u32,
    /// Outgoing messages buffered per connection; a client that falls this far behind is closed.
    pub send_queue: usize,
    /// Kernel-facing WebSocket read buffer per connection, in bytes.
    pub ws_read_buffer: usize,
    /// WebSocket write buffer per connection, in bytes.
    pub ws_write_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 * 1024,
            hard_frame_bytes: 64 * 1024,
            max_message_chars: 4000,
            messages_per_second: 10.0,
            message_burst: 20.0,
            connections_per_ip: 256,
            max_connections: 20_000,
            header_timeout_secs: 10.0,
            body_timeout_secs: 30.0,
            visitor_messages_per_minute: 60,
            new_visitors_per_ip_per_hour: 300,
            mail_per_visitor_per_hour: 3,
            mail_per_ip_per_hour: 10,
            mail_per_site_per_hour: 200,
            send_queue: 256,
            // Chat frames are small; larger ones still arrive (the buffer grows for them).
            ws_read_buffer: 512,
            ws_write_buffer: 1024,
        }
    }
}

/// Files sent in chats: which kinds, how large. The kind is read from the file's first bytes;
/// only these can be allowed, and none of them can run script when opened (no HTML or SVG).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Attachments {
    /// Largest file, in bytes (0: no files at all).
    pub max_bytes: usize,
    /// Allowed types, of `image/png`, `image/jpeg`, `image/gif`, `image/webp`, `application/pdf`.
    pub types: Vec<String>,
    /// Files one conversation may hold; more are refused (`too_many_files`).
    pub max_per_conversation: u32,
}

impl Default for Attachments {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            types: crate::attachments::KINDS
                .iter()
                .map(|k| k.to_string())
                .collect(),
            max_per_conversation: 50,
        }
    }
}

/// Timers, in seconds (fractions allowed).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timing {
    /// The server pings every connection this often; silence for 3 intervals closes it.
    pub heartbeat_secs: f64,
    /// A socket must say hello within this time.
    pub hello_timeout_secs: f64,
    /// An agent who lost every connection keeps their chats this long.
    pub agent_grace_secs: f64,
    /// The safety-net sweep (grace expiry, stuck queues).
    pub sweep_secs: f64,
    /// Used for the queue estimate until real handling times are known.
    pub average_handle_secs: f64,
    /// How long closed conversations stay in live state (Redis keys expire, memory is freed).
    pub closed_retention_secs: f64,
    /// First webhook retry delay; it doubles per attempt (with jitter) up to the maximum.
    pub webhook_backoff_secs: f64,
    pub webhook_max_backoff_secs: f64,
    /// How long a node holds a delivery before another node may take it over.
    pub delivery_lease_secs: f64,
    /// Timeout of one webhook request.
    pub webhook_timeout_secs: f64,
    /// On SIGTERM: how long the node waits for sockets to finish the frame in hand and close
    /// (1001) and for webhook attempts in flight, before it exits regardless.
    pub drain_secs: f64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat_secs: 20.0,
            hello_timeout_secs: 10.0,
            agent_grace_secs: 60.0,
            sweep_secs: 1.0,
            average_handle_secs: 300.0,
            closed_retention_secs: 86_400.0,
            webhook_backoff_secs: 1.0,
            webhook_max_backoff_secs: 3600.0,
            delivery_lease_secs: 30.0,
            webhook_timeout_secs: 10.0,
            drain_secs: 10.0,
        }
    }
}

impl Limits {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.header_timeout_secs)
    }
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.body_timeout_secs)
    }
}

impl Timing {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_secs)
    }
    pub fn hello_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.hello_timeout_secs)
    }
    pub fn grace_ms(&self) -> i64 {
        (self.agent_grace_secs * 1000.0) as i64
    }
    pub fn sweep(&self) -> Duration {
        Duration::from_secs_f64(self.sweep_secs)
    }
    pub fn drain(&self) -> Duration {
        Duration::from_secs_f64(self.drain_secs)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub id: SiteId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Origins (scheme://host[:port]) allowed to open visitor sockets.
    pub allowed_origins: Vec<String>,
    pub departments: Vec<DepartmentConfig>,
    /// Where a conversation goes when the visitor names no department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_department: Option<DeptId>,
    #[serde(default = "default_locale")]
    pub default_locale: String,
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// Per-locale overrides of the automatic replies: `[sites.templates.en] queued = "…"`.
    #[serde(default)]
    pub templates: BTreeMap<String, BTreeMap<String, String>>,
    /// An active chat whose visitor said nothing for this long is closed.
    #[serde(default = "default_inactivity")]
    pub inactivity_timeout_secs: f64,
    /// How long after the close a visitor may still rate the chat.
    #[serde(default = "default_rating_window")]
    pub rating_window_secs: f64,
    /// Verifies `user_hash = hex(HMAC-SHA256(identity_secret, user_id))` from the host page.
    #[serde(default)]
    pub identity_secret: Option<Secret>,
    /// Single sign-on: agent consoles may present an HS256 JWT signed with it (`sub` the
    /// agent id, `site` this site, `iat` and `exp` required) instead of a password or API token.
    #[serde(default)]
    pub sso_secret: Option<Secret>,
    /// With `sso_secret`: when set, a token's `iss` must be exactly this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_issuer: Option<String>,
    /// With `sso_secret`: when set, a token's `aud` (a string, or an array) must name this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_audience: Option<String>,
    /// Outgoing email (replies to offline messages, transcripts for visitors):
    /// `smtps://user@smtp.example.com` (TLS from the start), `smtp://user@host:587?tls=required`
    /// (STARTTLS) or `smtp://host:25` (plain, for a local relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// The SMTP account's password; write-only like the other secrets.
    #[serde(default)]
    pub smtp_password: Option<Secret>,
    /// The sender of those emails: `Demo shop <support@shop.example>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_from: Option<String>,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// How the widget looks and what it asks before a chat.
    #[serde(default)]
    pub widget: WidgetConfig,
    /// Canned responses: typing `/shortcut` in the console expands to the text.
    #[serde(default)]
    pub canned: Vec<CannedResponse>,
    /// Proactive-message rules for visitors browsing the site (docs/triggers.md).
    #[serde(default)]
    pub triggers: Vec<TriggerConfig>,
}

/// A canned response of a site. Placeholders `{visitor_name}`, `{visitor_email}`,
/// `{agent_name}`, `{agent_first_name}` and `{site_name}` are filled in by the console.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CannedResponse {
    pub shortcut: String,
    pub text: String,
}

/// A trigger: when a visitor's page view meets every condition, the widget gets a proactive
/// message. The conversation starts when the visitor answers it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// Names the rule in "fired once" records; keep it stable.
    pub id: String,
    /// Glob over the whole page URL: `*` any run of characters, `?` one character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Seconds on the page before the message (fractions allowed).
    #[serde(default)]
    pub time_on_page_secs: f64,
    /// Only from this visit on (1 = first visit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_visits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_visits: Option<u32>,
    /// Glob over the referrer of the visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Globs over `utm_*` tags of the landing page, e.g. `{ utm_source = "google" }`.
    #[serde(default)]
    pub utm: BTreeMap<String, String>,
    /// Only while the answering department is open.
    #[serde(default)]
    pub business_hours_only: bool,
    /// The proactive message.
    pub message: String,
    /// Per-locale versions of the message: `{ ru = "…" }`.
    #[serde(default)]
    pub messages: BTreeMap<String, String>,
    /// Sent under this agent's full name; without it, under the department's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_agent: Option<AgentId>,
    /// The department that answers when the visitor replies (landing pages → sales).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<DeptId>,
    /// Fire again for the same visitor after this long; without it, once per visitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_after_secs: Option<f64>,
}

/// The widget's appearance and pre-chat form (served publicly at `/v1/widget/<site>`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WidgetConfig {
    /// Accent colour, `#rrggbb`.
    pub color: String,
    /// Panel title; the widget's localized default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// First line shown in an empty chat; localized default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prechat: Option<PrechatConfig>,
    /// Agents see what the visitor is typing before it is sent (opt-in; off by default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub typing_preview: bool,
}

impl Default for WidgetConfig {
    fn default() -> Self {
        Self {
            color: "#2563eb".into(),
            title: None,
            greeting: None,
            prechat: None,
            typing_preview: false,
        }
    }
}

/// Fields asked before the first message.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrechatConfig {
    pub name: bool,
    pub email: bool,
    /// Let the visitor pick a department.
    pub department: bool,
    pub fields: Vec<CustomField>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub required: bool,
}

/// A webhook receiver of one site.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the receiver in the admin API; `hook-<n>` (its place in the file) when absent.
    #[serde(default)]
    pub id: String,
    pub url: String,
    /// Signs every delivery (`Switchboard-Signature`).
    pub secret: Secret,
    /// Which events to send; see docs/tickets.md.
    #[serde(default = "default_webhook_events")]
    pub events: Vec<String>,
    /// Retry a failing delivery this long, then keep it as dead.
    #[serde(default = "default_retry_for")]
    pub retry_for_secs: f64,
}

/// Every event a webhook may subscribe to.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "ticket.created",
    "ticket.updated",
    "conversation.queued",
    "conversation.assigned",
    "conversation.transferred",
    "conversation.closed",
];

fn default_webhook_events() -> Vec<String> {
    vec!["ticket.created".into(), "ticket.updated".into()]
}
fn default_retry_for() -> f64 {
    86_400.0
}
fn default_inactivity() -> f64 {
    900.0
}
fn default_rating_window() -> f64 {
    86_400.0
}

impl SiteConfig {
    /// Whether pages of this origin may use the widget: its socket, files and settings.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }

    pub fn default_department(&self) -> &DeptId {
        self.default_department
            .as_ref()
            .unwrap_or(&self.departments[0].id)
    }

    pub fn department(&self, id: &DeptId) -> Option<&DepartmentConfig> {
        self.departments.iter().find(|d| &d.id == id)
    }

    pub fn agent(&self, id: &AgentId) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| &a.id == id)
    }

    pub fn trigger(&self, id: &str) -> Option<&TriggerConfig> {
        self.triggers.iter().find(|t| t.id == id)
    }

    /// The department that answers a trigger's message.
    pub fn answering<'a>(&'a self, rule: &'a TriggerConfig) -> &'a DeptId {
        rule.department
            .as_ref()
            .unwrap_or_else(|| self.default_department())
    }

    /// A department's display name (its id when it has none).
    pub fn department_name(&self, id: &DeptId) -> String {
        self.department(id)
            .and_then(|d| d.name.clone())
            .unwrap_or_else(|| id.0.clone())
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentConfig {
    pub id: DeptId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Per-locale overrides for this department, over the site's.
    #[serde(default)]
    pub templates: BTreeMap<String, BTreeMap<String, String>>,
    /// Opening hours; without them the department is always open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<crate::hours::Hours>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub id: AgentId,
    /// Full display name: every message of this agent carries it.
    pub name: String,
    pub departments: Vec<DeptId>,
    /// The most chats at once; the agent may lower or raise their own limit up to this.
    pub max_concurrent: u32,
    /// Signs in to the console with this address and a password set from an invite link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// What the agent may do besides chatting (`agent`, `supervisor`, `admin`).
    #[serde(default)]
    pub role: AgentRole,
    /// A disabled agent cannot sign in and gets no chats; the record and tickets stay.
    #[serde(default)]
    pub disabled: bool,
    /// Hex SHA-256 of the agent's API token (integrations); the token itself is never stored.
    /// In a file it seeds the database, which holds it from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// An argon2id hash (PHC string) of the console password, to seed the database with; an
    /// admin's invite link sets it otherwise. Never written back or shown.
    #[serde(default, skip_serializing)]
    pub password_argon2: Option<String>,
    /// Bumped whenever the agent's credentials change or they are disabled: sockets signed in
    /// under an older one are closed on every node. Kept by the database, never in a file.
    #[serde(skip)]
    pub credentials: i64,
    /// When the credentials last changed (ms): a single-sign-on token issued before it is
    /// refused. Kept by the database.
    #[serde(skip)]
    pub credentials_at: crate::model::Millis,
}

/// An agent's role. Each includes the ones before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentRole {
    /// Chats within their departments.
    #[default]
    Agent,
    /// Also sees every chat and queue of the site, the supervisor figures, and takes over chats.
    Supervisor,
    /// Also manages the site's directory: agents, departments, hours, canned responses,
    /// triggers, widget and webhooks.
    Admin,
}

impl AgentRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor => "supervisor",
            Self::Admin => "admin",
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}
fn default_visitor_retention_days() -> u32 {
    30
}

fn default_prefix() -> String {
    "sb".into()
}
/// A BCP 47 language tag's shape: a 2-3 letter language, then subtags of 1-8 letters or
/// digits (`en`, `pt-BR`, `zh-Hant-TW`).
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang = parts.next().unwrap_or_default();
    (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn default_locale() -> String {
    "en".into()
}

/// Hex SHA-256, the stored form of agent tokens.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The configuration in force. The directory part changes at run time (REST, another node)
/// and the settings on SIGHUP; each change swaps in a whole new `Config`, so a reader holds
/// one consistent snapshot for as long as it needs it. Cheap to clone.
#[derive(Clone)]
pub struct Live(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Config>>>);

impl Live {
    pub fn new(config: Config) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(
            std::sync::Arc::new(config),
        )))
    }

    /// The snapshot in force now.
    pub fn get(&self) -> std::sync::Arc<Config> {
        // A poisoned lock only means a writer panicked between two whole values.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a new snapshot in force; returns the one it replaces.
    pub fn set(&self, config: Config) -> std::sync::Arc<Config> {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *guard, std::sync::Arc::new(config))
    }
}

/// One site of a configuration snapshot: derefs to its `SiteConfig` and keeps the snapshot
/// alive, so a change installed meanwhile cannot pull it away mid-request.
#[derive(Clone)]
pub struct Site {
    config: std::sync::Arc<Config>,
    index: usize,
}

impl Site {
    pub fn of(config: std::sync::Arc<Config>, id: &SiteId) -> Option<Self> {
        let index = config.sites.iter().position(|s| &s.id == id)?;
        Some(Self { config, index })
    }
}

impl std::ops::Deref for Site {
    type Target = SiteConfig;
    fn deref(&self) -> &SiteConfig {
        &self.config.sites[self.index]
    }
}

/// A configuration error that names the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {field}: {problem}")]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
}

pub fn bad(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// What the demo prints at start-up so a person can sign in as an agent or call the REST API.
pub struct DemoTokens {
    pub agents: Vec<(AgentId, String)>,
    pub admin: String,
    /// Alice's console password (she is the demo's admin).
    pub password: String,
}

impl Config {
    /// Flags and environment over the file (or the demo) over defaults. Returns the demo's agent
    /// tokens when the demo configuration is in use.
    pub fn load(cli: &Cli) -> anyhow::Result<(Config, Option<DemoTokens>)> {
        let (mut config, demo) = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read configuration {}: {e}", path.display())
                })?;
                (Config::from_toml(&text)?, None)
            }
            None => {
                let (config, tokens) = Config::demo();
                (config, Some(tokens))
            }
        };
        if let Some(listen) = cli.listen {
            config.listen = listen;
        }
        if let Some(url) = &cli.redis_url {
            config.redis_url = Some(url.clone());
        }
        if let Some(dir) = &cli.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(url) = &cli.database_url {
            config.database_url = Some(url.clone());
        }
        if let Ok(secret) = std::env::var("SWITCHBOARD_SECRET") {
            config.secret = Some(Secret::new(secret));
        }
        config.validate()?;
        Ok((config, demo))
    }

    /// Parses and validates a TOML document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            // toml's message names the key and line; keep it whole.
            bad("config", e.to_string().trim().replace('\n', " "))
        })?;
        config.fill_defaults();
        config.validate()?;
        Ok(config)
    }

    /// The built-in demo: site `demo` on http://localhost:8080 with `support` and `sales` and two
    /// agents whose random tokens are returned for printing.
    pub fn demo() -> (Config, DemoTokens) {
        let alice = random_token();
        let boris = random_token();
        let admin = random_token();
        // Short enough to type: 12 letters and digits.
        let password: String = random_token()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        let text = format!(
            r##"
            admin_token_sha256 = "{}"
            [[sites]]
            id = "demo"
            name = "Demo shop"
            allowed_origins = ["http://localhost:8080", "http://127.0.0.1:8080"]
            default_department = "support"
            widget = {{ color = "#0f766e", title = "Demo shop", prechat = {{ name = true, department = true }} }}
            departments = [{{ id = "support", name = "Support" }}, {{ id = "sales", name = "Sales" }}]

            canned = [
              {{ shortcut = "hi", text = "Hello {{visitor_name}}! I'm {{agent_first_name}}, how can I help?" }},
              {{ shortcut = "wait", text = "One moment please, I'm checking that for you." }},
              {{ shortcut = "bye", text = "Thank you for contacting {{site_name}}. Have a nice day!" }},
            ]

            [[sites.triggers]]
            id = "campaign-landing"
            url = "*/demo/*utm_campaign=*"
            time_on_page_secs = 5
            message = "Hi! Questions about the offer? I'm here to help."
            messages = {{ ru = "Здравствуйте! Есть вопросы о предложении? Я помогу." }}
            as_agent = "alice"
            department = "sales"

            [[sites.agents]]
            id = "alice"
            name = "Alice Moreau"
            email = "alice@demo.test"
            role = "admin"
            password_argon2 = "{}"
            departments = ["support", "sales"]
            max_concurrent = 3
            token_sha256 = "{}"

            [[sites.agents]]
            id = "boris"
            name = "Boris Ivanov"
            email = "boris@demo.test"
            departments = ["support"]
            max_concurrent = 2
            token_sha256 = "{}"
            "##,
            token_hash(&admin),
            crate::directory::accounts::hash_password(&password),
            token_hash(&alice),
            token_hash(&boris)
        );
        let config = Config::from_toml(&text).expect("the demo configuration is valid");
        (
            config,
            DemoTokens {
                agents: vec![("alice".into(), alice), ("boris".into(), boris)],
                admin,
                password,
            },
        )
    }

    /// Names what a file may leave out: webhook ids are their place, `hook-1`, `hook-2`, ….
    pub fn fill_defaults(&mut self) {
        for site in &mut self.sites {
            for (j, w) in site.webhooks.iter_mut().enumerate() {
                if w.id.is_empty() {
                    w.id = format!("hook-{}", j + 1);
                }
            }
        }
    }

    pub fn site(&self, id: &SiteId) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| &s.id == id)
    }

    /// Checks what serde cannot: ranges, references and uniqueness.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if tracing_subscriber::EnvFilter::try_new(&self.log).is_err() {
            return Err(bad(
                "log",
                "a log filter such as info or switchboard=debug,info",
            ));
        }
        if self.visitor_retention_days == 0 {
            return Err(bad("visitor_retention_days", "must be at least 1"));
        }
        if self.retention_days == Some(0) {
            return Err(bad(
                "retention_days",
                "must be at least 1 (leave it out to keep tickets)",
            ));
        }
        if let Some(url) = &self.database_url
            && crate::db::Kind::of(url).is_err()
        {
            return Err(bad(
                "database_url",
                "expected sqlite://FILE or postgres://…",
            ));
        }
        let l = &self.limits;
        if l.max_frame_bytes < 256 || l.max_frame_bytes > l.hard_frame_bytes {
            return Err(bad(
                "limits.max_frame_bytes",
                "must be at least 256 and at most limits.hard_frame_bytes",
            ));
        }
        if l.max_message_chars == 0 {
            return Err(bad("limits.max_message_chars", "must be positive"));
        }
        if l.messages_per_second <= 0.0 || l.message_burst < 1.0 {
            return Err(bad(
                "limits.messages_per_second",
                "rate must be positive and limits.message_burst at least 1",
            ));
        }
        for (name, v) in [
            ("limits.header_timeout_secs", l.header_timeout_secs),
            ("limits.body_timeout_secs", l.body_timeout_secs),
        ] {
            if !(v > 0.0 && v <= 3600.0) {
                return Err(bad(name, "must be more than 0 and at most 3600 seconds"));
            }
        }
        if l.max_connections < 1 {
            return Err(bad("limits.max_connections", "must be at least 1"));
        }
        if l.send_queue < 8 {
            return Err(bad("limits.send_queue", "must be at least 8"));
        }
        if l.ws_read_buffer < 512 || l.ws_write_buffer < 512 {
            return Err(bad(
                "limits.ws_read_buffer",
                "buffers must be at least 512 bytes",
            ));
        }
        if let Some(t) = self
            .attachments
            .types
            .iter()
            .find(|t| !crate::attachments::KINDS.contains(&t.as_str()))
        {
            return Err(bad(
                "attachments.types",
                format!(
                    "{t:?} cannot be allowed; choose from {}",
                    crate::attachments::KINDS.join(", ")
                ),
            ));
        }
        if self.attachments.max_bytes > 100 * 1024 * 1024 {
            return Err(bad("attachments.max_bytes", "at most 100 MiB"));
        }
        let t = &self.timing;
        for (name, v) in [
            ("timing.heartbeat_secs", t.heartbeat_secs),
            ("timing.hello_timeout_secs", t.hello_timeout_secs),
            ("timing.sweep_secs", t.sweep_secs),
            ("timing.average_handle_secs", t.average_handle_secs),
            ("timing.closed_retention_secs", t.closed_retention_secs),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(bad(name, "must be a positive number of seconds"));
            }
        }
        for (name, v) in [
            ("timing.webhook_backoff_secs", t.webhook_backoff_secs),
            (
                "timing.webhook_max_backoff_secs",
                t.webhook_max_backoff_secs,
            ),
            ("timing.delivery_lease_secs", t.delivery_lease_secs),
            ("timing.webhook_timeout_secs", t.webhook_timeout_secs),
            ("timing.drain_secs", t.drain_secs),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(bad(name, "must be a positive number of seconds"));
            }
        }
        if let Some(h) = &self.admin_token_sha256
            && (h.len() != 64 || hex::decode(h).is_err())
        {
            return Err(bad(
                "admin_token_sha256",
                "must be 64 hex digits (sha256 of the token)",
            ));
        }
        if !(t.agent_grace_secs >= 0.0 && t.agent_grace_secs.is_finite()) {
            return Err(bad(
                "timing.agent_grace_secs",
                "must be zero or more seconds",
            ));
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}', ' ']) {
            return Err(bad(
                "key_prefix",
                "must be non-empty without braces or spaces",
            ));
        }
        if let Some(s) = &self.secret
            && s.0.len() < 16
        {
            return Err(bad("secret", "must be at least 16 characters"));
        }
        if self.sites.is_empty() {
            return Err(bad("sites", "at least one site is required"));
        }
        let mut site_ids = HashSet::new();
        // Tokens sign in without naming a site: unique across all of them. Addresses are
        // unique within a site only (sign-in tries each account with the address), so one
        // site's admin cannot learn another's addresses.
        let mut hashes = HashSet::new();
        for (i, site) in self.sites.iter().enumerate() {
            let at = format!("sites[{i}]");
            let mut emails = HashSet::new();
            check_name(&format!("{at}.id"), &site.id.0)?;
            if !site_ids.insert(&site.id) {
                return Err(bad(format!("{at}.id"), "duplicate site id"));
            }
            if site.allowed_origins.is_empty() {
                return Err(bad(
                    format!("{at}.allowed_origins"),
                    "at least one origin: browsers on any other page are refused",
                ));
            }
            if !is_language_tag(&site.default_locale) {
                return Err(bad(
                    format!("{at}.default_locale"),
                    "a language tag such as en, ru or pt-BR",
                ));
            }
            for (j, o) in site.allowed_origins.iter().enumerate() {
                // Scheme and host[:port] only (`^https?://[^/]+$`, as the OpenAPI document
                // says): an origin never has a path.
                let host = o
                    .strip_prefix("http://")
                    .or_else(|| o.strip_prefix("https://"))
                    .unwrap_or_default();
                if host.is_empty() || host.contains('/') {
                    return Err(bad(
                        format!("{at}.allowed_origins[{j}]"),
                        "must look like https://host[:port] without a trailing slash",
                    ));
                }
            }
            for (name, value) in [
                ("sso_issuer", &site.sso_issuer),
                ("sso_audience", &site.sso_audience),
            ] {
                if value
                    .as_ref()
                    .is_some_and(|v| v.trim().is_empty() || v.chars().count() > 200)
                {
                    return Err(bad(format!("{at}.{name}"), "1 to 200 characters"));
                }
            }
            for (name, secret) in [
                ("identity_secret", &site.identity_secret),
                ("sso_secret", &site.sso_secret),
            ] {
                if secret.as_ref().is_some_and(|s| s.0.chars().count() < 16) {
                    return Err(bad(
                        format!("{at}.{name}"),
                        "must be at least 16 characters",
                    ));
                }
            }
            if let Some(url) = &site.smtp_url {
                let scheme = url.split("://").next().unwrap_or("");
                if !matches!(scheme, "smtp" | "smtps") || url.len() <= scheme.len() + 3 {
                    return Err(bad(
                        format!("{at}.smtp_url"),
                        "must be smtps://user@host[:port] or smtp://[user@]host[:port][?tls=required]",
                    ));
                }
                match &site.email_from {
                    None => {
                        return Err(bad(
                            format!("{at}.email_from"),
                            "required with smtp_url (Name <address>)",
                        ));
                    }
                    Some(f) if f.parse::<lettre::message::Mailbox>().is_err() => {
                        return Err(bad(
                            format!("{at}.email_from"),
                            "must be an address, or Name <address>",
                        ));
                    }
                    Some(_) => {}
                }
            }
            if site.departments.is_empty() {
                return Err(bad(format!("{at}.departments"), "at least one department"));
            }
            let mut dept_ids = HashSet::new();
            for (j, d) in site.departments.iter().enumerate() {
                check_name(&format!("{at}.departments[{j}].id"), &d.id.0)?;
                if !dept_ids.insert(&d.id) {
                    return Err(bad(format!("{at}.departments[{j}].id"), "duplicate"));
                }
            }
            if let Some(d) = &site.default_department
                && !dept_ids.contains(d)
            {
                return Err(bad(
                    format!("{at}.default_department"),
                    format!("no department {d}"),
                ));
            }
            if !(site.inactivity_timeout_secs > 0.0 && site.rating_window_secs >= 0.0) {
                return Err(bad(
                    format!("{at}.inactivity_timeout_secs"),
                    "timeouts must be positive numbers of seconds",
                ));
            }
            let mut hook_ids = HashSet::new();
            for (j, w) in site.webhooks.iter().enumerate() {
                let at = format!("{at}.webhooks[{j}]");
                check_name(&format!("{at}.id"), &w.id)?;
                if !hook_ids.insert(&w.id) {
                    return Err(bad(format!("{at}.id"), "duplicate webhook id"));
                }
                if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                    return Err(bad(format!("{at}.url"), "must be an http(s) URL"));
                }
                if w.secret.0.chars().count() < 16 {
                    return Err(bad(
                        format!("{at}.secret"),
                        "must be at least 16 characters",
                    ));
                }
                for (k, e) in w.events.iter().enumerate() {
                    if !WEBHOOK_EVENTS.contains(&e.as_str()) {
                        return Err(bad(
                            format!("{at}.events[{k}]"),
                            format!("unknown event {e}; one of {}", WEBHOOK_EVENTS.join(", ")),
                        ));
                    }
                }
                if w.retry_for_secs.is_nan() || w.retry_for_secs <= 0.0 {
                    return Err(bad(format!("{at}.retry_for_secs"), "must be positive"));
                }
            }
            let c = &site.widget.color;
            if c.len() != 7 || !c.starts_with('#') || hex::decode(&c[1..]).is_err() {
                return Err(bad(format!("{at}.widget.color"), "must be #rrggbb"));
            }
            for (j, f) in site
                .widget
                .prechat
                .iter()
                .flat_map(|p| p.fields.iter())
                .enumerate()
            {
                check_name(&format!("{at}.widget.prechat.fields[{j}].id"), &f.id)?;
            }
            for (j, d) in site.departments.iter().enumerate() {
                if let Some(h) = &d.hours {
                    h.validate()
                        .map_err(|(f, p)| bad(format!("{at}.departments[{j}].hours.{f}"), p))?;
                }
            }
            let mut shortcuts = HashSet::new();
            for (j, c) in site.canned.iter().enumerate() {
                check_name(&format!("{at}.canned[{j}].shortcut"), &c.shortcut)?;
                if !shortcuts.insert(&c.shortcut) {
                    return Err(bad(format!("{at}.canned[{j}].shortcut"), "duplicate"));
                }
                if c.text.trim().is_empty() {
                    return Err(bad(format!("{at}.canned[{j}].text"), "must not be empty"));
                }
            }
            let mut trigger_ids = HashSet::new();
            for (j, t) in site.triggers.iter().enumerate() {
                let at = format!("{at}.triggers[{j}]");
                check_name(&format!("{at}.id"), &t.id)?;
                if !trigger_ids.insert(&t.id) {
                    return Err(bad(format!("{at}.id"), "duplicate trigger id"));
                }
                if !(0.0..=86_400.0).contains(&t.time_on_page_secs) {
                    return Err(bad(
                        format!("{at}.time_on_page_secs"),
                        "must be 0 to 86400 seconds",
                    ));
                }
                if t.message.trim().is_empty() || t.messages.values().any(|m| m.trim().is_empty()) {
                    return Err(bad(format!("{at}.message"), "must not be empty"));
                }
                if let Some(a) = &t.as_agent
                    && site.agent(a).is_none()
                {
                    return Err(bad(format!("{at}.as_agent"), format!("no agent {a}")));
                }
                if let Some(d) = &t.department
                    && !dept_ids.contains(d)
                {
                    return Err(bad(
                        format!("{at}.department"),
                        format!("no department {d}"),
                    ));
                }
                if let Some(r) = t.repeat_after_secs
                    && !(r > 0.0 && r.is_finite())
                {
                    return Err(bad(
                        format!("{at}.repeat_after_secs"),
                        "must be a positive number of seconds",
                    ));
                }
                if let Some(k) = t.utm.keys().find(|k| !k.starts_with("utm_")) {
                    return Err(bad(
                        format!("{at}.utm"),
                        format!("{k}: keys are utm_* tags such as utm_source"),
                    ));
                }
            }
            let mut agent_ids = HashSet::new();
            for (j, a) in site.agents.iter().enumerate() {
                let at = format!("{at}.agents[{j}]");
                check_name(&format!("{at}.id"), &a.id.0)?;
                if !agent_ids.insert(&a.id) {
                    return Err(bad(format!("{at}.id"), "duplicate agent id"));
                }
                if a.name.trim().is_empty() {
                    return Err(bad(format!("{at}.name"), "a full display name is required"));
                }
                if a.max_concurrent == 0 || a.max_concurrent > 100 {
                    return Err(bad(format!("{at}.max_concurrent"), "must be 1 to 100"));
                }
                for (k, d) in a.departments.iter().enumerate() {
                    if !dept_ids.contains(d) {
                        return Err(bad(
                            format!("{at}.departments[{k}]"),
                            format!("no department {d} in this site"),
                        ));
                    }
                }
                if let Some(hash) = &a.token_sha256 {
                    if hash.len() != 64 || hex::decode(hash).is_err() {
                        return Err(bad(
                            format!("{at}.token_sha256"),
                            "must be 64 hex digits (sha256 of the token)",
                        ));
                    }
                    if !hashes.insert(hash.to_ascii_lowercase()) {
                        return Err(bad(
                            format!("{at}.token_sha256"),
                            "two agents share a token",
                        ));
                    }
                }
                if let Some(h) = &a.password_argon2
                    && !h.starts_with("$argon2id$")
                {
                    return Err(bad(
                        format!("{at}.password_argon2"),
                        "an argon2id hash in PHC form ($argon2id$v=19$…)",
                    ));
                }
                if let Some(email) = &a.email {
                    if !is_email(email) {
                        return Err(bad(
                            format!("{at}.email"),
                            "an address such as ana@example.com",
                        ));
                    }
                    if !emails.insert(email.to_lowercase()) {
                        return Err(bad(format!("{at}.email"), "another agent has it"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// An address's shape: something, `@`, a domain with a dot; no spaces. Delivery proves the rest.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Ids end up in Redis keys and URLs: keep them to a safe alphabet.
pub fn check_name(field: &str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            "use 1-64 characters from a-z, A-Z, 0-9, '-', '_', '.'",
        ))
    }
}

/// 32 random bytes as URL-safe text.
pub fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo configuration is valid and its printed tokens match the stored hashes.
    #[test]
    fn demo_is_valid() {
        let (config, tokens) = Config::demo();
        let site = &config.sites[0];
        for (id, token) in tokens.agents {
            assert_eq!(
                site.agent(&id).unwrap().token_sha256.as_deref(),
                Some(token_hash(&token).as_str())
            );
        }
    }

    /// Trusted proxies: addresses and networks of both families, mapped IPv4 included.
    #[test]
    fn networks_contain_what_they_should() {
        let net = |s: &str| Network::try_from(s.to_owned()).unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(net("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(net("fd00::/8").contains(ip("fd12::1")));
        assert!(!net("fd00::/8").contains(ip("10.0.0.1")));
        assert!(net("0.0.0.0/0").contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", ""] {
            assert!(Network::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    /// The packaged default configuration (scripts/deb) parses and validates.
    #[test]
    fn packaged_configuration_is_valid() {
        let c = Config::from_toml(include_str!("../scripts/deb/switchboard.toml")).unwrap();
        c.validate().unwrap();
    }

    /// The example configuration in the README parses and validates, so the docs stay true.
    #[test]
    fn readme_example_is_valid() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("```toml\nlisten")
            .expect("README has the configuration example");
        let body = &readme[start + 8..];
        let end = body.find("```").unwrap();
        let config = Config::from_toml(&body[..end]).unwrap();
        assert_eq!(config.sites[0].departments.len(), 2);
        assert!(config.sites[0].departments[0].hours.is_some());
        assert_eq!(config.sites[0].webhooks.len(), 1);
        assert_eq!(config.sites[0].canned.len(), 1);
        assert_eq!(config.sites[0].triggers.len(), 1);
    }

    /// A bad value is reported with the path of its field.
    #[test]
    fn errors_name_the_field() {
        let (config, _) = Config::demo();
        let mut c = config.clone();
        c.sites[0].agents[1].max_concurrent = 0;
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "sites[0].agents[1].max_concurrent");
        let e = Config::from_toml(
            "[[sites]]\nid = 'x'\nallowed_origins = []\ndepartments = []\nbogus = 1\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let mut c = config.clone();
        c.sites[0].default_locale = "xx_YY_bad".into();
        assert_eq!(c.validate().unwrap_err().field, "sites[0].default_locale");
        c.sites[0].default_locale = "pt-BR".into();
        c.validate().unwrap();
        c.sites[0].allowed_origins.clear();
        assert_eq!(c.validate().unwrap_err().field, "sites[0].allowed_origins");
        // Issue 24.20: an origin with a path was stored; the OpenAPI pattern says host only.
        for bad_origin in [
            "http://other.test/path/x",
            "http://other.test/",
            "https://",
            "ftp://x",
        ] {
            c.sites[0].allowed_origins = vec![bad_origin.into()];
            assert_eq!(
                c.validate().unwrap_err().field,
                "sites[0].allowed_origins[0]",
                "{bad_origin}"
            );
        }
        c.sites[0].allowed_origins = vec!["https://shop.test:8443".into()];
        assert!(c.validate().is_ok());
    }
}
