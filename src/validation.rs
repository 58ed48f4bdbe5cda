//! Checks shared by the server's settings (`config`) and the directory's model
//! (`directory::model`): an error that names the field by its path
//! (`sites[0].agents[1].max_concurrent`), and the shapes of ids, addresses and language tags.
//! A leaf: it imports nothing of the crate.

/// A configuration error that names the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {field}: {problem}")]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
}

pub fn bad(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Ids end up in Redis keys and URLs: keep them to a safe alphabet.
pub fn check_name(field: &str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            "use 1-64 characters from a-z, A-Z, 0-9, '-', '_', '.'",
        ))
    }
}

/// An address's shape: something, `@`, a domain with a dot; no spaces. Delivery proves the rest.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A BCP 47 language tag's shape: a 2-3 letter language, then subtags of 1-8 letters or
/// digits (`en`, `pt-BR`, `zh-Hant-TW`).
pub fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang = parts.next().unwrap_or_default();
    (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}
