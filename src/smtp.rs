//! The optional SMTP listener for visitors' email replies (`inbound_smtp_listen`): enough of
//! SMTP (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) for an MTA or a sender to
//! hand over mail for a ticket's reply address, and nothing else. It is no relay and no
//! mailbox: a recipient that is not a reply address with a valid tag is refused at `RCPT`
//! (550), so nothing is accepted that has nowhere to go.
//!
//! Written here rather than taken from a crate: the subset is small, and the SMTP server
//! crates either run a thread per connection or bring a framework; this one is a tokio task
//! per session with the server's usual bounds. Bounded like every anonymous door: sessions at
//! once (`MAX_SESSIONS`, more are told 421), a deadline per command (`COMMAND_TIMEOUT`) and per
//! session (`SESSION_TIMEOUT`), line length, recipients per message, message size
//! (`inbound::max_bytes`), and errors per session. No TLS: put it on a private network behind
//! the MTA that owns the domain (which does TLS, spam filtering and retries), or on loopback.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::model::SiteId;
use crate::shutdown::Shutdown;

/// Sessions served at once; one more is told `421` and closed.
const MAX_SESSIONS: usize = 32;
/// How long the client may take to send one command (or one line of a message).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one session may last.
const SESSION_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest line read (RFC 5321 allows 1,000 with CRLF; some clients send more).
const MAX_LINE: usize = 4096;
/// Recipients per message.
const MAX_RECIPIENTS: usize = 10;
/// Refused commands before the session is closed.
const MAX_ERRORS: u32 = 10;

/// Accepts sessions until shutdown.
pub async fn serve(listener: TcpListener, engine: Engine, mut shutdown: Shutdown) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SESSIONS));
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.recv() => break,
        };
        while sessions.try_join_next().is_some() {}
        let Ok((mut socket, peer)) = accepted else {
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let _ = socket
                .write_all(b"421 4.3.2 Too many sessions, try again later\r\n")
                .await;
            continue;
        };
        let engine = engine.clone();
        let mut stop = shutdown.clone();
        sessions.spawn(async move {
            let (read, write) = socket.split();
            tokio::select! {
                r = tokio::time::timeout(SESSION_TIMEOUT, session(read, write, &engine)) => {
                    if r.is_err() {
                        tracing::info!(peer = %peer.ip(), "smtp session over its time");
                    }
                }
                _ = stop.recv() => {}
            }
            drop(slot);
        });
    }
    sessions.shutdown().await;
}

/// One envelope: its recipients (each a ticket) and nothing else kept.
#[derive(Default)]
struct Envelope {
    from: bool,
    tickets: Vec<(SiteId, String)>,
}

async fn session<R, W>(read: R, mut write: W, engine: &Engine)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let max = crate::inbound::max_bytes(&engine.config());
    let mut lines = BufReader::new(read);
    let mut line = Vec::with_capacity(256);
    let mut envelope = Envelope::default();
    let mut errors = 0;
    if reply(&mut write, "220 switchboard ESMTP ready")
        .await
        .is_err()
    {
        return;
    }
    loop {
        let Ok(Some(())) = read_line(&mut lines, &mut line).await else {
            return;
        };
        let text = String::from_utf8_lossy(&line);
        let command = text.trim_end();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let answer: String = match verb.as_str() {
            "EHLO" => format!(
                "250-switchboard\r\n250-SIZE {max}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING"
            ),
            "HELO" => "250 switchboard".into(),
            "MAIL" => match size_given(command) {
                Some(n) if n > max => "552 5.3.4 Message too big".into(),
                _ if !upper_starts(command, "MAIL FROM:") => {
                    "501 5.5.4 Syntax: MAIL FROM:<address>".into()
                }
                _ => {
                    envelope = Envelope {
                        from: true,
                        ..Envelope::default()
                    };
                    "250 2.1.0 OK".into()
                }
            },
            "RCPT" => {
                if !envelope.from {
                    "503 5.5.1 MAIL first".into()
                } else if !upper_starts(command, "RCPT TO:") {
                    "501 5.5.4 Syntax: RCPT TO:<address>".into()
                } else if envelope.tickets.len() >= MAX_RECIPIENTS {
                    "452 4.5.3 Too many recipients".into()
                } else {
                    let address = command[8..].split_whitespace().next().unwrap_or("");
                    match engine.reply_ticket(address) {
                        Some(t) => {
                            if !envelope.tickets.contains(&t) {
                                envelope.tickets.push(t);
                            }
                            "250 2.1.5 OK".into()
                        }
                        None => "550 5.1.1 No such reply address".into(),
                    }
                }
            }
            "DATA" => {
                if envelope.tickets.is_empty() {
                    "503 5.5.1 RCPT first".into()
                } else {
                    if reply(&mut write, "354 End data with <CR><LF>.<CR><LF>")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let Some(raw) = read_data(&mut lines, &mut line, max).await else {
                        return;
                    };
                    let answer = match raw {
                        Ok(raw) => deliver(engine, &envelope.tickets, &raw).await,
                        Err(TooBig) => "552 5.3.4 Message too big".into(),
                    };
                    envelope = Envelope::default();
                    answer
                }
            }
            "RSET" => {
                envelope = Envelope::default();
                "250 2.0.0 OK".into()
            }
            "NOOP" => "250 2.0.0 OK".into(),
            "VRFY" => "252 2.5.0 Cannot verify".into(),
            "QUIT" => {
                let _ = reply(&mut write, "221 2.0.0 Bye").await;
                return;
            }
            _ => "502 5.5.1 Not implemented".into(),
        };
        if answer.starts_with('5') {
            errors += 1;
        }
        if reply(&mut write, &answer).await.is_err() {
            return;
        }
        if errors >= MAX_ERRORS {
            let _ = reply(&mut write, "421 4.7.0 Too many errors").await;
            return;
        }
    }
}

/// Files the message into each ticket it was sent to; the answer to the DATA.
async fn deliver(engine: &Engine, tickets: &[(SiteId, String)], raw: &[u8]) -> String {
    let Some(mail) = crate::inbound::parse(raw) else {
        return "554 5.6.0 Not a message (no sender)".into();
    };
    for (site, ticket) in tickets {
        match engine.email_received(site, ticket, &mail).await {
            Ok(Some(_)) => {}
            Ok(None) => return "550 5.1.1 No such ticket".into(),
            Err(e) if e.code == crate::protocol::ErrorCode::RateLimited => {
                return format!("552 5.2.2 {}", e.message);
            }
            Err(e) => {
                tracing::warn!(cause = %e, site = %site, ticket, "email reply not filed");
                return "451 4.3.0 Not filed now, try again later".into();
            }
        }
    }
    "250 2.0.0 Filed".into()
}

struct TooBig;

/// A message's lines up to the lone `.`, dot-unstuffed. None when the client left; too big
/// ones are read to their end and refused.
async fn read_data<R: AsyncRead + Unpin>(
    lines: &mut BufReader<R>,
    line: &mut Vec<u8>,
    max: usize,
) -> Option<Result<Vec<u8>, TooBig>> {
    let mut raw = Vec::new();
    let mut too_big = false;
    loop {
        read_line(lines, line).await.ok()??;
        let content = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))?;
        if content == b"." {
            return Some(if too_big { Err(TooBig) } else { Ok(raw) });
        }
        let content = content.strip_prefix(b".").unwrap_or(content);
        if raw.len() + content.len() + 2 > max {
            too_big = true;
            raw = Vec::new();
        }
        if !too_big {
            raw.extend_from_slice(content);
            raw.extend_from_slice(b"\r\n");
        }
    }
}

/// One line (with its end) into `line`, within `COMMAND_TIMEOUT` and `MAX_LINE`. Ok(None)
/// at the end of the stream; an error for a line too long or too slow.
async fn read_line<R: AsyncRead + Unpin>(
    lines: &mut BufReader<R>,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<()>> {
    line.clear();
    let mut limited = (&mut *lines).take(MAX_LINE as u64);
    let n = tokio::time::timeout(COMMAND_TIMEOUT, limited.read_until(b'\n', line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "command timeout"))??;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long",
        ));
    }
    Ok(Some(()))
}

async fn reply<W: AsyncWrite + Unpin>(write: &mut W, text: &str) -> std::io::Result<()> {
    write.write_all(text.as_bytes()).await?;
    write.write_all(b"\r\n").await?;
    write.flush().await
}

fn upper_starts(command: &str, prefix: &str) -> bool {
    command.len() >= prefix.len() && command[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `SIZE=n` of a MAIL command, if given.
fn size_given(command: &str) -> Option<usize> {
    command
        .split_whitespace()
        .find_map(|p| {
            p.get(..5)
                .filter(|k| k.eq_ignore_ascii_case("SIZE="))
                .map(|_| &p[5..])
        })?
        .parse()
        .ok()
}
