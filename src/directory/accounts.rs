//! Agent credentials: argon2id password hashes, random session, invite and API tokens (kept
//! as SHA-256 only), and the sign-in limiter.
//!
//! `argon2` (RustCrypto) with its default parameters (19 MiB, 2 passes): the OWASP-recommended
//! argon2id setting, in PHC strings that carry their own parameters, so they can be raised
//! later without invalidating stored hashes.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use dashmap::DashMap;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest: argon2 takes any length, but nobody needs a megabyte of password.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// How long a console sign-in lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 86_400);
/// How long an invite (or reset) link works.
pub const INVITE_TTL: Duration = Duration::from_secs(7 * 86_400);

/// An argon2id PHC string of the password.
pub fn hash_password(password: &str) -> String {
    // 16 random bytes, the salt length argon2's own generator uses.
    let salt =
        SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes encode as a salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password with default parameters")
        .to_string()
}

/// Whether the password matches the stored hash (constant time inside argon2).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// An email address as accounts are looked up and limited by: trimmed, lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Passwords of the allowed length that lists of leaked passwords put near the top (NIST SP
/// 800-63B asks for a check against such a list rather than composition rules).
const COMMON: &[&str] = &[
    "1234567890",
    "0123456789",
    "0987654321",
    "12345678910",
    "123456789a",
    "a123456789",
    "1q2w3e4r5t",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "qwertyuiop",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "asdfghjkl1",
    "zxcvbnm123",
    "password12",
    "password123",
    "password1!",
    "password1234",
    "passw0rd123",
    "p@ssw0rd123",
    "iloveyou12",
    "iloveyou123",
    "welcome123",
    "letmein123",
    "football123",
    "baseball123",
    "sunshine123",
    "princess123",
    "dragon1234",
    "monkey1234",
    "starwars123",
    "superman123",
    "whatever123",
    "trustno1234",
    "administrator",
    "admin12345",
    "admin123456",
    "changeme123",
    "abcdefghij",
    "abcd123456",
    "abc1234567",
    "computer123",
    "internet123",
    "michael123",
    "charlie123",
    "jennifer123",
    "123qweasdzxc",
    "qazwsxedcrfv",
    "1234qwerasdf",
    "switchboard",
    "switchboard1",
];

/// Checks a new password: its length, that it is not a common one, and not one character
/// repeated or a run (`aaaaaaaaaa`, `abcdefghijk`, `9876543210`). No composition rules.
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(format!("at least {MIN_PASSWORD_CHARS} characters"));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(format!("at most {MAX_PASSWORD_CHARS} characters"));
    }
    let lower = password.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let distinct = chars.iter().collect::<std::collections::HashSet<_>>().len();
    let steps: Vec<i64> = chars
        .windows(2)
        .map(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0])))
        .collect();
    let run = steps.iter().all(|s| *s == steps[0]) && steps[0].abs() <= 1;
    if COMMON.contains(&lower.as_str()) || distinct < 4 || run {
        return Err("too common or too easy to guess; choose another".into());
    }
    Ok(())
}

/// Sign-in attempts allowed per window, per address and per client IP.
const PER_EMAIL: u32 = 5;
const PER_IP: u32 = 20;
const WINDOW: Duration = Duration::from_secs(60);
/// Bound on the counters kept; past it, expired ones are dropped first and then the attempt is
/// refused rather than the map grown (a flood of distinct addresses cannot exhaust memory).
const MAX_ENTRIES: usize = 100_000;

/// Counts sign-in attempts in fixed windows, per address and per client IP, on this node.
#[derive(Default)]
pub struct SignInLimiter {
    counts: DashMap<String, (Instant, u32)>,
}

impl SignInLimiter {
    /// Counts one attempt; false when the address or the IP is over its limit.
    pub fn allow(&self, email: &str, ip: IpAddr) -> bool {
        let now = Instant::now();
        if !self.room(now) {
            return false;
        }
        let email_ok = self.hit(format!("e:{}", normalize_email(email)), now, PER_EMAIL);
        let ip_ok = self.hit(format!("i:{ip}"), now, PER_IP);
        email_ok && ip_ok
    }

    /// Counts one attempt that names no address (an invite); false when the IP is over.
    pub fn allow_ip(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        self.room(now) && self.hit(format!("i:{ip}"), now, PER_IP)
    }

    /// Drops the counters of windows that have ended (hourly, and whenever the map is full).
    pub fn prune(&self) {
        let now = Instant::now();
        self.counts.retain(|_, (start, _)| now - *start < WINDOW);
    }

    /// Whether another counter fits, after dropping expired ones if the map is full.
    fn room(&self, now: Instant) -> bool {
        if self.counts.len() >= MAX_ENTRIES {
            self.counts.retain(|_, (start, _)| now - *start < WINDOW);
        }
        self.counts.len() < MAX_ENTRIES
    }

    fn hit(&self, key: String, now: Instant, limit: u32) -> bool {
        let mut entry = self.counts.entry(key).or_insert((now, 0));
        if now - entry.0 >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash verifies its own password only, and is argon2id.
    #[test]
    fn passwords() {
        let h = hash_password("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse battery!"));
        assert!(!verify_password("not a hash", "x"));
        assert!(check_password("short").is_err());
        for weak in [
            "aaaaaaaaaa",
            "Password123",
            "abcdefghijk",
            "9876543210",
            "ababababab",
        ] {
            assert!(check_password(weak).is_err(), "{weak}");
        }
        assert!(check_password("correct horse battery").is_ok());
    }

    /// The sixth attempt for one address within a minute is refused; another address is not.
    #[test]
    fn limiter() {
        let l = SignInLimiter::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..5 {
            assert!(l.allow("a@x.test", ip));
        }
        assert!(!l.allow("A@x.test", ip));
        assert!(l.allow("b@x.test", ip));
    }
}
