//! The console's HTTP side: signing in with a cookie, CSRF, invites.

use std::collections::VecDeque;
use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http;

use super::*;

/// A console signed in with an address and password: its session cookie and CSRF token.
pub struct Console {
    pub addr: SocketAddr,
    /// `sb_session=…`, as a Cookie header carries it.
    pub cookie: String,
    pub csrf: String,
    /// What sign-in answered: site, agent, name, role.
    pub me: Value,
}

impl Console {
    /// Signs in; the refusal's status and body when it fails.
    pub async fn sign_in(
        addr: SocketAddr,
        email: &str,
        password: &str,
    ) -> Result<Console, (u16, Value)> {
        let body = json!({"email": email, "password": password});
        Self::post(addr, "/v1/auth/sign-in", body).await
    }

    /// Sets a password from an invite link's token, which signs in.
    pub async fn accept_invite(
        addr: SocketAddr,
        token: &str,
        password: &str,
    ) -> Result<Console, (u16, Value)> {
        let body = json!({"token": token, "password": password});
        Self::post(addr, "/v1/auth/invite", body).await
    }

    /// A request that signs in when it succeeds: the console with its cookie and CSRF token.
    async fn post(addr: SocketAddr, path: &str, body: Value) -> Result<Console, (u16, Value)> {
        let ((status, me), cookie) = http_with(addr, "POST", path, None, Some(body), &[]).await;
        if status != 200 {
            return Err((status, me));
        }
        let cookie = cookie.expect("a session cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        Ok(Console {
            addr,
            cookie: cookie.split(';').next().unwrap().to_owned(),
            csrf: me["csrf"].as_str().unwrap().to_owned(),
            me,
        })
    }

    /// A REST call with the session cookie, and the CSRF token when `csrf`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> (u16, Value) {
        let mut headers = vec![("cookie", self.cookie.as_str())];
        if csrf {
            headers.push(("x-csrf-token", self.csrf.as_str()));
        }
        http_with(self.addr, method, path, None, body, &headers)
            .await
            .0
    }

    /// The agent socket, authenticated by the cookie (a page of this server opens it).
    pub async fn socket(&self) -> Result<Client, String> {
        self.socket_from(&format!("http://{}", self.addr)).await
    }

    /// The agent socket with the cookie, opened by a page of `origin`.
    pub async fn socket_from(&self, origin: &str) -> Result<Client, String> {
        let mut req = format!("ws://{}/v1/agent", self.addr)
            .into_client_request()
            .unwrap();
        let h = req.headers_mut();
        h.insert(http::header::COOKIE, self.cookie.parse().unwrap());
        h.insert(http::header::ORIGIN, origin.parse().unwrap());
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let mut c = Client {
            ws,
            pending: VecDeque::new(),
        };
        c.send(json!({"type": "hello", "status": "online"})).await;
        let first = c
            .wait_for("welcome or error", |v| {
                v["type"] == "welcome" || v["type"] == "error"
            })
            .await;
        if first["type"] == "welcome" {
            Ok(c)
        } else {
            Err(first.to_string())
        }
    }
}

/// The token of an invite link's URL (`/console/#invite=TOKEN`).
pub fn invite_token(answer: &Value) -> String {
    answer["invite"]["url"]
        .as_str()
        .and_then(|u| u.split("#invite=").nth(1))
        .unwrap_or_else(|| panic!("an invite link: {answer}"))
        .to_owned()
}
