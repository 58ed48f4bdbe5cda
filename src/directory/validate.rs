//! How the directory checks itself before it is stored or installed: each part of a site on
//! its own, then what must hold across the parts and the sites. Errors name the field by its
//! path in the configuration file, as the REST views and the file both use it.

use std::collections::HashSet;

use super::model::{
    AgentConfig, CannedResponse, DepartmentConfig, SiteConfig, TriggerConfig, WEBHOOK_EVENTS,
    WebhookConfig, WidgetConfig,
};
use crate::model::DeptId;
use crate::routing::policy::RoutingPolicy;
use crate::validation::{ConfigError, bad, check_name, is_email, is_language_tag};

/// Checks the whole directory: each site, and what must be unique across sites (site ids;
/// agent tokens, since a token signs in without naming its site). Addresses are unique within
/// a site only (sign-in tries each account with the address), so one site's admin cannot learn
/// another's addresses.
pub fn validate_sites(sites: &[SiteConfig]) -> Result<(), ConfigError> {
    if sites.is_empty() {
        return Err(bad("sites", "at least one site is required"));
    }
    let mut site_ids = HashSet::new();
    let mut hashes = HashSet::new();
    for (i, site) in sites.iter().enumerate() {
        let at = format!("sites[{i}]");
        check_name(&format!("{at}.id"), &site.id.0)?;
        if !site_ids.insert(&site.id) {
            return Err(bad(format!("{at}.id"), "duplicate site id"));
        }
        site.validate(&at, &mut hashes)?;
    }
    Ok(())
}

impl SiteConfig {
    /// Checks what serde cannot: ranges, references and uniqueness within the site. `hashes`
    /// collects the agents' token hashes across sites.
    pub(super) fn validate(
        &self,
        at: &str,
        hashes: &mut HashSet<String>,
    ) -> Result<(), ConfigError> {
        let site = self;
        if site.allowed_origins.is_empty() {
            return Err(bad(
                format!("{at}.allowed_origins"),
                "at least one origin: browsers on any other page are refused",
            ));
        }
        if !is_language_tag(&site.default_locale) {
            return Err(bad(
                format!("{at}.default_locale"),
                "a language tag such as en, ru or pt-BR",
            ));
        }
        for (j, o) in site.allowed_origins.iter().enumerate() {
            // Scheme and host[:port] only (`^https?://[^/]+$`, as the OpenAPI document
            // says): an origin never has a path.
            let host = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .unwrap_or_default();
            if host.is_empty() || host.contains('/') {
                return Err(bad(
                    format!("{at}.allowed_origins[{j}]"),
                    "must look like https://host[:port] without a trailing slash",
                ));
            }
        }
        for (name, value) in [
            ("sso_issuer", &site.sso_issuer),
            ("sso_audience", &site.sso_audience),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.trim().is_empty() || v.chars().count() > 200)
            {
                return Err(bad(format!("{at}.{name}"), "1 to 200 characters"));
            }
        }
        for (name, secret) in [
            ("identity_secret", &site.identity_secret),
            ("sso_secret", &site.sso_secret),
        ] {
            if secret.as_ref().is_some_and(|s| s.char_count() < 16) {
                return Err(bad(
                    format!("{at}.{name}"),
                    "must be at least 16 characters",
                ));
            }
        }
        site.validate_mail(at)?;
        if site.departments.is_empty() {
            return Err(bad(format!("{at}.departments"), "at least one department"));
        }
        let mut dept_ids = HashSet::new();
        for (j, d) in site.departments.iter().enumerate() {
            check_name(&format!("{at}.departments[{j}].id"), &d.id.0)?;
            if !dept_ids.insert(&d.id) {
                return Err(bad(format!("{at}.departments[{j}].id"), "duplicate"));
            }
        }
        if let Some(d) = &site.default_department
            && !dept_ids.contains(d)
        {
            return Err(bad(
                format!("{at}.default_department"),
                format!("no department {d}"),
            ));
        }
        if !(site.inactivity_warning_secs >= 0.0
            && site.inactivity_warning_secs < site.inactivity_timeout_secs)
        {
            return Err(bad(
                format!("{at}.inactivity_warning_secs"),
                "0 (none) up to less than inactivity_timeout_secs",
            ));
        }
        if !(site.inactivity_timeout_secs > 0.0 && site.rating_window_secs >= 0.0) {
            return Err(bad(
                format!("{at}.inactivity_timeout_secs"),
                "timeouts must be positive numbers of seconds",
            ));
        }
        let mut hook_ids = HashSet::new();
        for (j, w) in site.webhooks.iter().enumerate() {
            let at = format!("{at}.webhooks[{j}]");
            w.validate(&at)?;
            if !hook_ids.insert(&w.id) {
                return Err(bad(format!("{at}.id"), "duplicate webhook id"));
            }
        }
        site.widget.validate(&format!("{at}.widget"))?;
        site.routing.validate(&format!("{at}.routing"))?;
        check_overflow(site, at)?;
        for (j, d) in site.departments.iter().enumerate() {
            d.validate(&format!("{at}.departments[{j}]"))?;
        }
        let mut shortcuts = HashSet::new();
        for (j, c) in site.canned.iter().enumerate() {
            let at = format!("{at}.canned[{j}]");
            c.validate(&at)?;
            if !shortcuts.insert(&c.shortcut) {
                return Err(bad(format!("{at}.shortcut"), "duplicate"));
            }
        }
        let mut trigger_ids = HashSet::new();
        for (j, t) in site.triggers.iter().enumerate() {
            let at = format!("{at}.triggers[{j}]");
            t.validate(&at, site, &dept_ids)?;
            if !trigger_ids.insert(&t.id) {
                return Err(bad(format!("{at}.id"), "duplicate trigger id"));
            }
        }
        let mut agent_ids = HashSet::new();
        let mut emails = HashSet::new();
        for (j, a) in site.agents.iter().enumerate() {
            let at = format!("{at}.agents[{j}]");
            a.validate(&at, &dept_ids)?;
            if !agent_ids.insert(&a.id) {
                return Err(bad(format!("{at}.id"), "duplicate agent id"));
            }
            if let Some(hash) = &a.token_sha256
                && !hashes.insert(hash.to_ascii_lowercase())
            {
                return Err(bad(
                    format!("{at}.token_sha256"),
                    "two agents share a token",
                ));
            }
            if let Some(email) = &a.email
                && !emails.insert(email.to_lowercase())
            {
                return Err(bad(format!("{at}.email"), "another agent has it"));
            }
        }
        Ok(())
    }

    /// Outgoing mail: an SMTP address of a known scheme, and a sender with it.
    pub(super) fn validate_mail(&self, at: &str) -> Result<(), ConfigError> {
        if let Some(inbound) = &self.email_inbound
            && (!crate::model::valid_email(inbound) || inbound.contains('+'))
        {
            return Err(bad(
                format!("{at}.email_inbound"),
                "must be a plain address (no +tag): replies@shop.example",
            ));
        }
        let Some(url) = &self.smtp_url else {
            return Ok(());
        };
        let scheme = url.split("://").next().unwrap_or("");
        if !matches!(scheme, "smtp" | "smtps") || url.len() <= scheme.len() + 3 {
            return Err(bad(
                format!("{at}.smtp_url"),
                "must be smtps://user@host[:port] or smtp://[user@]host[:port][?tls=required]",
            ));
        }
        match &self.email_from {
            None => Err(bad(
                format!("{at}.email_from"),
                "required with smtp_url (Name <address>)",
            )),
            Some(f) if f.parse::<lettre::message::Mailbox>().is_err() => Err(bad(
                format!("{at}.email_from"),
                "must be an address, or Name <address>",
            )),
            Some(_) => Ok(()),
        }
    }
}

impl DepartmentConfig {
    /// Its opening hours (the id is checked with the site's others).
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        for (lang, name) in &self.names {
            let code =
                lang.len() >= 2 && lang.len() <= 3 && lang.bytes().all(|b| b.is_ascii_lowercase());
            if !code {
                return Err(bad(
                    format!("{at}.names.{lang}"),
                    "a language code: two or three lowercase letters (ru, de)",
                ));
            }
            if name.trim().is_empty() || name.chars().count() > 100 {
                return Err(bad(
                    format!("{at}.names.{lang}"),
                    "1 to 100 characters, not blank",
                ));
            }
        }
        if let Some(h) = &self.hours {
            h.validate()
                .map_err(|(f, p)| bad(format!("{at}.hours.{f}"), p))?;
        }
        if let Some(r) = &self.routing {
            r.validate(&format!("{at}.routing"))?;
        }
        Ok(())
    }
}

/// A skill's shape: what agents list and chats require (`billing`, `lang:ru`).
fn check_skills(at: &str, skills: &[String]) -> Result<(), ConfigError> {
    if skills.len() > 50 {
        return Err(bad(at, "at most 50 skills"));
    }
    for (i, s) in skills.iter().enumerate() {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        if !ok {
            return Err(bad(
                format!("{at}[{i}]"),
                "1 to 64 letters, digits, '.', '_', ':' or '-' (billing, lang:ru)",
            ));
        }
    }
    Ok(())
}

/// Every overflow target is a department of the site, and every chain ends (no department is
/// reached twice following it).
fn check_overflow(site: &SiteConfig, at: &str) -> Result<(), ConfigError> {
    fn target<'a>(site: &'a SiteConfig, d: &'a DepartmentConfig) -> Option<&'a DeptId> {
        d.routing
            .as_ref()
            .and_then(|r| r.overflow_to.as_ref())
            .or(site.routing.overflow_to.as_ref())
            .filter(|t| *t != &d.id)
    }
    if let Some(t) = &site.routing.overflow_to
        && site.department(t).is_none()
    {
        return Err(bad(
            format!("{at}.routing.overflow_to"),
            format!("no department {t}"),
        ));
    }
    for (j, d) in site.departments.iter().enumerate() {
        let field = format!("{at}.departments[{j}].routing.overflow_to");
        let mut seen = vec![&d.id];
        let mut next = target(site, d);
        while let Some(t) = next {
            let Some(dept) = site.department(t) else {
                return Err(bad(field, format!("no department {t}")));
            };
            if seen.contains(&t) {
                return Err(bad(
                    field,
                    format!("the overflow chain from {} comes back to {t}", d.id),
                ));
            }
            seen.push(t);
            next = target(site, dept);
        }
    }
    Ok(())
}

impl RoutingPolicy {
    /// Its numbers, skills and rules.
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if self.priority.is_some_and(|p| p > 9) {
            return Err(bad(format!("{at}.priority"), "0 to 9"));
        }
        let secs = [
            ("age_boost_secs", self.age_boost_secs, 1.0),
            ("max_wait_secs", self.max_wait_secs, 1.0),
            ("sla_wait_secs", self.sla_wait_secs, 1.0),
            ("sla_first_response_secs", self.sla_first_response_secs, 1.0),
            ("widen_after_secs", self.widen_after_secs, 0.0),
            ("sticky_days", self.sticky_days, 0.0),
            ("sticky_wait_secs", self.sticky_wait_secs, 0.0),
            ("accept_secs", self.accept_secs, 5.0),
            ("first_reply_secs", self.first_reply_secs, 5.0),
        ];
        for (name, value, min) in secs {
            if value.is_some_and(|v| !(v >= min && v <= 1e7)) {
                return Err(bad(format!("{at}.{name}"), format!("{min} to 10000000")));
            }
        }
        if self.max_tries.is_some_and(|n| !(1..=20).contains(&n)) {
            return Err(bad(format!("{at}.max_tries"), "1 to 20"));
        }
        if self
            .sla_warn_share
            .is_some_and(|s| !(0.1..=1.0).contains(&s))
        {
            return Err(bad(format!("{at}.sla_warn_share"), "0.1 to 1"));
        }
        check_skills(
            &format!("{at}.skills"),
            self.skills.as_deref().unwrap_or(&[]),
        )?;
        let rules = self.rules.as_deref().unwrap_or(&[]);
        if rules.len() > 50 {
            return Err(bad(format!("{at}.rules"), "at most 50 rules"));
        }
        for (i, r) in rules.iter().enumerate() {
            let at = format!("{at}.rules[{i}]");
            if r.priority.is_some_and(|p| p > 9) {
                return Err(bad(format!("{at}.priority"), "0 to 9"));
            }
            if r.url
                .as_ref()
                .is_some_and(|u| u.is_empty() || u.len() > 2000)
            {
                return Err(bad(format!("{at}.url"), "1 to 2000 characters"));
            }
            check_skills(&format!("{at}.skills"), &r.skills)?;
            check_skills(&format!("{at}.optional_skills"), &r.optional_skills)?;
            if !crate::auth::attributes_valid(&r.attributes) {
                return Err(bad(
                    format!("{at}.attributes"),
                    "at most 10; keys of 1 to 32 a-z, 0-9 or _; values of 1 to 100 characters",
                ));
            }
        }
        Ok(())
    }
}

impl WebhookConfig {
    /// Its id, URL, secret, events and retry window.
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let w = self;
        check_name(&format!("{at}.id"), &w.id)?;
        if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
            return Err(bad(format!("{at}.url"), "must be an http(s) URL"));
        }
        if w.secret.char_count() < 16 {
            return Err(bad(
                format!("{at}.secret"),
                "must be at least 16 characters",
            ));
        }
        if w.previous_secret
            .as_ref()
            .is_some_and(|s| s.char_count() < 16)
        {
            return Err(bad(
                format!("{at}.previous_secret"),
                "must be at least 16 characters",
            ));
        }
        for (k, e) in w.events.iter().enumerate() {
            if !WEBHOOK_EVENTS.contains(&e.as_str()) {
                return Err(bad(
                    format!("{at}.events[{k}]"),
                    format!("unknown event {e}; one of {}", WEBHOOK_EVENTS.join(", ")),
                ));
            }
        }
        if w.retry_for_secs.is_nan() || w.retry_for_secs <= 0.0 {
            return Err(bad(format!("{at}.retry_for_secs"), "must be positive"));
        }
        Ok(())
    }
}

impl WidgetConfig {
    /// Its colour and the ids of the pre-chat form's fields.
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let c = &self.color;
        if c.len() != 7 || !c.starts_with('#') || hex::decode(&c[1..]).is_err() {
            return Err(bad(format!("{at}.color"), "must be #rrggbb"));
        }
        for (j, f) in self
            .prechat
            .iter()
            .flat_map(|p| p.fields.iter())
            .enumerate()
        {
            check_name(&format!("{at}.prechat.fields[{j}].id"), &f.id)?;
        }
        Ok(())
    }
}

impl CannedResponse {
    /// A usable shortcut and some text.
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        check_name(&format!("{at}.shortcut"), &self.shortcut)?;
        if self.text.trim().is_empty() {
            return Err(bad(format!("{at}.text"), "must not be empty"));
        }
        Ok(())
    }
}

impl TriggerConfig {
    /// Its id, timings, text, UTM tags, and the agent and department it names in `site`.
    pub(super) fn validate(
        &self,
        at: &str,
        site: &SiteConfig,
        dept_ids: &HashSet<&DeptId>,
    ) -> Result<(), ConfigError> {
        let t = self;
        check_name(&format!("{at}.id"), &t.id)?;
        if !(0.0..=86_400.0).contains(&t.time_on_page_secs) {
            return Err(bad(
                format!("{at}.time_on_page_secs"),
                "must be 0 to 86400 seconds",
            ));
        }
        if t.message.trim().is_empty() || t.messages.values().any(|m| m.trim().is_empty()) {
            return Err(bad(format!("{at}.message"), "must not be empty"));
        }
        if let Some(a) = &t.as_agent
            && site.agent(a).is_none()
        {
            return Err(bad(format!("{at}.as_agent"), format!("no agent {a}")));
        }
        if let Some(d) = &t.department
            && !dept_ids.contains(d)
        {
            return Err(bad(
                format!("{at}.department"),
                format!("no department {d}"),
            ));
        }
        if let Some(r) = t.repeat_after_secs
            && !(r > 0.0 && r.is_finite())
        {
            return Err(bad(
                format!("{at}.repeat_after_secs"),
                "must be a positive number of seconds",
            ));
        }
        if let Some(k) = t.utm.keys().find(|k| !k.starts_with("utm_")) {
            return Err(bad(
                format!("{at}.utm"),
                format!("{k}: keys are utm_* tags such as utm_source"),
            ));
        }
        Ok(())
    }
}

impl AgentConfig {
    /// Its id, name, limit, departments (of `dept_ids`), token hash, password hash and address
    /// (uniqueness is the site's to check).
    pub(super) fn validate(
        &self,
        at: &str,
        dept_ids: &HashSet<&DeptId>,
    ) -> Result<(), ConfigError> {
        let a = self;
        check_name(&format!("{at}.id"), &a.id.0)?;
        if a.name.trim().is_empty() {
            return Err(bad(format!("{at}.name"), "a full display name is required"));
        }
        if a.max_concurrent == 0 || a.max_concurrent > 100 {
            return Err(bad(format!("{at}.max_concurrent"), "must be 1 to 100"));
        }
        check_skills(&format!("{at}.skills"), &a.skills)?;
        for (k, d) in a.departments.iter().enumerate() {
            if !dept_ids.contains(d) {
                return Err(bad(
                    format!("{at}.departments[{k}]"),
                    format!("no department {d} in this site"),
                ));
            }
        }
        if let Some(hash) = &a.token_sha256
            && (hash.len() != 64 || hex::decode(hash).is_err())
        {
            return Err(bad(
                format!("{at}.token_sha256"),
                "must be 64 hex digits (sha256 of the token)",
            ));
        }
        if let Some(h) = &a.password_argon2
            && !h.starts_with("$argon2id$")
        {
            return Err(bad(
                format!("{at}.password_argon2"),
                "an argon2id hash in PHC form ($argon2id$v=19$…)",
            ));
        }
        if let Some(email) = &a.email
            && !is_email(email)
        {
            return Err(bad(
                format!("{at}.email"),
                "an address such as ana@example.com",
            ));
        }
        Ok(())
    }
}
