//! Who is on the other end: server-signed visitor tokens and hashed agent tokens.
//!
//! A visitor token is `v1.<site>.<visitor id>.<sig>` where `sig` is base64url HMAC-SHA256 over the
//! rest, keyed with the server secret: a visitor can only ever name their own conversation.
//! Agent tokens are compared by their SHA-256, the only form the configuration holds.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{Config, Secret, token_hash};
use crate::model::{AgentId, SiteId, VisitorId};

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks visitor tokens; resolves agent tokens. Cheap to clone.
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

/// The agent a bearer token belongs to, searched across the configured sites.
pub fn agent_for_token(config: &Config, token: &str) -> Option<(SiteId, AgentId)> {
    let hash = token_hash(token);
    config.sites.iter().find_map(|site| {
        site.agents
            .iter()
            .find(|a| a.token_sha256.eq_ignore_ascii_case(&hash))
            .map(|a| (site.id.clone(), a.id.clone()))
    })
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
}
