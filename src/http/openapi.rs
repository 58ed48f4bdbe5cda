//! The OpenAPI document, generated from the REST handlers and the types they take and return
//! (utoipa). The server serves the checked-in `openapi.json`, so the generator costs nothing at
//! run time; the test below regenerates it and fails when the file differs.
//! `SWITCHBOARD_WRITE_OPENAPI=1 cargo test --lib openapi` rewrites it.
//!
//! Reads of the directory hide secrets: a site or webhook shows `<secret>_set` instead
//! (`directory::Entry::view`). The document says so from the same lists of secrets, and adds
//! the `PUT` forms whose id may be left out (the path gives it).

use serde_json::{Value, json};
use utoipa::OpenApi;

use super::directory::{self, SITE_SECRETS};
use super::{
    accounts, attachments, audit, health, inbound, privacy, push, supervisor, tickets, widget,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard REST API",
        version = "1",
        description = "The REST API of a Switchboard live-chat server: tickets and their \
            replies, the supervisor's figures and live views, the directory (sites, \
            departments, agents, canned responses, triggers, webhooks), accounts and sign-in, \
            privacy requests, the audit log, files in chats, webhook dead letters, health and \
            metrics. The WebSocket protocol of visitors and agents is described in \
            docs/protocol.md; webhook payloads under `webhooks` here and in docs/tickets.md."
    ),
    paths(
        tickets::list, tickets::one, tickets::set_tags, tickets::set_follow_up, tickets::reply,
        tickets::dead, tickets::dead_one, tickets::retry,
        supervisor::agents, supervisor::queues, supervisor::stats, supervisor::visitors,
        supervisor::watch, supervisor::note, supervisor::take_over,
        privacy::export, privacy::erase, audit::list,
        directory::sites::list_sites, directory::sites::create_site,
        directory::sites::get_site, directory::sites::put_site, directory::sites::delete_site,
        directory::docs::departments::list, directory::docs::departments::create,
        directory::docs::departments::get, directory::docs::departments::put,
        directory::docs::departments::delete,
        directory::docs::agents::list, directory::docs::agents::create, directory::docs::agents::get,
        directory::docs::agents::put, directory::docs::agents::delete,
        directory::docs::canned::list, directory::docs::canned::create, directory::docs::canned::get,
        directory::docs::canned::put, directory::docs::canned::delete,
        directory::docs::triggers::list, directory::docs::triggers::create, directory::docs::triggers::get,
        directory::docs::triggers::put, directory::docs::triggers::delete,
        directory::docs::webhooks::list, directory::docs::webhooks::create, directory::docs::webhooks::get,
        directory::docs::webhooks::put, directory::docs::webhooks::delete,
        directory::credentials::invite, directory::credentials::new_token,
        directory::credentials::revoke_token,
        accounts::sign_in, accounts::accept_invite, accounts::session, accounts::sign_out,
        push::key, push::subscribe, push::unsubscribe, inbound::receive,
        attachments::upload, attachments::download, widget::widget_config,
        health::healthy, health::ready, super::metrics, super::openapi,
    ),
    components(
        responses(super::error::Failure),
        schemas(
            crate::request::ErrorBody<'_>,
            crate::tickets::webhooks::Payload<'_>,
            tickets::TicketStatus,
            supervisor::Group,
        )
    ),
    modifiers(&Security),
    tags(
        (name = "Tickets", description = "Finished chats and offline messages: listing, search, tags, follow-up, replies by email."),
        (name = "Conversations", description = "Live conversations, for supervisors: read, note, take over."),
        (name = "Files", description = "Images and PDFs sent in chats."),
        (name = "Supervisor", description = "Agents, queues, figures and live visitors."),
        (name = "Directory", description = "Sites, departments and hours, agents, canned responses, triggers, webhooks."),
        (name = "Accounts", description = "Console sign-in, sessions, invites, API tokens and notifications (Web Push)."),
        (name = "Privacy", description = "A visitor's data exported or erased."),
        (name = "Audit", description = "Who changed what, signed in, or asked for a visitor's data."),
        (name = "Webhooks", description = "Deliveries that gave up, and retrying them."),
        (name = "Widget", description = "The widget's public settings."),
        (name = "Health", description = "Liveness, readiness and Prometheus metrics."),
        (name = "Documentation", description = "This document."),
    )
)]
struct ApiDoc;

/// The ways to call: the admin or an agent's API token, a console session, a visitor token.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityScheme;
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The deployment's admin token (its SHA-256 is `admin_token_sha256` in \
                         the settings file), or an agent's API token: an agent's role (agent, \
                         supervisor, admin) decides what it may do, on its own site only.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::request::SESSION_COOKIE,
                "The console's session cookie from `POST /v1/auth/sign-in`. Requests that \
                 change something must also send the session's CSRF token in `X-CSRF-Token`.",
            ))),
        );
        components.add_security_scheme(
            "visitor",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A visitor's token (`v1.<site>.<visitor>.<signature>`, from the \
                         widget's `welcome`): their own conversations only. From a browser, \
                         the Origin must be one the site allows.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as served.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    // `Millis` is an alias of i64: inline the integer rather than a schema named `i64`.
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.remove("i64");
    }
    inline_millis(&mut doc);
    let schemas = &mut doc["components"]["schemas"];
    // What reads show: secrets replaced by whether one is set.
    reads_hide_secrets(schemas, "Site", SITE_SECRETS);
    reads_hide_secrets(schemas, "Webhook", directory::WEBHOOK_SECRETS);
    schemas["Agent"]["properties"]["invite"] = json!({
        "allOf": [{ "$ref": "#/components/schemas/Invite" }],
        "readOnly": true,
        "description": "Only in the answer to creating an agent with an email: the invite \
            link, shown once",
    });
    // A site's entries are read with it and written through their own routes.
    for child in directory::CHILDREN {
        schemas["Site"]["properties"][child]["readOnly"] = json!(true);
    }
    // A PUT may leave the id out: the path gives it.
    let puts = [
        ("/v1/sites/{site}", "Site", "id"),
        ("/v1/sites/{site}/departments/{id}", "Department", "id"),
        ("/v1/sites/{site}/agents/{id}", "Agent", "id"),
        ("/v1/sites/{site}/canned/{id}", "Canned", "shortcut"),
        ("/v1/sites/{site}/triggers/{id}", "Trigger", "id"),
        ("/v1/sites/{site}/webhooks/{id}", "Webhook", "id"),
    ];
    for (path, name, id) in puts {
        let mut update = doc["components"]["schemas"][name].clone();
        // A secret left out keeps the stored one.
        let kept: &[&str] = match name {
            "Site" => SITE_SECRETS,
            "Webhook" => directory::WEBHOOK_SECRETS,
            _ => &[],
        };
        if let Some(required) = update["required"].as_array_mut() {
            required.retain(|r| r != id && !kept.iter().any(|k| r == k));
        }
        if name == "Site" {
            for child in directory::CHILDREN {
                if let Some(p) = update["properties"].as_object_mut() {
                    p.remove(*child);
                }
            }
        }
        let text = format!(
            "In a PUT the `{id}` may be left out: the path gives it; if present it must match."
        );
        update["description"] = json!(text);
        let update_name = format!("{name}Update");
        doc["components"]["schemas"][&update_name] = update;
        doc["paths"][path]["put"]["requestBody"]["content"]["application/json"]["schema"] =
            json!({ "$ref": format!("#/components/schemas/{update_name}") });
    }
    // Every JSON body may be refused before its handler runs: past the body limit (413) or
    // without a JSON content type (415; `extract::json_refused`).
    if let Some(paths) = doc["paths"].as_object_mut() {
        for op in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|p| p.values_mut())
        {
            if op["requestBody"]["content"]["application/json"].is_null() {
                continue;
            }
            for status in ["413", "415", "422"] {
                if op["responses"][status].is_null() {
                    op["responses"][status] = json!({ "$ref": "#/components/responses/Failure" });
                }
            }
        }
    }
    // Every POST takes an Idempotency-Key (`http::idempotency`): a malformed one is 400, a
    // reused one 422, one in flight 409.
    if let Some(paths) = doc["paths"].as_object_mut() {
        for post in paths
            .values_mut()
            .filter_map(|p| p.get_mut("post"))
            .filter_map(Value::as_object_mut)
        {
            let parameter = json!({
                "name": "Idempotency-Key",
                "in": "header",
                "required": false,
                "description": "Retry safely: the same key with the same request is answered \
                    with the first answer (`Idempotent-Replayed: true`) and not carried out \
                    again; kept a day, per credential. docs/api.md.",
                "schema": { "type": "string", "minLength": 1, "maxLength": 255,
                    "pattern": "^[!-~]+$" },
            });
            match post.get_mut("parameters").and_then(Value::as_array_mut) {
                Some(list) => list.push(parameter),
                None => {
                    post.insert("parameters".into(), json!([parameter]));
                }
            }
            if let Some(responses) = post.get_mut("responses").and_then(Value::as_object_mut) {
                for status in ["400", "409", "422"] {
                    responses
                        .entry(status)
                        .or_insert_with(|| json!({ "$ref": "#/components/responses/Failure" }));
                }
            }
        }
    }
    // What the site's webhooks receive (OpenAPI 3.1 `webhooks`), one entry per event.
    for event in crate::directory::model::WEBHOOK_EVENTS {
        doc["webhooks"][event] = json!({ "post": {
            "operationId": format!("webhook.{event}"),
            "summary": format!("`{event}`, to each webhook of the site subscribed to it"),
            "description": "Signed: `Switchboard-Signature: t=<unix seconds>,v1=<hex \
                HMAC-SHA256(secret, \"<t>.<body>\")>`; `Switchboard-Delivery` carries the \
                delivery id. Retried with backoff until a 2xx, for the webhook's \
                `retry_for_secs`; then kept as a dead letter (`GET /v1/webhooks/dead`).",
            "requestBody": { "required": true, "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/WebhookPayload" } } } },
            "responses": { "2XX": { "description": "Accepted; any other answer is retried" } },
        }});
    }
    doc
}

/// Replaces each reference to the `i64` schema with the integer it names.
fn inline_millis(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("$ref").and_then(Value::as_str) == Some("#/components/schemas/i64") {
                o.remove("$ref");
                o.insert("type".into(), json!("integer"));
                o.insert("format".into(), json!("int64"));
                o.entry("description")
                    .or_insert_with(|| json!("Unix milliseconds"));
            }
            o.values_mut().for_each(inline_millis);
        }
        Value::Array(a) => a.iter_mut().for_each(inline_millis),
        _ => {}
    }
}

/// A read of `name` shows `<secret>_set` for each secret, never the secret.
fn reads_hide_secrets(schemas: &mut Value, name: &str, secrets: &[&str]) {
    for secret in secrets {
        schemas[name]["properties"][format!("{secret}_set")] = json!({
            "type": "boolean",
            "readOnly": true,
            "description": format!("Whether `{secret}` is set (reads never show it)"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The served document is the generated one: a change to a handler or a type that the
    /// checked-in file does not show fails here.
    #[test]
    fn the_served_document_is_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/openapi.json");
        let generated = serde_json::to_string_pretty(&document()).expect("serializes") + "\n";
        if std::env::var_os("SWITCHBOARD_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("writes the document");
        }
        let served = std::fs::read_to_string(path).expect("reads the document");
        assert!(
            served == generated,
            "src/http/openapi.json differs from what the handlers and types generate; \
             run SWITCHBOARD_WRITE_OPENAPI=1 cargo test --lib openapi and commit the file"
        );
    }
}
