//! Outgoing email through a site's SMTP server (`smtp_url`, `smtp_password`, `email_from`):
//! answers to offline messages and transcripts visitors ask for. `lettre` speaks SMTP
//! (STARTTLS or TLS from the start, with rustls, already in the binary for Redis and webhooks);
//! one connection per message, which is all a support team's volume needs.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::directory::model::SiteConfig;

/// How long one message may take to hand over before the request fails.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The site has no `smtp_url`.
    #[error("this site has no SMTP server configured (smtp_url)")]
    NotConfigured,
    /// The recipient is not an email address.
    #[error("not an email address: {0}")]
    BadAddress(String),
    /// The SMTP server refused or could not be reached; the cause is logged, not shown.
    #[error("the email could not be sent")]
    Failed(String),
}

/// Sends a plain-text email from the site's sender to `to`; answers go to `reply_to` when
/// given (a ticket's reply address, `inbound`).
pub async fn send(
    site: &SiteConfig,
    to: &str,
    reply_to: Option<&str>,
    subject: &str,
    body: String,
) -> Result<(), EmailError> {
    let (Some(url), Some(from)) = (&site.smtp_url, &site.email_from) else {
        return Err(EmailError::NotConfigured);
    };
    let from: Mailbox = from
        .parse()
        .map_err(|_| EmailError::Failed("email_from does not parse".into()))?;
    let to: Mailbox = to
        .trim()
        .parse()
        .map_err(|_| EmailError::BadAddress(to.to_owned()))?;
    let mut message = Message::builder().from(from).to(to);
    if let Some(r) = reply_to.and_then(|r| r.parse::<Mailbox>().ok()) {
        message = message.reply_to(r);
    }
    let message = message
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| EmailError::Failed(e.to_string()))?;
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| EmailError::Failed(format!("smtp_url: {e}")))?
        .timeout(Some(SEND_TIMEOUT));
    if let Some(password) = &site.smtp_password {
        let user = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split_once('@'))
            .map(|(user, _)| user.to_owned())
            .unwrap_or_default();
        let password = String::from_utf8_lossy(password.expose()).into_owned();
        transport = transport.credentials(Credentials::new(user, password));
    }
    transport
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| EmailError::Failed(e.to_string()))
}

/// A chat as its visitor saw it, as plain text: one line per message, notice and introduction,
/// with the time (UTC) and the author's name. Notes and internal events are left out.
pub fn transcript_text(site_name: &str, events: &[crate::model::Event]) -> String {
    use crate::model::EventBody;
    let mut out = format!("Your chat with {site_name}\n\n");
    for e in events {
        let (at, who, text) = match &e.body {
            EventBody::Message {
                at,
                author_name,
                text,
                attachment,
                ..
            } => (
                *at,
                author_name.clone().unwrap_or_else(|| "You".into()),
                // A file is named, not attached: the copy is the conversation's words.
                match attachment {
                    Some(a) => format!("[file: {}]", a.name),
                    None => text.clone(),
                },
            ),
            EventBody::Notice { at, text, .. } | EventBody::Assigned { at, text, .. } => {
                (*at, String::new(), text.clone())
            }
            _ => continue,
        };
        let at = jiff::Timestamp::from_millisecond(at)
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        if who.is_empty() {
            out.push_str(&format!("[{at}] {text}\n"));
        } else {
            out.push_str(&format!("[{at}] {who}: {text}\n"));
        }
    }
    out
}
