//! An SMTP sink that records the mail a server sends.

use super::*;

/// A mail server for tests: speaks just enough SMTP (EHLO, MAIL, RCPT, DATA, QUIT) on a free
/// port of 127.0.0.1 and hands over every message it accepts.
pub struct SmtpSink {
    /// `smtp://127.0.0.1:<port>`, for a site's `smtp_url`.
    pub url: String,
    mail_rx: tokio::sync::mpsc::Receiver<Mail>,
}

/// A message the sink accepted: its recipients and its data (headers and body).
#[derive(Debug)]
pub struct Mail {
    pub to: Vec<String>,
    pub data: String,
    /// The credentials the client authenticated with (`AUTH PLAIN`, decoded: user, password).
    pub auth: Option<(String, String)>,
}

/// How an `SmtpSink` behaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct SinkMode {
    /// Offers `AUTH PLAIN` and requires it before mail.
    pub auth: bool,
    /// Refuses every recipient (550).
    pub refuse: bool,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_with(SinkMode::default()).await
    }

    pub async fn start_with(mode: SinkMode) -> Self {
        use base64::Engine;
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let (mail_tx, mail_rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mail_tx = mail_tx.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    let mut to = Vec::new();
                    let mut auth = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let answer: &[u8] = match verb.as_str() {
                            "EHLO" if mode.auth => {
                                b"250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
                            }
                            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                            "AUTH" => {
                                // AUTH PLAIN <base64 of "\0user\0password">
                                let given = line.split_whitespace().nth(2).unwrap_or("");
                                let raw = base64::engine::general_purpose::STANDARD
                                    .decode(given)
                                    .unwrap_or_default();
                                let parts: Vec<String> = String::from_utf8_lossy(&raw)
                                    .split('\0')
                                    .map(str::to_owned)
                                    .collect();
                                if let [_, user, password] = &parts[..] {
                                    auth = Some((user.clone(), password.clone()));
                                }
                                b"235 accepted\r\n"
                            }
                            "MAIL" if mode.auth && auth.is_none() => b"530 authenticate first\r\n",
                            "RCPT" if mode.refuse => b"550 no such mailbox\r\n",
                            "RCPT" => {
                                to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                                b"250 OK\r\n"
                            }
                            "DATA" => {
                                let _ = write.write_all(b"354 go on\r\n").await;
                                let mut data = String::new();
                                while let Ok(Some(l)) = lines.next_line().await {
                                    if l == "." {
                                        break;
                                    }
                                    data.push_str(&l);
                                    data.push('\n');
                                }
                                let mail = Mail {
                                    to: std::mem::take(&mut to),
                                    data,
                                    auth: auth.clone(),
                                };
                                let _ = mail_tx.send(mail).await;
                                b"250 queued\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 OK\r\n",
                        };
                        if write.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { url, mail_rx }
    }

    /// The next message accepted, within the test timeout.
    pub async fn next(&mut self) -> Mail {
        tokio::time::timeout(WAIT, self.mail_rx.recv())
            .await
            .expect("an email within the timeout")
            .expect("the sink runs")
    }
}
