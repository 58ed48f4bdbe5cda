//! What a visitor's User-Agent says about their device (browser and its major version, system,
//! desktop / phone / tablet / bot), and the country their address is in: shown to agents in
//! the visitor's profile and the live list.
//!
//! The User-Agent is read here, by a few ordered checks on its tokens, not with a crate: the
//! maintained parsers (uap-core's regex list, woothee) bring the `regex` crate and its Unicode
//! tables, or a YAML of hundreds of patterns, into a binary that must stay under 15 MB, for the
//! dozen browsers and five systems that make up what a support team sees. Anything else is
//! `other`. The fields are one byte each, so the profile every idle visitor's session keeps
//! hardly grows.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Browser {
    Chrome,
    Edge,
    Firefox,
    Safari,
    Opera,
    SamsungInternet,
    Yandex,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Os {
    Windows,
    Macos,
    Ios,
    Android,
    Linux,
    ChromeOs,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Desktop,
    Phone,
    Tablet,
    Bot,
}

/// A visitor's device, as their User-Agent describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Device {
    pub browser: Browser,
    /// The browser's major version, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u16>,
    pub os: Os,
    pub kind: DeviceKind,
}

impl Device {
    /// Reads a User-Agent header. The order of the checks matters: Edge, Opera, Samsung and
    /// Yandex all say "Chrome" too, Chrome says "Safari", iPads may say "Macintosh".
    pub fn from_user_agent(ua: &str) -> Device {
        let has = |t: &str| ua.contains(t);
        let lower = ua.to_ascii_lowercase();
        let (browser, version) = [
            ("EdgA/", Browser::Edge),
            ("EdgiOS/", Browser::Edge),
            ("Edg/", Browser::Edge),
            ("OPR/", Browser::Opera),
            ("OPT/", Browser::Opera),
            ("SamsungBrowser/", Browser::SamsungInternet),
            ("YaBrowser/", Browser::Yandex),
            ("FxiOS/", Browser::Firefox),
            ("Firefox/", Browser::Firefox),
            ("CriOS/", Browser::Chrome),
            ("Chrome/", Browser::Chrome),
            ("Chromium/", Browser::Chrome),
        ]
        .into_iter()
        .find_map(|(token, b)| version_after(ua, token).map(|v| (b, v)))
        .or_else(|| {
            // Safari names its version apart from its engine's.
            (has("Safari/") && has("AppleWebKit/"))
                .then(|| (Browser::Safari, version_after(ua, "Version/").flatten()))
        })
        .unwrap_or((Browser::Other, None));
        let os = if has("Windows NT") || has("Windows Phone") {
            Os::Windows
        } else if has("iPhone") || has("iPad") || has("iPod") {
            Os::Ios
        } else if has("CrOS") {
            Os::ChromeOs
        } else if has("Android") {
            Os::Android
        } else if has("Macintosh") || has("Mac OS X") {
            Os::Macos
        } else if has("Linux") || has("X11") {
            Os::Linux
        } else {
            Os::Other
        };
        let bot = [
            "bot",
            "crawler",
            "spider",
            "headlesschrome",
            "curl/",
            "wget/",
            "python-",
        ]
        .iter()
        .any(|t| lower.contains(t));
        let kind = if bot {
            DeviceKind::Bot
        } else if has("iPad") || has("Tablet") || (os == Os::Android && !has("Mobile")) {
            DeviceKind::Tablet
        } else if has("Mobile") || has("iPhone") || has("iPod") || has("Windows Phone") {
            DeviceKind::Phone
        } else {
            DeviceKind::Desktop
        };
        Device {
            browser,
            version,
            os,
            kind,
        }
    }
}

/// `Some(major version)` after `token` when the token is there (`Some(None)` without digits).
fn version_after(ua: &str, token: &str) -> Option<Option<u16>> {
    let at = ua.find(token)? + token.len();
    let digits: String = ua[at..].chars().take_while(char::is_ascii_digit).collect();
    Some(digits.parse().ok())
}

/// What the visitor's socket request said about them besides the `hello`: their User-Agent
/// header, and the country of their address (`geo`).
#[derive(Clone, Debug, Default)]
pub struct VisitorClient {
    pub user_agent: Option<String>,
    pub country: Option<Country>,
}

/// An ISO 3166-1 alpha-2 country code (`NO`), two bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Country([u8; 2]);

impl Country {
    /// Two ASCII letters, upper-cased; `XX` and `T1` (Cloudflare's unknown and Tor) are none.
    pub fn parse(s: &str) -> Option<Country> {
        let b = s.trim().as_bytes();
        if b.len() != 2 || !b.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        let code = [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()];
        (&code != b"XX").then_some(Country(code))
    }
}

impl TryFrom<String> for Country {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Country::parse(&s).ok_or_else(|| format!("{s}: not a country code"))
    }
}

impl From<Country> for String {
    fn from(c: Country) -> String {
        String::from_utf8_lossy(&c.0).into_owned()
    }
}

impl utoipa::PartialSchema for Country {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[A-Z]{2}$"))
            .description(Some("ISO 3166-1 alpha-2 country code"))
            .into()
    }
}

impl utoipa::ToSchema for Country {}

#[cfg(test)]
mod tests {
    use super::*;

    /// User-Agents as browsers send them today, and what they say.
    #[test]
    fn user_agents_read_as_expected() {
        use Browser as B;
        use DeviceKind as K;
        for (ua, browser, version, os, kind) in [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                B::Chrome,
                Some(131),
                Os::Windows,
                K::Desktop,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
                B::Edge,
                Some(131),
                Os::Windows,
                K::Desktop,
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                B::Safari,
                Some(18),
                Os::Macos,
                K::Desktop,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                B::Safari,
                Some(18),
                Os::Ios,
                K::Phone,
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
                B::Chrome,
                Some(131),
                Os::Ios,
                K::Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36",
                B::SamsungInternet,
                Some(27),
                Os::Android,
                K::Phone,
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                B::Chrome,
                Some(131),
                Os::Android,
                K::Tablet,
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
                B::Firefox,
                Some(133),
                Os::Linux,
                K::Desktop,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 YaBrowser/24.12.0.0 Safari/537.36",
                B::Yandex,
                Some(24),
                Os::Windows,
                K::Desktop,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
                B::Opera,
                Some(115),
                Os::Windows,
                K::Desktop,
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                B::Chrome,
                Some(131),
                Os::ChromeOs,
                K::Desktop,
            ),
            (
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                B::Other,
                None,
                Os::Other,
                K::Bot,
            ),
            ("curl/8.5.0", B::Other, None, Os::Other, K::Bot),
            ("", B::Other, None, Os::Other, K::Desktop),
        ] {
            assert_eq!(
                Device::from_user_agent(ua),
                Device {
                    browser,
                    version,
                    os,
                    kind
                },
                "{ua}"
            );
        }
    }

    #[test]
    fn country_codes_are_two_letters() {
        assert_eq!(Country::parse("no").map(String::from), Some("NO".into()));
        assert_eq!(Country::parse("XX"), None);
        assert_eq!(Country::parse("NOR"), None);
        assert_eq!(Country::parse("1A"), None);
        assert!(serde_json::from_str::<Country>("\"<s>\"").is_err());
    }
}
