//! Files sent in chats (images and PDFs), kept in the record database beside the tickets: every
//! node reads them, a backup holds them, and they go when their visitor is erased or when they
//! pass the tickets' retention.
//!
//! The type of a file is read from its first bytes (`sniff`), never taken from the sender: a
//! page or an SVG renamed `.png` is refused, so nothing served from here can run script.

use crate::db::{Database, RecordError};
use crate::model::{AttachmentRef, ConvId, Millis, SiteId, VisitorId};

/// The type a file's first bytes show, if it is one of `config::FILE_KINDS` (of which
/// `attachments.types` allows a subset).
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let kind = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        "image/gif"
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else if bytes.starts_with(b"%PDF-") {
        "application/pdf"
    } else {
        return None;
    };
    Some(kind)
}

/// A file name fit to show and to send back in `Content-Disposition`: the last path part,
/// without control characters or quotes, at most 120 characters; "file" when nothing is left.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control() && !is_format(*c) && !matches!(c, '"' | '<' | '>'))
        .take(120)
        .collect();
    let clean = clean.trim().to_owned();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        "file".into()
    } else {
        clean
    }
}

/// Unicode format characters (category Cf): invisible, and the bidirectional ones reorder what
/// is shown (`a\u{202E}gnp.exe` reads as `aexe.png`).
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// A file checked against `attachments` in the configuration: allowed type, allowed size.
pub struct File<'a> {
    pub name: String,
    pub content_type: &'static str,
    pub data: &'a [u8],
}

/// Why a file is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Larger than `max_bytes` (which is given).
    TooLarge(usize),
    /// Not an allowed type (by its bytes).
    Unsupported,
}

impl<'a> File<'a> {
    pub fn check(
        name: &str,
        data: &'a [u8],
        rules: &crate::config::Attachments,
    ) -> std::result::Result<Self, Refused> {
        if data.len() > rules.max_bytes || rules.max_bytes == 0 {
            return Err(Refused::TooLarge(rules.max_bytes));
        }
        let content_type = sniff(data)
            .filter(|k| rules.types.iter().any(|t| t == k))
            .ok_or(Refused::Unsupported)?;
        Ok(Self {
            name: clean_name(name),
            content_type,
            data,
        })
    }
}

/// A file on its way in.
pub struct Upload<'a> {
    pub site: &'a SiteId,
    pub conversation: &'a ConvId,
    /// Whose conversation it is: erasing them erases the file.
    pub visitor: &'a VisitorId,
    /// `visitor:<id>` or `agent:<id>`.
    pub author: String,
    /// The sender's id for this message: a retried upload finds the file it stored.
    pub client_id: &'a str,
    pub name: String,
    pub content_type: &'static str,
    pub data: &'a [u8],
    pub at: Millis,
}

/// A stored file and who may see it.
pub struct Stored {
    pub site: SiteId,
    pub conversation: ConvId,
    pub visitor: VisitorId,
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// The attachments table. Cheap to clone.
#[derive(Clone)]
pub struct Attachments {
    db: Database,
}

type Result<T> = std::result::Result<T, RecordError>;

impl Attachments {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Stores a file, or finds the one a previous try of the same message stored.
    pub async fn put(&self, up: &Upload<'_>) -> Result<AttachmentRef> {
        let _turn = self.db.write_turn().await;
        let id = ulid::Ulid::new().to_string();
        let inserted = sqlx::query(
            "INSERT INTO attachments (id, site, conversation, visitor, author, client_id, name, \
             content_type, size, created_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11) ON CONFLICT (site, conversation, author, client_id) DO NOTHING",
        )
        .bind(&id)
        .bind(&up.site.0)
        .bind(&up.conversation.0)
        .bind(&up.visitor.0)
        .bind(&up.author)
        .bind(up.client_id)
        .bind(&up.name)
        .bind(up.content_type)
        .bind(up.data.len() as i64)
        .bind(up.at)
        .bind(up.data)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(AttachmentRef {
                id,
                name: up.name.clone(),
                content_type: up.content_type.to_owned(),
                size: up.data.len() as u64,
            });
        }
        let row: (String, String, String, i64) = sqlx::query_as(
            "SELECT id, name, content_type, size FROM attachments WHERE site = $1 AND \
             conversation = $2 AND author = $3 AND client_id = $4",
        )
        .bind(&up.site.0)
        .bind(&up.conversation.0)
        .bind(&up.author)
        .bind(up.client_id)
        .fetch_one(self.db.pool())
        .await?;
        Ok(AttachmentRef {
            id: row.0,
            name: row.1,
            content_type: row.2,
            size: row.3.max(0) as u64,
        })
    }

    pub async fn get(&self, id: &str) -> Result<Option<Stored>> {
        let row: Option<(String, String, String, String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT site, conversation, visitor, name, content_type, data FROM attachments \
             WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(
            |(site, conversation, visitor, name, content_type, data)| Stored {
                site: SiteId(site),
                conversation: ConvId(conversation),
                visitor: VisitorId(visitor),
                name,
                content_type,
                data,
            },
        ))
    }

    /// How many files a conversation holds.
    pub async fn count(&self, site: &SiteId, conversation: &ConvId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM attachments WHERE site = $1 AND conversation = $2",
        )
        .bind(&site.0)
        .bind(&conversation.0)
        .fetch_one(self.db.pool())
        .await?;
        Ok(n.max(0) as u64)
    }

    /// Removes a file whose message was never stored.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query("DELETE FROM attachments WHERE id = $1")
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Every file of a visitor's conversations (a privacy request).
    pub async fn erase_visitor(&self, site: &SiteId, visitor: &VisitorId) -> Result<u64> {
        let _turn = self.db.write_turn().await;
        Ok(
            sqlx::query("DELETE FROM attachments WHERE site = $1 AND visitor = $2")
                .bind(&site.0)
                .bind(&visitor.0)
                .execute(self.db.pool())
                .await?
                .rows_affected(),
        )
    }

    /// Files sent before `before` (the tickets' retention).
    pub async fn expire(&self, before: Millis) -> Result<u64> {
        let _turn = self.db.write_turn().await;
        Ok(sqlx::query("DELETE FROM attachments WHERE created_at < $1")
            .bind(before)
            .execute(self.db.pool())
            .await?
            .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The type comes from the bytes: markup under an image's name is refused.
    #[test]
    fn sniffs_types_from_content() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0"), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a.."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"%PDF-1.7"), Some("application/pdf"));
        assert_eq!(sniff(b"<svg xmlns='http://www.w3.org/2000/svg'>"), None);
        assert_eq!(sniff(b"<!DOCTYPE html><script>"), None);
        assert_eq!(sniff(b""), None);
    }

    /// Size and type are checked against the configuration; an empty file is no image.
    #[test]
    fn checks_files_against_the_rules() {
        let rules = crate::config::Attachments {
            max_bytes: 16,
            types: vec!["image/png".into()],
            max_per_conversation: 1,
        };
        let png = b"\x89PNG\r\n\x1a\n1234";
        let file = File::check("a/b.png", png, &rules).unwrap();
        assert_eq!(
            (file.name.as_str(), file.content_type),
            ("b.png", "image/png")
        );
        assert_eq!(
            File::check("x.pdf", b"%PDF-1.4", &rules).err(),
            Some(Refused::Unsupported)
        );
        assert_eq!(
            File::check("x.png", &[0x89; 17], &rules).err(),
            Some(Refused::TooLarge(16))
        );
        assert_eq!(
            File::check("x.png", b"", &rules).err(),
            Some(Refused::Unsupported)
        );
    }

    /// Paths, quotes and control characters never reach a header or a page.
    #[test]
    fn cleans_file_names() {
        assert_eq!(clean_name("C:\\Users\\me\\photo.png"), "photo.png");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("a\"b\r\n.pdf"), "ab.pdf");
        assert_eq!(clean_name(".."), "file");
        // Issue 24.18: a right-to-left override showed `a\u{202E}gnp.exe` as `aexe.png`.
        assert_eq!(clean_name("a\u{202E}gnp.exe"), "agnp.exe");
        assert_eq!(clean_name("x\u{200B}y\u{2066}.pdf"), "xy.pdf");
        assert_eq!(clean_name(""), "file");
        assert_eq!(clean_name(&"x".repeat(300)).chars().count(), 120);
    }
}
