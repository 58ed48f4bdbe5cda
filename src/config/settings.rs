//! The server's own settings, section by section, each checking itself: who is believed as a
//! proxy (`Network`), what one client may send and hold (`Limits`), files in chats
//! (`Attachments`), and the timers (`Timing`).

use std::time::Duration;

use serde::Deserialize;

use crate::validation::{ConfigError, bad};

/// Every type a file may have; `attachments.types` allows a subset. The kinds
/// `attachments::sniff` recognises from a file's first bytes.
pub const FILE_KINDS: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
];

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
            types: FILE_KINDS.iter().map(|k| k.to_string()).collect(),
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

impl Limits {
    /// Ranges: frames, rates, timeouts, caps and buffers.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = self;
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
        Ok(())
    }
}

impl Attachments {
    /// Only kinds that can be recognised, and at most 100 MiB.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(t) = self
            .types
            .iter()
            .find(|t| !FILE_KINDS.contains(&t.as_str()))
        {
            return Err(bad(
                "attachments.types",
                format!(
                    "{t:?} cannot be allowed; choose from {}",
                    FILE_KINDS.join(", ")
                ),
            ));
        }
        if self.max_bytes > 100 * 1024 * 1024 {
            return Err(bad("attachments.max_bytes", "at most 100 MiB"));
        }
        Ok(())
    }
}

/// The longest any timing may be: past it, a duration is a mistake (and `1e300` would
/// overflow the clock).
const YEAR_SECS: f64 = 31_536_000.0;

impl Timing {
    /// Every timer more than zero seconds and at most a year (the grace may be zero).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = self;
        for (name, v) in [
            ("timing.heartbeat_secs", t.heartbeat_secs),
            ("timing.hello_timeout_secs", t.hello_timeout_secs),
            ("timing.sweep_secs", t.sweep_secs),
            ("timing.average_handle_secs", t.average_handle_secs),
            ("timing.closed_retention_secs", t.closed_retention_secs),
            ("timing.webhook_backoff_secs", t.webhook_backoff_secs),
            (
                "timing.webhook_max_backoff_secs",
                t.webhook_max_backoff_secs,
            ),
            ("timing.delivery_lease_secs", t.delivery_lease_secs),
            ("timing.webhook_timeout_secs", t.webhook_timeout_secs),
            ("timing.drain_secs", t.drain_secs),
        ] {
            if !(v > 0.0 && v <= YEAR_SECS) {
                return Err(bad(
                    name,
                    "must be more than 0 and at most 31536000 seconds (a year)",
                ));
            }
        }
        if !(t.agent_grace_secs >= 0.0 && t.agent_grace_secs <= YEAR_SECS) {
            return Err(bad(
                "timing.agent_grace_secs",
                "must be 0 to 31536000 seconds (a year)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
