//! Who is on the other end: server-signed visitor tokens and hashed agent tokens.
//!
//! A visitor token is `v1.<site>.<visitor id>.<sig>` where `sig` is base64url HMAC-SHA256 over the
//! rest, keyed with the server secret: a visitor can only ever name their own conversation.
//! Agent API tokens are looked up by their SHA-256 (the database's `agents`); single sign-on
//! tokens are HS256 JWTs signed with the site's `sso_secret`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::model::{Secret, SiteId, VisitorId};

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks visitor tokens. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Keys {
    /// The HMAC key for visitor tokens; shared by all nodes of one deployment.
    secret: Secret,
}

impl Keys {
    pub fn new(secret: Secret) -> Self {
        Self { secret }
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(self.secret.expose()).expect("HMAC takes keys of any size");
        mac.update(payload.as_bytes());
        mac
    }

    pub fn visitor_token(&self, site: &SiteId, visitor: &VisitorId) -> String {
        let payload = format!("v1.{site}.{visitor}");
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// The tag of a ticket's reply address (`inbound`): 16 hex digits of an HMAC of the site
    /// and ticket, so only the server makes addresses that file mail into a ticket.
    pub fn reply_tag(&self, site: &SiteId, ticket: &str) -> String {
        hex::encode(
            &self
                .mac(&format!("reply.{site}.{ticket}"))
                .finalize()
                .into_bytes()[..8],
        )
    }

    /// The visitor a token names, if the signature holds and the site matches.
    pub fn verify_visitor(&self, site: &SiteId, token: &str) -> Option<VisitorId> {
        let (payload, sig) = token.rsplit_once('.')?;
        let mut parts = payload.splitn(3, '.');
        let (v, s, id) = (parts.next()?, parts.next()?, parts.next()?);
        if v != "v1" || s != site.0 || id.is_empty() {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        // verify_slice compares in constant time.
        self.mac(payload).verify_slice(&sig).ok()?;
        Some(VisitorId(id.to_owned()))
    }
}

/// Checks the host site's `user_hash`: hex HMAC-SHA256 of the user id with the site's identity
/// secret (computed by the host's backend, so visitors cannot claim someone else's identity).
pub fn verify_user_hash(secret: &Secret, user_id: &str, user_hash: &str) -> bool {
    let Ok(given) = hex::decode(user_hash.trim()) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret.expose()).expect("HMAC takes keys of any size");
    mac.update(user_id.as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// Checks the host site's `attributes_hash`: hex HMAC-SHA256, with the site's identity secret,
/// of the user id and a line `key=value` for each attribute in the order of their keys, each
/// line ending in a newline (`u-1842\ntier=gold\n`). Bound to the user id, so one visitor's
/// signed attributes cannot be replayed as another's.
pub fn attributes_signed(
    secret: &Secret,
    user_id: &str,
    attributes: &std::collections::BTreeMap<String, String>,
    hash: &str,
) -> bool {
    let mut message = format!("{user_id}\n");
    for (k, v) in attributes {
        message.push_str(&format!("{k}={v}\n"));
    }
    verify_user_hash(secret, &message, hash)
}

/// An attribute's shape, as the host site signs it and rules name it: a key of 1 to 32 lower-case
/// letters, digits or `_`, a value of 1 to 100 characters without control characters (so the
/// signed lines cannot be forged by joining), at most 10 of them.
pub fn attributes_valid(attributes: &std::collections::BTreeMap<String, String>) -> bool {
    attributes.len() <= 10
        && attributes.iter().all(|(k, v)| {
            (1..=32).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && (1..=100).contains(&v.chars().count())
                && !v.chars().any(char::is_control)
        })
}

/// What a single-sign-on token says: which agent of which site, until when.
#[derive(Debug, serde::Deserialize)]
pub struct SsoClaims {
    /// The agent's id in the directory.
    pub sub: String,
    pub site: String,
    /// Expiry, Unix seconds. Required: a token that never expires is a password.
    pub exp: i64,
    /// Issued at, Unix seconds. Required: it bounds the token's lifetime, and a token issued
    /// before the agent's credentials last changed (reset, disable) is refused.
    pub iat: i64,
    /// Not before, Unix seconds.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Issuer; checked when the site names one (`sso_issuer`).
    #[serde(default)]
    pub iss: Option<String>,
    /// Audience, a string or an array; checked when the site names one (`sso_audience`).
    #[serde(default)]
    pub aud: Option<serde_json::Value>,
}

impl SsoClaims {
    /// Whether the token is for `audience`: `aud` is it, or an array holding it.
    pub fn for_audience(&self, audience: &str) -> bool {
        match &self.aud {
            Some(serde_json::Value::String(a)) => a == audience,
            Some(serde_json::Value::Array(all)) => all.iter().any(|a| a == audience),
            _ => false,
        }
    }
}

/// The longest a single-sign-on token may live (`exp - iat`).
pub const SSO_MAX_LIFETIME_SECS: i64 = 12 * 3600;

/// How far ahead of this server's clock `iat` and `nbf` may be (the issuer's clock drifts).
const SSO_LEEWAY_SECS: i64 = 60;

/// Verifies an HS256 JWT the host application issued with the site's `sso_secret`: the header
/// must say HS256 (no `none`, no algorithm switching), the signature must hold (constant-time
/// compare), `exp` must lie ahead, `iat` is required and at most `SSO_MAX_LIFETIME_SECS`
/// before `exp`, and `nbf` (when present) must have come. Returns its claims.
///
/// Written on the `hmac` crate this binary already uses: forty lines of checks, and no JWT
/// library's algorithm choices (`none`, RS/HS confusion) to keep switched off.
pub fn verify_sso(secret: &Secret, token: &str, now_secs: i64) -> Option<SsoClaims> {
    let mut parts = token.split('.');
    let (h, p, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Header {
        alg: String,
    }
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    if header.alg != "HS256" {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    let mut mac = HmacSha256::new_from_slice(secret.expose()).expect("HMAC takes keys of any size");
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    mac.verify_slice(&sig).ok()?;
    let claims: SsoClaims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
    let live = claims.exp > now_secs
        && claims.iat <= now_secs + SSO_LEEWAY_SECS
        && claims.exp - claims.iat <= SSO_MAX_LIFETIME_SECS
        && claims
            .nbf
            .is_none_or(|nbf| nbf <= now_secs + SSO_LEEWAY_SECS);
    live.then_some(claims)
}

/// Whether a token has a JWT's shape (three base64url parts, a JSON header).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.matches('.').count() == 2
}

/// Hex SHA-256, the stored form of agent tokens.
pub fn token_hash(token: &str) -> String {
    hex::encode(<Sha256 as sha2::Digest>::digest(token.as_bytes()))
}

/// 32 random bytes as URL-safe text.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token verifies for its own site only, and any tampering breaks it.
    #[test]
    fn visitor_tokens() {
        let keys = Keys::new(Secret::new("0123456789abcdef0123"));
        let site = SiteId::from("demo");
        let v = VisitorId::from("01ABC");
        let t = keys.visitor_token(&site, &v);
        assert_eq!(keys.verify_visitor(&site, &t), Some(v));
        assert_eq!(keys.verify_visitor(&SiteId::from("other"), &t), None);
        let forged = t.replace("01ABC", "01ABD");
        assert_eq!(keys.verify_visitor(&site, &forged), None);
        let other = Keys::new(Secret::new("another-secret-of-length"));
        assert_eq!(other.verify_visitor(&site, &t), None);
    }

    /// A JWT verifies with its secret while unexpired; `alg: none` and a wrong key do not.
    #[test]
    fn sso_tokens() {
        let secret = Secret::new("sso-secret-0123456789");
        let sign = |header: &str, claims: &str, key: &Secret| {
            let h = URL_SAFE_NO_PAD.encode(header);
            let p = URL_SAFE_NO_PAD.encode(claims);
            let mut mac = HmacSha256::new_from_slice(key.expose()).unwrap();
            mac.update(format!("{h}.{p}").as_bytes());
            let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
            format!("{h}.{p}.{s}")
        };
        let claims = r#"{"sub":"alice","site":"demo","iat":900,"exp":2000}"#;
        let t = sign(r#"{"alg":"HS256","typ":"JWT"}"#, claims, &secret);
        assert!(looks_like_jwt(&t));
        assert_eq!(verify_sso(&secret, &t, 1000).unwrap().sub, "alice");
        assert!(verify_sso(&secret, &t, 2000).is_none(), "expired");
        let header = r#"{"alg":"HS256"}"#;
        for (claims, why) in [
            (r#"{"sub":"alice","site":"demo","exp":2000}"#, "no iat"),
            (
                r#"{"sub":"alice","site":"demo","iat":900,"exp":99999}"#,
                "lives too long",
            ),
            (
                r#"{"sub":"alice","site":"demo","iat":900,"nbf":1500,"exp":2000}"#,
                "not yet",
            ),
            (
                r#"{"sub":"alice","site":"demo","iat":1500,"exp":2000}"#,
                "issued in the future",
            ),
        ] {
            assert!(
                verify_sso(&secret, &sign(header, claims, &secret), 1000).is_none(),
                "{why}"
            );
        }
        let none = sign(r#"{"alg":"none"}"#, claims, &secret);
        assert!(verify_sso(&secret, &none, 1000).is_none());
        let other = sign(r#"{"alg":"HS256"}"#, claims, &Secret::new("x".repeat(20)));
        assert!(verify_sso(&secret, &other, 1000).is_none());
    }
}
