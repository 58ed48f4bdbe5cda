//! Visitors as the site sees them: who they are, where they came from, the pages they saw.

use serde::{Deserialize, Serialize};

use super::{Millis, VisitorId};

/// A visitor as presence and routing know them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VisitorProfile {
    pub id: Option<VisitorId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub locale: String,
    /// The browser's IANA time zone, when it said one the server knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// What the User-Agent says: browser, system, kind of device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<super::Device>,
    /// The country of the visitor's address (`geo`), when the deployment can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<super::Country>,
    pub first_seen: Millis,
    pub last_seen: Millis,
    /// Visits so far: a visit starts on first contact or after 30 minutes of absence.
    pub visits: u32,
    /// When the current visit started (time on site is measured from it).
    #[serde(default)]
    pub visit_started: Millis,
    /// Pages seen, oldest first (the last `MAX_PAGES`).
    #[serde(default)]
    pub pages: Vec<PageVisit>,
    /// `utm_*` tags of the landing page.
    #[serde(default)]
    pub utm: std::collections::BTreeMap<String, String>,
    /// The host site vouched for `user_id` with a valid `user_hash`.
    #[serde(default)]
    pub verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// What the host site vouched for about `user_id` (signed with it): routing rules match
    /// these (`tier = "gold"`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
    /// Answers to the site's custom pre-chat fields.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fields: std::collections::BTreeMap<String, String>,
}

/// A visitor on the site now, as agents and sales see them (`GET /v1/visitors`, the console's
/// live list).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LiveVisitor {
    #[schema(value_type = String)]
    pub site: super::SiteId,
    #[schema(value_type = String)]
    pub id: VisitorId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    pub referrer: Option<String>,
    pub utm: std::collections::BTreeMap<String, String>,
    pub locale: String,
    /// The visitor's IANA time zone, when known: the console shows their local time
    pub timezone: Option<String>,
    /// Browser, system and kind of device, from the User-Agent
    pub device: Option<super::Device>,
    /// The country of the visitor's address, when the deployment can tell
    pub country: Option<super::Country>,
    pub time_on_site_secs: u64,
    pub pages_this_visit: Vec<PageVisit>,
    pub visits: u32,
    pub returning: bool,
    /// The open conversation, if any
    #[schema(value_type = Option<String>)]
    pub in_chat: Option<super::ConvId>,
}

/// Absence after which the next contact counts as a new visit.
pub const VISIT_GAP_MS: Millis = 30 * 60 * 1000;

/// How many pages a profile remembers.
pub const MAX_PAGES: usize = 50;

/// A page the visitor saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PageVisit {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub at: Millis,
}

impl VisitorProfile {
    /// A profile that knows only the visitor's id.
    pub fn with_id(id: VisitorId) -> Self {
        Self {
            id: Some(id),
            ..Self::default()
        }
    }

    /// Records a page view (consecutive repeats of one URL count once).
    pub fn visit(&mut self, url: &str, title: Option<String>, at: Millis) {
        if self.pages.last().is_some_and(|p| p.url == url) {
            return;
        }
        if self.utm.is_empty() {
            self.utm = utm_tags(url);
        }
        self.pages.push(PageVisit {
            url: url.to_owned(),
            title,
            at,
        });
        if self.pages.len() > MAX_PAGES {
            self.pages.remove(0);
        }
    }
}

/// The `utm_*` query parameters of a URL, percent-decoded.
pub fn utm_tags(url: &str) -> std::collections::BTreeMap<String, String> {
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(""))
        .unwrap_or("");
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.starts_with("utm_") && k.len() <= 32)
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                // Byte-wise: slicing the str here could split a multibyte character.
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).chars().take(200).collect()
}

/// An address's shape as visitors type it: something, `@`, a domain with a dot, no spaces, at
/// most 320 bytes. Delivery proves the rest.
pub fn valid_email(email: &str) -> bool {
    email.len() <= 320
        && email
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'))
        && !email.contains(char::is_whitespace)
}
