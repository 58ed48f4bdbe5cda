//! Web Push's two pieces of cryptography, both with `ring` (already the TLS stack's):
//! - VAPID (RFC 8292): the server signs a short-lived ES256 token for each push service, with
//!   one P-256 key pair the server generates once and keeps in the record database (every node
//!   signs with the same key, so a subscription made through one node works from all).
//! - Message encryption (RFC 8291, `aes128gcm` of RFC 8188): only the browser that subscribed
//!   can read a notification; the push service carries ciphertext.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sha2::Sha256;

/// A key, a point or a secret that does not have its expected form.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(&'static str);

/// The server's VAPID key pair.
pub struct Vapid {
    pair: EcdsaKeyPair,
    /// `sub` of every token: how a push service reaches the operator (`push_contact`).
    contact: Option<String>,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public_key", &self.public_key())
            .finish()
    }
}

impl Vapid {
    /// A new key pair, as PKCS#8 to store.
    pub fn generate() -> Result<Vec<u8>, Malformed> {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| Malformed("could not generate a P-256 key"))
    }

    pub fn from_pkcs8(pkcs8: &[u8], contact: Option<String>) -> Result<Self, Malformed> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|_| Malformed("the stored VAPID key is not a P-256 key"))?;
        Ok(Self { pair, contact })
    }

    /// The public key as browsers take it (`applicationServerKey`): the uncompressed point,
    /// base64url.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref())
    }

    /// The `Authorization` header for a push to `endpoint`: `vapid t=<JWT>, k=<public key>`,
    /// the token valid for 12 hours from `now_secs` and only for the endpoint's origin.
    pub fn authorization(
        &self,
        endpoint: &reqwest::Url,
        now_secs: i64,
    ) -> Result<String, Malformed> {
        let audience = endpoint.origin().ascii_serialization();
        let mut claims = serde_json::json!({"aud": audience, "exp": now_secs + 12 * 3600});
        if let Some(contact) = &self.contact {
            claims["sub"] = contact.clone().into();
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| Malformed("could not sign"))?;
        Ok(format!(
            "vapid t={signing_input}.{}, k={}",
            URL_SAFE_NO_PAD.encode(signature.as_ref()),
            self.public_key()
        ))
    }
}

/// The record size written in the header; one record holds every payload this server sends.
const RECORD_SIZE: u32 = 4096;

/// Encrypts `plaintext` for the browser whose subscription gave `p256dh` (its public key, the
/// uncompressed point) and `auth` (its 16-byte secret), both base64url: the body of the push
/// request, with `Content-Encoding: aes128gcm`.
pub fn encrypt(p256dh: &str, auth: &str, plaintext: &[u8]) -> Result<Vec<u8>, Malformed> {
    use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};

    let ua_public = decode(p256dh).filter(|k| k.len() == 65 && k[0] == 4);
    let ua_public = ua_public.ok_or(Malformed("p256dh is not a P-256 public key"))?;
    let auth = decode(auth).filter(|a| a.len() == 16);
    let auth = auth.ok_or(Malformed("auth is not a 16-byte secret"))?;
    if plaintext.len() + 1 + 16 > RECORD_SIZE as usize {
        return Err(Malformed("the message is longer than one record"));
    }
    let rng = SystemRandom::new();
    let private = EphemeralPrivateKey::generate(&ECDH_P256, &rng)
        .map_err(|_| Malformed("could not generate a P-256 key"))?;
    let as_public = private
        .compute_public_key()
        .map_err(|_| Malformed("could not compute a public key"))?;
    let as_public = as_public.as_ref().to_vec();
    let shared = agree_ephemeral(
        private,
        &UnparsedPublicKey::new(&ECDH_P256, &ua_public),
        |secret| secret.to_vec(),
    )
    .map_err(|_| Malformed("p256dh is not a point on P-256"))?;

    // RFC 8291 §3.3–3.4: the input keying material from the shared secret and auth…
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(&ua_public);
    key_info.extend_from_slice(&as_public);
    let mut ikm = [0u8; 32];
    expand(&auth, &shared, &key_info, &mut ikm);
    // …then RFC 8188 §2.2–2.3: key and nonce under a random salt.
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)
        .map_err(|_| Malformed("no random bytes"))?;
    let mut cek = [0u8; 16];
    expand(&salt, &ikm, b"Content-Encoding: aes128gcm\0", &mut cek);
    let mut nonce = [0u8; 12];
    expand(&salt, &ikm, b"Content-Encoding: nonce\0", &mut nonce);

    // One record, the last: the content, then the delimiter 2.
    let mut record = Vec::with_capacity(plaintext.len() + 17);
    record.extend_from_slice(plaintext);
    record.push(2);
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_128_GCM, &cek).map_err(|_| Malformed("bad content key"))?,
    );
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut record,
    )
    .map_err(|_| Malformed("could not encrypt"))?;

    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + record.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// HKDF-SHA256: extract with `salt`, expand `info` into `out`.
fn expand(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out)
        .expect("at most 32 bytes are asked for");
}

fn decode(s: &str) -> Option<Vec<u8>> {
    // Browsers give base64url without padding; some libraries pad it.
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout RFC 8188 gives: salt, record size, key id length and the server's key,
    /// then one record of the content, its delimiter and the tag.
    #[test]
    fn encrypted_body_has_the_header_and_one_record() {
        let rng = SystemRandom::new();
        let browser =
            ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng)
                .unwrap();
        let p256dh = URL_SAFE_NO_PAD.encode(browser.compute_public_key().unwrap().as_ref());
        let auth = URL_SAFE_NO_PAD.encode([7u8; 16]);
        let body = encrypt(&p256dh, &auth, b"hello").unwrap();
        assert_eq!(&body[16..20], &4096u32.to_be_bytes());
        assert_eq!(body[20], 65);
        assert_eq!(body[21], 4, "the key id is an uncompressed point");
        assert_eq!(body.len(), 16 + 4 + 1 + 65 + 5 + 1 + 16);
        assert!(encrypt("AAAA", &auth, b"x").is_err());
        assert!(encrypt(&p256dh, "AAAA", b"x").is_err());
        assert!(encrypt(&p256dh, &auth, &[0; 4096]).is_err());
    }

    /// A token names the endpoint's origin, expires in 12 hours and verifies with the
    /// public key the browser was given.
    #[test]
    fn vapid_token_verifies_with_the_public_key() {
        let vapid = Vapid::from_pkcs8(
            &Vapid::generate().unwrap(),
            Some("mailto:ops@example.com".into()),
        )
        .unwrap();
        let url = reqwest::Url::parse("https://push.example.com:8443/send/abc?x=1").unwrap();
        let header = vapid.authorization(&url, 1_000).unwrap();
        let (t, k) = header
            .strip_prefix("vapid t=")
            .and_then(|r| r.split_once(", k="))
            .unwrap();
        assert_eq!(k, vapid.public_key());
        let (input, sig) = t.rsplit_once('.').unwrap();
        let key = URL_SAFE_NO_PAD.decode(k).unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, key)
            .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
            .expect("the signature verifies");
        let claims: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(input.split_once('.').unwrap().1)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], "https://push.example.com:8443");
        assert_eq!(claims["exp"], 1_000 + 12 * 3600);
        assert_eq!(claims["sub"], "mailto:ops@example.com");
    }
}
