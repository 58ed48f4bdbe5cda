//! Clients of a server under test: WebSocket visitors and agents that wait for events with a
//! timeout, and HTTP requests.

use std::collections::VecDeque;
use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Message, http};

use super::*;

/// A WebSocket client that remembers what it received but has not been asked for yet.
pub struct Client {
    pub(super) ws: Ws,
    pub(super) pending: VecDeque<Value>,
}

pub async fn connect(addr: SocketAddr, path: &str, origin: Option<&str>) -> Result<Client, String> {
    connect_with(addr, path, origin, &[]).await
}

/// As `connect`, with extra request headers.
pub async fn connect_with(
    addr: SocketAddr,
    path: &str,
    origin: Option<&str>,
    headers: &[(&'static str, &str)],
) -> Result<Client, String> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut()
            .insert(http::header::ORIGIN, o.parse().unwrap());
    }
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req)).await {
        Err(_) => Err("connect timed out".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok((ws, _))) => Ok(Client {
            ws,
            pending: VecDeque::new(),
        }),
    }
}

impl Client {
    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_message(&mut self, m: Message) {
        self.ws.send(m).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next JSON message from the server before `deadline`, or None when the socket closed.
    async fn read(&mut self, deadline: tokio::time::Instant, what: &str) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}; got {:?}", self.pending));
            match msg {
                Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Waits for the first message matching `pred`, keeping the others for later calls.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self.read(deadline, what).await {
                Some(v) if pred(&v) => return v,
                Some(v) => self.pending.push_back(v),
                None => panic!(
                    "socket closed while waiting for {what}; got {:?}",
                    self.pending
                ),
            }
        }
    }

    /// Waits for a message of a type.
    pub async fn wait_type(&mut self, ty: &str) -> Value {
        self.wait_for(ty, |v| v["type"] == ty).await
    }

    /// Waits for a stored event of a kind.
    pub async fn wait_event(&mut self, kind: &str) -> Value {
        self.wait_for(&format!("event {kind}"), |v| {
            v["type"] == "event" && v["event"]["kind"] == kind
        })
        .await
    }

    /// Waits for an error with a code.
    pub async fn wait_error(&mut self, code: &str) -> Value {
        self.wait_for(&format!("error {code}"), |v| {
            v["type"] == "error" && v["code"] == code
        })
        .await
    }

    /// Round-trips a ping: everything the server sent before the pong is then in `pending`.
    pub async fn sync(&mut self) {
        self.send(json!({"type": "ping"})).await;
        self.wait_type("pong").await;
    }

    /// Everything received so far and not yet taken (after a `sync`).
    pub fn drain(&mut self) -> Vec<Value> {
        self.pending.drain(..).collect()
    }

    /// Waits until the server closes the socket; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("timed out waiting for the server to close");
            match msg {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Text(t))) => {
                    self.pending.push_back(serde_json::from_str(&t).unwrap())
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

/// A visitor that said hello (first contact) and got its welcome.
/// A visitor socket on a server address that sent `hello` (with `"type": "hello"` added), its
/// answer not read yet.
pub async fn visitor_says_hello(addr: SocketAddr, hello: &Value) -> Client {
    let mut c = connect(addr, &format!("/v1/visitor?site={SITE}"), Some(ORIGIN))
        .await
        .expect("visitor connects");
    let mut h = json!({"type": "hello"});
    for (k, v) in hello.as_object().expect("a hello object") {
        h[k] = v.clone();
    }
    c.send(h).await;
    c
}

/// hex HMAC-SHA256 with the test site's identity secret (`IDENTITY_SECRET`), as a host
/// site's backend signs a visitor's identity, email or attributes.
pub fn identity_signed(text: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(IDENTITY_SECRET.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The identity secret tests give the test site.
pub const IDENTITY_SECRET: &str = "identity-secret-0123456789";

pub async fn visitor(app: &TestApp, hello: Value) -> (Client, Value) {
    let mut c = connect(app.addr, &format!("/v1/visitor?site={SITE}"), Some(ORIGIN))
        .await
        .expect("visitor connects");
    let mut h = json!({"type": "hello", "page": {"url": "https://shop.test/", "title": "Shop"}});
    if let (Some(h), Some(extra)) = (h.as_object_mut(), hello.as_object()) {
        for (k, v) in extra {
            h.insert(k.clone(), v.clone());
        }
    }
    c.send(h).await;
    let welcome = c.wait_type("welcome").await;
    (c, welcome)
}

/// An agent console that said hello with a status.
pub async fn agent_client(app: &TestApp, id: &str, status: &str) -> Client {
    agent_status_at(app.addr, id, status).await
}

/// An online agent console on a server address.
pub async fn agent_client_at(addr: SocketAddr, id: &str) -> Client {
    agent_status_at(addr, id, "online").await
}

pub(super) async fn agent_status_at(addr: SocketAddr, id: &str, status: &str) -> Client {
    let mut c = connect(addr, "/v1/agent", None)
        .await
        .expect("agent connects");
    c.send(json!({"type": "hello", "token": token(id), "status": status}))
        .await;
    let w = c.wait_type("welcome").await;
    assert_eq!(w["agent"]["id"], id);
    c
}

/// Sends a visitor message and returns its ack.
pub async fn say(c: &mut Client, client_id: &str, text: &str) -> Value {
    c.send(json!({"type": "message", "client_id": client_id, "text": text}))
        .await;
    c.wait_for("ack", |v| v["type"] == "ack" && v["client_id"] == client_id)
        .await
}

/// Sends an agent message and returns its ack.
pub async fn agent_say(c: &mut Client, conv: &str, client_id: &str, text: &str) -> Value {
    c.send(json!({"type": "message", "conversation": conv, "client_id": client_id, "text": text}))
        .await;
    c.wait_for("ack", |v| v["type"] == "ack" && v["client_id"] == client_id)
        .await
}

/// A new visitor whose first message (`client_id`, `text`) opens a chat that `agent` takes:
/// the visitor's socket and the conversation id.
pub async fn chat_with(
    app: &TestApp,
    agent: &mut Client,
    client_id: &str,
    text: &str,
) -> (Client, String) {
    let (v, _, conv) = chat_with_hello(app, agent, json!({}), client_id, text).await;
    (v, conv)
}

/// As `chat_with`, the visitor saying `hello` first; also returns their `welcome` (its token).
pub async fn chat_with_hello(
    app: &TestApp,
    agent: &mut Client,
    hello: Value,
    client_id: &str,
    text: &str,
) -> (Client, Value, String) {
    let (mut v, welcome) = visitor(app, hello).await;
    let conv = say(&mut v, client_id, text).await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (assigned, _) = wait_assigned(agent).await;
    assert_eq!(assigned, conv, "the agent took this visitor's chat");
    (v, welcome, conv)
}

/// Waits for an assignment on an agent console; returns the conversation id.
pub async fn wait_assigned(c: &mut Client) -> (String, Value) {
    let a = c.wait_type("assigned").await;
    (a["conversation"]["id"].as_str().unwrap().to_owned(), a)
}

/// The size of a department's queue, from `GET /v1/queues`.
pub async fn queue_size(addr: SocketAddr, department: &str) -> u64 {
    let (status, queues) = http_get(addr, "/v1/queues", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{queues}");
    queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["department"] == department)
        .and_then(|q| q["size"].as_u64())
        .unwrap_or_else(|| panic!("no queue {department}: {queues}"))
}

/// A REST call with the admin token; returns the status and the JSON body.
pub async fn admin_get(app: &TestApp, path: &str) -> (u16, Value) {
    http_get(app.addr, path, Some(ADMIN_TOKEN)).await
}

/// Waits until an admin GET of `path` answers `status` (for what the server does on its own
/// time: a sweep, a filing).
pub async fn until_status(app: &TestApp, path: &str, status: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while admin_get(app, path).await.0 != status {
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path} never answered {status}"
        );
        tokio::task::yield_now().await;
    }
}

/// A GET answered in plain text (`/metrics`).
pub async fn http_text(addr: SocketAddr, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

pub async fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = tokio::time::timeout(WAIT, req.send())
        .await
        .expect("REST timed out")
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// A REST call with any method, an optional bearer token and JSON body; the status and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    http_with(addr, method, path, token, body, &[]).await.0
}

/// As `http`, with extra request headers; also returns the response's `Set-Cookie`.
pub async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> ((u16, Value), Option<String>) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = reqwest::Client::new().request(method, format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(WAIT, req.send())
        .await
        .expect("REST timed out")
        .unwrap();
    let status = resp.status().as_u16();
    let cookie = resp
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    ((status, body), cookie)
}

/// A REST call with the admin token.
pub async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    http(addr, method, path, Some(ADMIN_TOKEN), body).await
}
