//! The directory's operations in the OpenAPI document. The handlers are generic over the kind
//! of entry (`Entry`), so each kind's five operations are declared here, from its type, by one
//! macro; `http::openapi` adds the variants a read or a `PUT` shows (secrets write-only, the
//! id optional in a `PUT`).

use serde::Serialize;
use utoipa::ToSchema;

use crate::directory::model::{
    AgentConfig, CannedResponse, DepartmentConfig, SiteConfig, TriggerConfig, WebhookConfig,
};
use crate::http::error::{Conflicts, ReadRefusals};

/// `GET /v1/sites`. The handlers answer with the views `Entry::view` makes (secrets left
/// out); these types give the document their shape.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Sites {
    sites: Vec<SiteConfig>,
}

/// The five operations on one kind of entry under a site, and its list's type.
macro_rules! entry_docs {
    ($module:ident, $ty:ty, $list:ident, $field:ident, $collection:literal, $item:literal,
     $noun:literal, [$list_id:literal, $create_id:literal, $get_id:literal, $put_id:literal,
     $delete_id:literal]) => {
        /// A site's entries of one kind.
        #[derive(Serialize, ToSchema)]
        #[allow(dead_code)]
        pub struct $list {
            $field: Vec<$ty>,
        }

        pub mod $module {
            use super::*;

            #[utoipa::path(get, path = $collection, operation_id = $list_id, tag = "Directory",
                summary = concat!("The site's ", $noun, " entries"),
                params(("site" = String, Path, description = "The site's id")),
                security(("admin" = []), ("session" = [])),
                responses((status = 200, description = "List", body = $list), ReadRefusals))]
            #[allow(dead_code)] // Declared for the document only.
            pub fn list() {}

            #[utoipa::path(post, path = $collection, operation_id = $create_id,
                tag = "Directory",
                summary = concat!("Creates a ", $noun, "; in force on every node within a second"),
                params(("site" = String, Path, description = "The site's id")),
                request_body = $ty, security(("admin" = []), ("session" = [])),
                responses((status = 201, description = "Created", body = $ty), ReadRefusals, Conflicts))]
            #[allow(dead_code)] // Declared for the document only.
            pub fn create() {}

            #[utoipa::path(get, path = $item, operation_id = $get_id, tag = "Directory",
                summary = concat!("One ", $noun),
                params(("site" = String, Path, description = "The site's id"),
                    ("id" = String, Path, description = "The entry's id")),
                security(("admin" = []), ("session" = [])),
                responses((status = 200, description = "The entry", body = $ty), ReadRefusals))]
            #[allow(dead_code)] // Declared for the document only.
            pub fn get() {}

            #[utoipa::path(put, path = $item, operation_id = $put_id, tag = "Directory",
                summary = concat!("Replaces a ", $noun, "; in force on every node within a second"),
                params(("site" = String, Path, description = "The site's id"),
                    ("id" = String, Path, description = "The entry's id")),
                request_body = $ty, security(("admin" = []), ("session" = [])),
                responses((status = 200, description = "Replaced", body = $ty), ReadRefusals, Conflicts))]
            #[allow(dead_code)] // Declared for the document only.
            pub fn put() {}

            #[utoipa::path(delete, path = $item, operation_id = $delete_id, tag = "Directory",
                summary = concat!("Deletes a ", $noun),
                params(("site" = String, Path, description = "The site's id"),
                    ("id" = String, Path, description = "The entry's id")),
                security(("admin" = []), ("session" = [])),
                responses((status = 204, description = "Deleted"), ReadRefusals, Conflicts))]
            #[allow(dead_code)] // Declared for the document only.
            pub fn delete() {}
        }
    };
}

entry_docs!(
    departments,
    DepartmentConfig,
    Departments,
    departments,
    "/v1/sites/{site}/departments",
    "/v1/sites/{site}/departments/{id}",
    "department",
    [
        "listDepartments",
        "createDepartment",
        "getDepartment",
        "updateDepartment",
        "deleteDepartment"
    ]
);
entry_docs!(
    agents,
    AgentConfig,
    Agents,
    agents,
    "/v1/sites/{site}/agents",
    "/v1/sites/{site}/agents/{id}",
    "agent",
    [
        "listAgents",
        "createAgent",
        "getAgent",
        "updateAgent",
        "deleteAgent"
    ]
);
entry_docs!(
    canned,
    CannedResponse,
    CannedList,
    canned,
    "/v1/sites/{site}/canned",
    "/v1/sites/{site}/canned/{id}",
    "canned response",
    [
        "listCannedResponses",
        "createCannedResponse",
        "getCannedResponse",
        "updateCannedResponse",
        "deleteCannedResponse"
    ]
);
entry_docs!(
    triggers,
    TriggerConfig,
    Triggers,
    triggers,
    "/v1/sites/{site}/triggers",
    "/v1/sites/{site}/triggers/{id}",
    "trigger",
    [
        "listTriggers",
        "createTrigger",
        "getTrigger",
        "updateTrigger",
        "deleteTrigger"
    ]
);
entry_docs!(
    webhooks,
    WebhookConfig,
    Webhooks,
    webhooks,
    "/v1/sites/{site}/webhooks",
    "/v1/sites/{site}/webhooks/{id}",
    "webhook",
    [
        "listWebhooks",
        "createWebhook",
        "getWebhook",
        "updateWebhook",
        "deleteWebhook"
    ]
);
