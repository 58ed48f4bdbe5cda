//! The server's settings: command-line flags (each also an environment variable) over a TOML
//! file over built-in defaults (`cli`, `settings`). Without `--config` the binary runs the demo
//! site (`crate::demo`) so `cargo run` just works.
//!
//! `clap` gives flags with env fallbacks and help for free; `toml` + serde with
//! `deny_unknown_fields` reports a misspelled or mistyped field by name. Validation after parsing
//! names the offending field too (`limits.max_frame_bytes: …`). The file's `[[sites]]` seed the
//! directory (`directory::model`), which checks itself the same way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::Deserialize;

pub mod cli;
pub mod settings;

pub use cli::{Cli, Command, LogFormat};
pub use settings::{Attachments, FILE_KINDS, Limits, Network, Timing};

use crate::directory::model::SiteConfig;
use crate::directory::validate_sites;
use crate::model::{Secret, SiteId};
use crate::validation::{ConfigError, bad};

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
    /// How push services reach the operator (`mailto:…` or `https://…`): the `sub` of the
    /// server's VAPID tokens (`push`); some push services refuse tokens without one.
    #[serde(default)]
    pub push_contact: Option<String>,
    /// Receive visitors' email replies by SMTP on this address (`inbound::smtp`): only mail to
    /// a ticket's reply address is accepted. Put it behind the MTA that owns the domain, or
    /// point the domain's MX at it. Unset: no listener (`POST /v1/inbound/email` still takes
    /// mail from a relay).
    #[serde(default)]
    pub inbound_smtp_listen: Option<SocketAddr>,
    /// A request header a trusted proxy sets to the client's country (`CF-IPCountry` behind
    /// Cloudflare): believed only from `trusted_proxies` (`geo`).
    #[serde(default)]
    pub country_header: Option<String>,
    /// A MaxMind-format database (GeoLite2-Country.mmdb) to find visitors' countries in,
    /// read at start-up (`geo`).
    #[serde(default)]
    pub geoip_database: Option<PathBuf>,
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

fn default_log() -> String {
    "info".into()
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

/// The configuration in force. The directory part changes at run time (REST, another node)
/// and the settings on SIGHUP; each change swaps in a whole new `Config`, so a reader holds
/// one consistent snapshot for as long as it needs it. Cheap to clone.
#[derive(Clone)]
pub struct Live(Arc<RwLock<Arc<Config>>>);

impl Live {
    pub fn new(config: Config) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(config))))
    }

    /// The snapshot in force now.
    pub fn get(&self) -> Arc<Config> {
        // A poisoned lock only means a writer panicked between two whole values.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a new snapshot in force; returns the one it replaces.
    pub fn set(&self, config: Config) -> Arc<Config> {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *guard, Arc::new(config))
    }
}

/// One site of a configuration snapshot: derefs to its `SiteConfig` and keeps the snapshot
/// alive, so a change installed meanwhile cannot pull it away mid-request.
#[derive(Clone)]
pub struct Site {
    config: Arc<Config>,
    index: usize,
}

impl Site {
    pub fn of(config: Arc<Config>, id: &SiteId) -> Option<Self> {
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

impl Config {
    /// Parses and validates a TOML document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            // toml's message names the line and shows it with a caret under the mistake: keep
            // it whole, line breaks included.
            bad("config", e.to_string().trim_end())
        })?;
        config.fill_defaults();
        config.validate()?;
        Ok(config)
    }

    /// Flags and environment over what the file (or the demo) says.
    pub fn apply(&mut self, cli: &Cli) {
        if let Some(listen) = cli.listen {
            self.listen = listen;
        }
        if let Some(url) = &cli.redis_url {
            self.redis_url = Some(url.clone());
        }
        if let Some(dir) = &cli.data_dir {
            self.data_dir = dir.clone();
        }
        if let Some(url) = &cli.database_url {
            self.database_url = Some(url.clone());
        }
        if let Ok(secret) = std::env::var("SWITCHBOARD_SECRET") {
            self.secret = Some(Secret::new(secret));
        }
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

    /// Checks what serde cannot: ranges, references and uniqueness, section by section, then
    /// the directory the file seeds.
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
        if let Some(url) = &self.redis_url
            && let Err(e) = crate::state::redis::check_url(url)
        {
            return Err(bad(
                "redis_url",
                format!(
                    "{e}; expected redis://, rediss://, redis+sentinel://…/<primary> or \
                     redis+cluster://host:port,…"
                ),
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
        if let Some(h) = &self.country_header
            && axum::http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            return Err(bad("country_header", "a header name, such as CF-IPCountry"));
        }
        if let Some(c) = &self.push_contact
            && !(c.starts_with("mailto:") && c.len() > 7 || c.starts_with("https://"))
        {
            return Err(bad(
                "push_contact",
                "a mailto: or https:// URL (how push services reach you)",
            ));
        }
        self.limits.validate()?;
        self.attachments.validate()?;
        self.timing.validate()?;
        if let Some(h) = &self.admin_token_sha256
            && (h.len() != 64 || hex::decode(h).is_err())
        {
            return Err(bad(
                "admin_token_sha256",
                "must be 64 hex digits (sha256 of the token)",
            ));
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}', ' ']) {
            return Err(bad(
                "key_prefix",
                "must be non-empty without braces or spaces",
            ));
        }
        if let Some(s) = &self.secret
            && s.expose().len() < 16
        {
            return Err(bad("secret", "must be at least 16 characters"));
        }
        validate_sites(&self.sites)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packaged default configuration (scripts/deb) parses and validates.
    #[test]
    fn packaged_configuration_is_valid() {
        let c = Config::from_toml(include_str!("../../scripts/deb/switchboard.toml")).unwrap();
        c.validate().unwrap();
    }

    /// The example configuration in the README parses and validates, so the docs stay true.
    #[test]
    fn readme_example_is_valid() {
        let readme = include_str!("../../README.md");
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
        let (config, _) = crate::demo::config();
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
