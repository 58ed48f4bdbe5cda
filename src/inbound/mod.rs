//! Email replies back into their ticket.
//!
//! An answer by email from the inbox goes out with `Reply-To: <inbound>+<ticket>.<sig>@<domain>`
//! (`reply_address`), where `<inbound>@<domain>` is the site's `email_inbound` mailbox and
//! `<sig>` an HMAC of the site and ticket under the server's secret: nobody can make up an
//! address that files mail into a ticket they were not written from. The visitor's answer
//! arrives raw (RFC 5322 with MIME) through `POST /v1/inbound/email` (the way mail providers
//! and an MTA's pipe hand mail over) or the built-in SMTP listener (`crate::smtp`); `parse` reads it
//! with `mail-parser`, finds the ticket by the address, keeps the new text (`trim_quoted`
//! drops the quoted conversation and the signature) and the attachments, and the engine adds
//! it to the ticket (`Engine::email_received`).

use mail_parser::{MessageParser, MimeHeaders};

use crate::auth::Keys;
use crate::config::Config;
use crate::model::SiteId;

/// The most a message may weigh, whichever door it comes through: the largest file allowed in
/// chats, base64-encoded, and the words around it.
pub fn max_bytes(config: &Config) -> usize {
    config.attachments.max_bytes * 4 / 3 + 1024 * 1024
}

/// The files of one message, at most.
pub const MAX_FILES: usize = 10;

/// `inbound+TICKET.TAG@domain` for the site's `email_inbound` mailbox.
pub fn reply_address(keys: &Keys, site: &SiteId, inbound: &str, ticket: &str) -> Option<String> {
    let (local, domain) = inbound.trim().rsplit_once('@')?;
    let local = local.split('+').next().unwrap_or(local);
    Some(format!(
        "{local}+{ticket}.{}@{domain}",
        keys.reply_tag(site, ticket)
    ))
}

/// The site and ticket an address names, if it is a reply address of one of `sites`
/// (`(site, email_inbound)`) with a tag that holds. Case does not matter: mail systems may
/// fold it.
pub fn ticket_of<'a>(
    keys: &Keys,
    sites: impl IntoIterator<Item = (&'a SiteId, &'a str)>,
    address: &str,
) -> Option<(SiteId, String)> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, domain) = address.rsplit_once('@')?;
    let (base, token) = local.split_once('+')?;
    let (ticket, given) = token.rsplit_once('.')?;
    let ticket = ticket.to_ascii_uppercase();
    if ticket.is_empty() || !ticket.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    sites.into_iter().find_map(|(site, inbound)| {
        let (l, d) = inbound.trim().rsplit_once('@')?;
        let l = l.split('+').next().unwrap_or(l);
        let expected = keys.reply_tag(site, &ticket);
        (l.eq_ignore_ascii_case(base)
            && d.eq_ignore_ascii_case(domain)
            // Both are hex of a MAC: comparing them in constant time keeps it unguessable.
            && constant_eq(expected.as_bytes(), given.to_ascii_lowercase().as_bytes()))
        .then(|| (site.clone(), ticket.clone()))
    })
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A message as it matters to a ticket.
#[derive(Debug)]
pub struct Inbound {
    /// The sender's address.
    pub from: String,
    pub from_name: Option<String>,
    /// Every address the message was sent to (To, Cc, and the delivery headers MTAs add).
    pub recipients: Vec<String>,
    /// Its `Message-ID`, or one made from its sender, date, subject and text (a retried
    /// delivery is filed once).
    pub message_id: Option<String>,
    /// The new text, without the quoted conversation.
    pub text: String,
    pub files: Vec<InboundFile>,
}

#[derive(Debug)]
pub struct InboundFile {
    pub name: String,
    pub data: Vec<u8>,
}

/// Reads a raw message. None when it is not one (no headers, no sender).
pub fn parse(raw: &[u8]) -> Option<Inbound> {
    let msg = MessageParser::default().parse(raw)?;
    let from = msg.from()?.first()?;
    let from_address = from.address()?.trim().to_owned();
    let mut recipients = Vec::new();
    for list in [msg.to(), msg.cc()].into_iter().flatten() {
        recipients.extend(list.iter().filter_map(|a| a.address()).map(str::to_owned));
    }
    for name in ["Delivered-To", "X-Original-To", "Envelope-To"] {
        for h in msg.header_values(name) {
            if let Some(t) = h.as_text() {
                recipients.push(t.trim().to_owned());
            }
        }
    }
    let text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let files = msg
        .attachments()
        .take(MAX_FILES)
        .map(|part| InboundFile {
            name: part.attachment_name().unwrap_or("file").to_owned(),
            data: part.contents().to_vec(),
        })
        .collect();
    // Without a Message-ID (rare), what identifies the message: sender, date, subject and
    // text, so a relay's retry is still filed once.
    let message_id = msg.message_id().map(str::to_owned).or_else(|| {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for part in [
            from_address.as_str(),
            &msg.date().map(|d| d.to_rfc3339()).unwrap_or_default(),
            msg.subject().unwrap_or(""),
            &text,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        Some(format!(
            "<{}@switchboard>",
            hex::encode(&h.finalize()[..16])
        ))
    });
    Some(Inbound {
        from: from_address,
        from_name: from
            .name()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty()),
        recipients,
        message_id,
        text: trim_quoted(&text),
        files,
    })
}

/// The part of a reply that is new: what comes before the quoted conversation ("On … wrote:"
/// and the `>` lines, Outlook's "-----Original Message-----" or "From:" block) and before the
/// signature ("-- "). All of it when nothing is left (a message that only quotes).
pub fn trim_quoted(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let next_quoted = lines
            .get(i + 1)
            .is_some_and(|n| n.trim_start().starts_with('>'));
        if t.starts_with('>')
            || *line == "-- "
            || t == "--"
            || t.starts_with("-----Original Message")
            || t.starts_with("-----Исходное сообщение")
            || t.starts_with("________________________________")
            || is_attribution(t)
                && (next_quoted || i + 1 == lines.len() || lines[i + 1].trim().is_empty())
            || (t.starts_with("From:") || t.starts_with("От:"))
                && i > 0
                && lines[i - 1].trim().is_empty()
        {
            end = i;
            break;
        }
    }
    // Quoted lines follow their attribution ("Пн, 7 дек. 2026 г. в 09:00, Shop <…>:"),
    // whatever its language: the line before them that ends with a colon goes too.
    if lines
        .get(end)
        .is_some_and(|l| l.trim_start().starts_with('>'))
        && let Some(j) = (0..end).rev().find(|&j| !lines[j].trim().is_empty())
        && lines[j].trim_end().ends_with(':')
    {
        end = j;
    }
    let kept = lines[..end].join("\n").trim().to_owned();
    if kept.is_empty() {
        text.trim().to_owned()
    } else {
        kept
    }
}

/// "On Mon, 7 Dec 2026 at 09:00, Vera <vera@example.com> wrote:" and its kin in the languages
/// the console speaks and the common mail clients write.
fn is_attribution(line: &str) -> bool {
    let l = line.to_lowercase();
    (l.starts_with("on ") && l.ends_with("wrote:"))
        || l.ends_with("написал:")
        || l.ends_with("написал(а):")
        || l.ends_with("пишет:")
        || (l.starts_with("le ") && l.ends_with("a écrit :"))
        || (l.starts_with("am ") && l.ends_with("schrieb:"))
        || (l.starts_with("el ") && l.ends_with("escribió:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply address names its site and ticket; a changed ticket or tag names nothing.
    #[test]
    fn reply_addresses_hold_and_cannot_be_made_up() {
        let secret = Keys::new(crate::model::Secret::new(
            "server-secret-0123456789".to_owned(),
        ));
        let site = SiteId("shop".into());
        let other = SiteId("other".into());
        let ticket = "01JX0ABCDEFGHJKMNPQRSTVWXY";
        let addr = reply_address(&secret, &site, "support@replies.shop.example", ticket).unwrap();
        assert!(
            addr.starts_with("support+01JX0ABCDEFGHJKMNPQRSTVWXY."),
            "{addr}"
        );
        let sites = [
            (&other, "support@replies.shop.example"),
            (&site, "support@replies.shop.example"),
        ];
        assert_eq!(
            ticket_of(&secret, sites, &addr),
            Some((site.clone(), ticket.to_owned()))
        );
        assert_eq!(
            ticket_of(&secret, sites, &addr.to_lowercase()),
            Some((site.clone(), ticket.to_owned())),
            "a mail system may fold case"
        );
        let forged = addr.replace("01JX0ABC", "01JX0ABD");
        assert_eq!(ticket_of(&secret, sites, &forged), None);
        assert_eq!(
            ticket_of(&secret, sites, "support@replies.shop.example"),
            None
        );
        assert_eq!(
            ticket_of(&secret, sites, &addr.replace("replies.", "x.")),
            None
        );
        let other_key = Keys::new(crate::model::Secret::new(
            "another-secret-0123456789".to_owned(),
        ));
        assert_eq!(ticket_of(&other_key, sites, &addr), None);
    }

    #[test]
    fn quoted_text_and_signatures_are_trimmed() {
        let gmail = "Yes, Tromsø is fine.\nThanks!\n\nOn Mon, 7 Dec 2026 at 09:00, Shop <support@shop.example> wrote:\n> We ship to Norway.\n> Alice";
        assert_eq!(trim_quoted(gmail), "Yes, Tromsø is fine.\nThanks!");
        let outlook = "Great.\n\n-----Original Message-----\nFrom: Shop\nWe ship.";
        assert_eq!(trim_quoted(outlook), "Great.");
        let outlook_block = "Great.\n\nFrom: Shop <support@shop.example>\nSent: Monday\n\nWe ship.";
        assert_eq!(trim_quoted(outlook_block), "Great.");
        let signed = "Fine.\n-- \nVera\nCEO";
        assert_eq!(trim_quoted(signed), "Fine.");
        let russian =
            "Спасибо!\n\nПн, 7 дек. 2026 г. в 09:00, Shop <support@shop.example>:\n> Доставим.";
        assert_eq!(trim_quoted(russian), "Спасибо!");
        let only_quote = "> We ship to Norway.";
        assert_eq!(trim_quoted(only_quote), "> We ship to Norway.");
        assert_eq!(trim_quoted("Is 5 > 3?\nYes."), "Is 5 > 3?\nYes.");
    }

    /// An HTML-only reply in quoted-printable, its file, the delivery header an MTA added and
    /// its Message-ID; a message with no sender is none.
    #[test]
    fn a_raw_message_reads_into_text_files_and_recipients() {
        let raw = "From: =?UTF-8?Q?Nina_K=C3=B8ie?= <nina@example.com>\r\n\
            To: Shop <support@shop.example>\r\n\
            Delivered-To: support+01ABC.0123456789abcdef@replies.shop.example\r\n\
            Message-ID: <abc@mail.example.com>\r\n\
            Subject: Re: your message\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
            --b\r\n\
            Content-Type: text/html; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\n\
            <p>Tak, Troms=C3=B8 is fine.</p><blockquote>old</blockquote>\r\n\
            --b\r\n\
            Content-Type: application/pdf; name=\"order.pdf\"\r\n\
            Content-Disposition: attachment; filename=\"order.pdf\"\r\n\
            Content-Transfer-Encoding: base64\r\n\r\n\
            JVBERi0xLjQK\r\n\
            --b--\r\n";
        let m = parse(raw.as_bytes()).expect("a message");
        assert_eq!(m.from, "nina@example.com");
        assert_eq!(m.from_name.as_deref(), Some("Nina Køie"));
        assert_eq!(m.message_id.as_deref(), Some("abc@mail.example.com"));
        assert!(
            m.recipients.iter().any(|r| r.starts_with("support+01ABC.")),
            "{:?}",
            m.recipients
        );
        assert!(m.text.starts_with("Tak, Tromsø is fine."), "{:?}", m.text);
        assert_eq!(m.files.len(), 1);
        assert_eq!(m.files[0].name, "order.pdf");
        assert_eq!(m.files[0].data, b"%PDF-1.4\n");
        assert!(parse(b"Subject: no sender\r\n\r\nhi").is_none());
    }
}
