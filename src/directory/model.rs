//! The directory's model: sites with their departments, agents, canned responses, triggers,
//! webhooks and widget. Seeded from the configuration file, then kept in the database
//! (`directory::sql`) and edited over REST. Each part checks itself, naming the field by its
//! path in the file (`sites[0].agents[1].max_concurrent`, `hours.monday[0]`): see
//! `directory::validate`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{AgentId, DeptId, Secret, SiteId};

#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Site)]
pub struct SiteConfig {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._-]{1,64}$", example = "shop")]
    pub id: SiteId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Origins (scheme://host[:port]) allowed to open visitor sockets.
    #[schema(schema_with = origins_schema)]
    pub allowed_origins: Vec<String>,
    /// At least one.
    #[schema(min_items = 1)]
    pub departments: Vec<DepartmentConfig>,
    /// Where a conversation goes when the visitor names no department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub default_department: Option<DeptId>,
    #[serde(default = "default_locale")]
    #[schema(default = "en", pattern = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
    pub default_locale: String,
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// Per-locale overrides of the automatic replies: `[sites.templates.en] queued = "…"`.
    #[serde(default)]
    pub templates: BTreeMap<String, BTreeMap<String, String>>,
    /// An active chat whose visitor said nothing for this long is closed.
    #[serde(default = "default_inactivity")]
    #[schema(exclusive_minimum = 0, default = 900)]
    pub inactivity_timeout_secs: f64,
    /// This long before that close, the visitor is asked whether they are still there (once
    /// per silence); 0: no warning.
    #[serde(default = "default_inactivity_warning")]
    #[schema(minimum = 0, default = 60)]
    pub inactivity_warning_secs: f64,
    /// How long after the close a visitor may still rate the chat.
    #[serde(default = "default_rating_window")]
    #[schema(minimum = 0, default = 86400)]
    pub rating_window_secs: f64,
    /// Verifies `user_hash = hex(HMAC-SHA256(identity_secret, user_id))` from the host page.
    /// At least 16 characters.
    #[serde(default)]
    #[schema(value_type = Option<String>, write_only, pattern = r"^(|[\s\S]{16,})$")]
    pub identity_secret: Option<Secret>,
    /// Single sign-on: agent consoles may present an HS256 JWT signed with it (`sub` the
    /// agent id, `site` this site, `iat` and `exp` required) instead of a password or API token.
    /// At least 16 characters.
    #[serde(default)]
    #[schema(value_type = Option<String>, write_only, pattern = r"^(|[\s\S]{16,})$")]
    pub sso_secret: Option<Secret>,
    /// With `sso_secret`: when set, a token's `iss` must be exactly this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub sso_issuer: Option<String>,
    /// With `sso_secret`: when set, a token's `aud` (a string, or an array) must name this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub sso_audience: Option<String>,
    /// Outgoing email (replies to offline messages, transcripts for visitors):
    /// `smtps://user@smtp.example.com` (TLS from the start), `smtp://user@host:587?tls=required`
    /// (STARTTLS) or `smtp://host:25` (plain, for a local relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^smtps?://.+")]
    pub smtp_url: Option<String>,
    /// The SMTP account's password; write-only like the other secrets.
    #[serde(default)]
    #[schema(value_type = Option<String>, write_only)]
    pub smtp_password: Option<Secret>,
    /// The sender of those emails: `Demo shop <support@shop.example>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_from: Option<String>,
    /// The mailbox visitors' email replies reach Switchboard through (`inbound`): answers by
    /// email go out with `Reply-To: <mailbox>+<ticket>.<tag>@<domain>`, and what comes back
    /// to such an address (through `POST /v1/inbound/email` or the SMTP listener) joins the
    /// ticket. Without it, replies go to `email_from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "support@replies.shop.example")]
    pub email_inbound: Option<String>,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// How the widget looks and what it asks before a chat.
    #[serde(default)]
    pub widget: WidgetConfig,
    /// Canned responses: typing `/shortcut` in the console expands to the text.
    #[serde(default)]
    pub canned: Vec<CannedResponse>,
    /// Proactive-message rules for visitors browsing the site (docs/triggers.md).
    #[serde(default)]
    pub triggers: Vec<TriggerConfig>,
    /// How chats are routed (docs/routing.md); each department may override any field.
    #[serde(
        default,
        skip_serializing_if = "is_default",
        deserialize_with = "crate::routing::policy::policy_object"
    )]
    pub routing: crate::routing::policy::RoutingPolicy,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A canned response of a site. Placeholders `{visitor_name}`, `{visitor_email}`,
/// `{agent_name}`, `{agent_first_name}` and `{site_name}` are filled in by the console.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Canned)]
pub struct CannedResponse {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "hi")]
    pub shortcut: String,
    /// Not blank.
    #[schema(
        pattern = r"\S",
        example = "Hello {visitor_name}! I'm {agent_first_name}, how can I help?"
    )]
    pub text: String,
}

/// A trigger: when a visitor's page view meets every condition, the widget gets a proactive
/// message. The conversation starts when the visitor answers it.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Trigger)]
pub struct TriggerConfig {
    /// Names the rule in "fired once" records; keep it stable.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub id: String,
    /// Glob over the whole page URL: `*` any run of characters, `?` one character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Seconds on the page before the message (fractions allowed).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 86400)]
    pub time_on_page_secs: f64,
    /// Only from this visit on (1 = first visit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_visits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_visits: Option<u32>,
    /// Glob over the referrer of the visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Globs over `utm_*` tags of the landing page, e.g. `{ utm_source = "google" }`.
    #[serde(default)]
    pub utm: BTreeMap<String, String>,
    /// Only while the answering department is open.
    #[serde(default)]
    pub business_hours_only: bool,
    /// The proactive message; not blank.
    #[schema(pattern = r"\S")]
    pub message: String,
    /// Per-locale versions of the message: `{ ru = "…" }`.
    #[serde(default)]
    pub messages: BTreeMap<String, String>,
    /// Sent under this agent's full name; without it, under the department's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub as_agent: Option<AgentId>,
    /// The department that answers when the visitor replies (landing pages → sales).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub department: Option<DeptId>,
    /// Fire again for the same visitor after this long; without it, once per visitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0)]
    pub repeat_after_secs: Option<f64>,
}

/// The widget's appearance and pre-chat form (served publicly at `/v1/widget/<site>`).
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WidgetConfig {
    /// Accent colour, `#rrggbb`.
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub color: String,
    /// Panel title; the widget's localized default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// First line shown in an empty chat; localized default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prechat: Option<PrechatConfig>,
    /// Agents see what the visitor is typing before it is sent (opt-in; off by default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub typing_preview: bool,
}

impl Default for WidgetConfig {
    fn default() -> Self {
        Self {
            color: "#2563eb".into(),
            title: None,
            greeting: None,
            prechat: None,
            typing_preview: false,
        }
    }
}

/// Fields asked before the first message.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PrechatConfig {
    /// When the fields are asked: `before` the first message (a form), or `in_chat` after it
    /// (the visitor types first; a card in the chat asks, once, and may be waved away).
    pub ask: PrechatAsk,
    pub name: bool,
    pub email: bool,
    /// Let the visitor pick a department.
    pub department: bool,
    pub fields: Vec<CustomField>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrechatAsk {
    #[default]
    Before,
    InChat,
}

#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub required: bool,
}

/// A webhook receiver of one site.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Webhook)]
pub struct WebhookConfig {
    /// Names the receiver in the admin API; `hook-<n>` (its place in the file) when absent.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub id: String,
    #[schema(
        pattern = "^https?://",
        example = "https://crm.example.com/hooks/switchboard"
    )]
    pub url: String,
    /// Signs every delivery (`Switchboard-Signature`); at least 16 characters. Write-only:
    /// reads show `secret_set`; a PUT without it keeps the stored one.
    #[schema(value_type = String, write_only, min_length = 16)]
    pub secret: Secret,
    /// The secret being rotated out: while it is set (and until `previous_secret_expires_at`),
    /// each delivery also carries a `v1=` signed with it, after the one signed with `secret`,
    /// so receivers still checking the old secret keep accepting. Write-only like `secret`
    /// (reads show `previous_secret_set`); `null` ends the rotation.
    #[serde(default)]
    #[schema(value_type = Option<String>, write_only, min_length = 16)]
    pub previous_secret: Option<Secret>,
    /// Unix milliseconds after which `previous_secret` no longer signs; none: until removed.
    #[serde(default)]
    pub previous_secret_expires_at: Option<crate::model::Millis>,
    /// Which events to send; see docs/tickets.md.
    #[serde(default = "default_webhook_events")]
    #[schema(schema_with = webhook_events_schema)]
    pub events: Vec<String>,
    /// Retry a failing delivery this long, then keep it as dead.
    #[serde(default = "default_retry_for")]
    #[schema(exclusive_minimum = 0, default = 86400)]
    pub retry_for_secs: f64,
}

/// Every event a webhook may subscribe to.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "ticket.created",
    "ticket.updated",
    "conversation.queued",
    "conversation.assigned",
    "conversation.transferred",
    "conversation.overflowed",
    "conversation.missed",
    "conversation.closed",
    "sla.warning",
    "sla.breached",
];

fn default_webhook_events() -> Vec<String> {
    vec!["ticket.created".into(), "ticket.updated".into()]
}
fn default_retry_for() -> f64 {
    86_400.0
}
fn default_inactivity_warning() -> f64 {
    60.0
}
fn default_inactivity() -> f64 {
    900.0
}
fn default_rating_window() -> f64 {
    86_400.0
}

impl SiteConfig {
    /// Whether pages of this origin may use the widget: its socket, files and settings.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }

    pub fn default_department(&self) -> &DeptId {
        self.default_department
            .as_ref()
            .unwrap_or(&self.departments[0].id)
    }

    pub fn department(&self, id: &DeptId) -> Option<&DepartmentConfig> {
        self.departments.iter().find(|d| &d.id == id)
    }

    pub fn agent(&self, id: &AgentId) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| &a.id == id)
    }

    pub fn trigger(&self, id: &str) -> Option<&TriggerConfig> {
        self.triggers.iter().find(|t| t.id == id)
    }

    /// The department that answers a trigger's message.
    pub fn answering<'a>(&'a self, rule: &'a TriggerConfig) -> &'a DeptId {
        rule.department
            .as_ref()
            .unwrap_or_else(|| self.default_department())
    }

    /// A department's display name (its id when it has none).
    /// Whether a department is inside its business hours at `at` (always, without hours).
    pub fn department_open(&self, id: &DeptId, at: crate::model::Millis) -> bool {
        self.department(id)
            .and_then(|d| d.hours.as_ref())
            .is_none_or(|h| h.is_open(at))
    }

    pub fn department_name(&self, id: &DeptId) -> String {
        self.department(id)
            .and_then(|d| d.name.clone())
            .unwrap_or_else(|| id.0.clone())
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Department)]
pub struct DepartmentConfig {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._-]{1,64}$", example = "support")]
    pub id: DeptId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The name in other languages, by language code: `{ ru = "Продажи" }`. Visitors whose
    /// language is listed see it; others see `name`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = localized_names_schema)]
    pub names: BTreeMap<String, String>,
    /// Per-locale overrides for this department, over the site's.
    #[serde(default)]
    pub templates: BTreeMap<String, BTreeMap<String, String>>,
    /// Opening hours; without them the department is always open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<crate::hours::Hours>,
    /// Routing settings over the site's (`SiteConfig::routing`), field by field.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::routing::policy::optional_policy_object"
    )]
    pub routing: Option<crate::routing::policy::RoutingPolicy>,
}

#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Agent)]
pub struct AgentConfig {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._-]{1,64}$", example = "alice")]
    pub id: AgentId,
    /// Full display name: every message of this agent carries it.
    #[schema(pattern = r"\S", example = "Alice Moreau")]
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub departments: Vec<DeptId>,
    /// The most chats at once; the agent may lower or raise their own limit up to this.
    #[schema(minimum = 1, maximum = 100, example = 3)]
    pub max_concurrent: u32,
    /// What the agent can handle: chats that require a skill go only to agents who have it.
    /// Languages are skills too: `lang:ru` (docs/routing.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["billing", "lang:ru"]))]
    pub skills: Vec<String>,
    /// Signs in to the console with this address and a password set from an invite link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// What the agent may do besides chatting (`agent`, `supervisor`, `admin`).
    #[serde(default)]
    pub role: AgentRole,
    /// A disabled agent cannot sign in and gets no chats; the record and tickets stay.
    #[serde(default)]
    pub disabled: bool,
    /// Hex SHA-256 of the agent's API token (integrations); the token itself is never stored.
    /// In a file it seeds the database, which holds it from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub token_sha256: Option<String>,
    /// An argon2id hash (PHC string) of the console password, to seed the database with; an
    /// admin's invite link sets it otherwise. Never written back or shown.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub password_argon2: Option<String>,
    /// Bumped whenever the agent's credentials change or they are disabled: sockets signed in
    /// under an older one are closed on every node. Kept by the database, never in a file.
    #[serde(skip)]
    pub credentials: i64,
    /// When the credentials last changed (ms): a single-sign-on token issued before it is
    /// refused. Kept by the database.
    #[serde(skip)]
    pub credentials_at: crate::model::Millis,
}

/// An agent's role. Each includes the ones before it.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Deserialize,
    Serialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AgentRole {
    /// Chats within their departments.
    #[default]
    Agent,
    /// Also sees every chat and queue of the site, the supervisor figures, and takes over chats.
    Supervisor,
    /// Also manages the site's directory: agents, departments, hours, canned responses,
    /// triggers, widget and webhooks.
    Admin,
}

impl AgentRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor => "supervisor",
            Self::Admin => "admin",
        }
    }
}

/// `allowed_origins`: at least one `scheme://host[:port]`.
fn origins_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^https?://[^/]+$")),
        )
        .min_items(Some(1))
        .build()
}

/// `events`: a choice among `WEBHOOK_EVENTS`.
fn webhook_events_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(webhook_event_schema())
        .build()
}

/// A department's names by language: `^[a-z]{2,3}$` → a name that is not blank.
fn localized_names_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[a-z]{2,3}$")),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(100))
                .pattern(Some(r"\S"))
                .into(),
        )))
        .build()
}

/// One of `WEBHOOK_EVENTS`.
pub fn webhook_event_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(WEBHOOK_EVENTS.iter().copied()))
        .build()
}

fn default_locale() -> String {
    "en".into()
}
