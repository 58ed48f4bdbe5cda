//! A push service on a free port, and a browser's side of Web Push: its keys, and the
//! decryption of what arrives (RFC 8291 / RFC 8188), written from the RFCs with `ring`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::*;

/// One request the push service got.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub path: String,
    pub authorization: String,
    pub encoding: String,
    pub ttl: String,
    pub body: Vec<u8>,
}

/// A push service that records each request and answers 201, or 410 for paths that end in
/// `/gone`.
pub struct PushService {
    pub base: String,
    rx: tokio::sync::mpsc::UnboundedReceiver<Delivered>,
}

impl PushService {
    pub async fn start() -> PushService {
        use axum::http::{HeaderMap, StatusCode, Uri};
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(
            move |uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let _ = tx.send(Delivered {
                        path: uri.path().to_owned(),
                        authorization: h("authorization"),
                        encoding: h("content-encoding"),
                        ttl: h("ttl"),
                        body: body.to_vec(),
                    });
                    if uri.path().ends_with("/gone") {
                        StatusCode::GONE
                    } else {
                        StatusCode::CREATED
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        PushService { base, rx }
    }

    /// The next request, within `WAIT`.
    pub async fn next(&mut self) -> Delivered {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a push arrived in time")
            .expect("the push service runs")
    }
}

/// A browser's subscription keys. Its private key serves one decryption (ring's ephemeral
/// keys are single-use), which is all a test needs of one browser.
pub struct Browser {
    key: Option<ring::agreement::EphemeralPrivateKey>,
    public: Vec<u8>,
    auth: [u8; 16],
}

impl Browser {
    pub fn new() -> Browser {
        use ring::rand::SecureRandom;
        let rng = ring::rand::SystemRandom::new();
        let key = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng)
            .unwrap();
        let public = key.compute_public_key().unwrap().as_ref().to_vec();
        let mut auth = [0u8; 16];
        rng.fill(&mut auth).unwrap();
        Browser {
            key: Some(key),
            public,
            auth,
        }
    }

    /// What `PushSubscription.toJSON()` gives for this browser at `endpoint`.
    pub fn subscription(&self, endpoint: &str) -> Value {
        json!({"endpoint": endpoint, "keys": {
            "p256dh": URL_SAFE_NO_PAD.encode(&self.public),
            "auth": URL_SAFE_NO_PAD.encode(self.auth),
        }})
    }

    /// Decrypts an `aes128gcm` body sent to this browser: the JSON inside.
    pub fn decrypt(&mut self, body: &[u8]) -> Value {
        use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
        let (salt, rest) = body.split_at(16);
        let id_len = rest[4] as usize;
        let as_public = &rest[5..5 + id_len];
        let mut record = rest[5 + id_len..].to_vec();
        let secret = ring::agreement::agree_ephemeral(
            self.key.take().expect("one decryption per browser"),
            &ring::agreement::UnparsedPublicKey::new(&ring::agreement::ECDH_P256, as_public),
            |s| s.to_vec(),
        )
        .unwrap();
        let hkdf = |salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]| {
            hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm)
                .expand(info, out)
                .unwrap()
        };
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(&self.public);
        info.extend_from_slice(as_public);
        let mut ikm = [0u8; 32];
        hkdf(&self.auth, &secret, &info, &mut ikm);
        let mut cek = [0u8; 16];
        hkdf(salt, &ikm, b"Content-Encoding: aes128gcm\0", &mut cek);
        let mut nonce = [0u8; 12];
        hkdf(salt, &ikm, b"Content-Encoding: nonce\0", &mut nonce);
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).unwrap());
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut record,
            )
            .expect("the push decrypts with this browser's keys");
        // The last record ends with the delimiter 2, then any padding zeros.
        let end = plain
            .iter()
            .rposition(|b| *b == 2)
            .expect("a last-record delimiter");
        serde_json::from_slice(&plain[..end]).expect("the note is JSON")
    }
}

/// Checks a push's `Authorization: vapid t=…, k=…`: the key is the server's, the token
/// verifies with it, and names the push service's origin. Returns the token's claims.
pub fn vapid_claims(authorization: &str, server_key: &str, audience: &str) -> Value {
    let (t, k) = authorization
        .strip_prefix("vapid t=")
        .and_then(|r| r.split_once(", k="))
        .expect("vapid t=…, k=…");
    assert_eq!(
        k, server_key,
        "signed with the key the browser subscribed with"
    );
    let (input, sig) = t.rsplit_once('.').unwrap();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        URL_SAFE_NO_PAD.decode(k).unwrap(),
    )
    .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
    .expect("the VAPID token verifies");
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(input.split_once('.').unwrap().1)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], audience);
    claims
}
