//! What HTTP handlers and WebSocket upgrades both read from a request: who the client is
//! (behind trusted proxies), whether it came over TLS, its cookies and bearer token. `http` and
//! `ws` both stand on this module, never on each other.

use axum::http::header;

/// The session cookie of the console.
pub const SESSION_COOKIE: &str = "sb_session";

/// The value of one cookie of the request.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy
/// (`trusted_proxies`), the last address in `X-Forwarded-For` that no trusted proxy added.
/// An entry that is not an address ends the walk at the hop that wrote it: nothing further
/// left is believed.
pub fn client_addr(
    config: &crate::config::Config,
    peer: std::net::SocketAddr,
    headers: &axum::http::HeaderMap,
) -> std::net::SocketAddr {
    let trusted = |ip: std::net::IpAddr| config.trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(peer.ip()) {
        return peer;
    }
    let mut client = peer.ip();
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let hop = hop.trim();
        let Some(ip) = hop
            .parse::<std::net::IpAddr>()
            .ok()
            .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        else {
            break;
        };
        client = ip;
        if !trusted(ip) {
            break;
        }
    }
    std::net::SocketAddr::new(client, 0)
}

/// Whether the request reached the proxy over TLS: `X-Forwarded-Proto: https`, believed only
/// from a trusted proxy (anyone else could send it). The session cookie is `Secure` then, and
/// the console's socket is accepted only from an `https://` page of this host.
pub fn forwarded_https(
    config: &crate::config::Config,
    peer: std::net::SocketAddr,
    headers: &axum::http::HeaderMap,
) -> bool {
    config.trusted_proxies.iter().any(|n| n.contains(peer.ip()))
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Whether the request's `Accept-Encoding` names `coding` (or `*`) without `q=0`. Without the
/// header nothing is assumed: a plain client gets a plain body.
pub fn accepts(headers: &axum::http::HeaderMap, coding: &str) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case(coding) || name == "*") && !refused
        })
}

/// The body of every HTTP error, whichever door refuses (REST, a WebSocket upgrade, a
/// connection over the caps): `{"error": {"code", "message"}}`, with `field` when one field
/// is at fault.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable; clients switch on it: bad_request, invalid (a body field; see `field`),
    /// unauthorized, forbidden (role or site), csrf, not_found, conflict, rate_limited,
    /// method_not_allowed, unavailable, and the engine's codes (docs/api.md)
    #[schema(example = "bad_request")]
    pub code: &'a str,
    pub message: &'a str,
    /// With `invalid`: the field, relative to the body, as the settings file would name it
    /// (`hours.monday[0]`, `widget.color`)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

pub fn error_body<'a>(code: &'a str, message: &'a str, field: Option<&'a str>) -> ErrorBody<'a> {
    ErrorBody {
        error: ErrorDetail {
            code,
            message,
            field,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_reads_accept_encoding() {
        let with = |v: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
            h
        };
        for (value, gzip) in [
            ("gzip", true),
            ("br, gzip;q=0.8", true),
            ("GZIP", true),
            ("*", true),
            ("br", false),
            ("gzip;q=0", false),
            ("gzip; q=0.0, br", false),
            ("identity", false),
        ] {
            assert_eq!(accepts(&with(value), "gzip"), gzip, "{value}");
        }
        assert!(!accepts(&axum::http::HeaderMap::new(), "gzip"), "no header");
    }
}
