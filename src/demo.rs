//! The built-in demo, and loading the configuration with it as the fallback: without
//! `--config`, site `demo` on http://localhost:8080 with `support` and `sales` and two agents
//! whose random tokens (and Alice's password) are printed at start-up. Above the directory: it
//! hashes the demo admin's password as accounts do.

use crate::auth::{random_token, token_hash};
use crate::config::{Cli, Config};
use crate::model::AgentId;

/// What the demo prints at start-up so a person can sign in as an agent or call the REST API.
pub struct DemoTokens {
    pub agents: Vec<(AgentId, String)>,
    pub admin: String,
    /// Alice's console password (she is the demo's admin).
    pub password: String,
}

/// Flags and environment over the file (or the demo) over defaults. Returns the demo's agent
/// tokens when the demo configuration is in use.
pub fn load(cli: &Cli) -> anyhow::Result<(Config, Option<DemoTokens>)> {
    let (mut config, demo) = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read configuration {}: {e}", path.display())
            })?;
            let config =
                Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            (config, None)
        }
        None => {
            let (config, tokens) = config();
            (config, Some(tokens))
        }
    };
    config.apply(cli);
    config.validate()?;
    Ok((config, demo))
}

/// The built-in demo: site `demo` on http://localhost:8080 with `support` and `sales` and two
/// agents whose random tokens are returned for printing.
pub fn config() -> (Config, DemoTokens) {
    let alice = random_token();
    let boris = random_token();
    let admin = random_token();
    // Short enough to type: 12 letters and digits.
    let password: String = random_token()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    let text = format!(
        r##"
        admin_token_sha256 = "{}"
        [[sites]]
        id = "demo"
        name = "Demo shop"
        allowed_origins = ["http://localhost:8080", "http://127.0.0.1:8080"]
        default_department = "support"
        widget = {{ color = "#0f766e", title = "Demo shop", prechat = {{ name = true, department = true }} }}
        departments = [{{ id = "support", name = "Support" }}, {{ id = "sales", name = "Sales" }}]

        canned = [
          {{ shortcut = "hi", text = "Hello {{visitor_name}}! I'm {{agent_first_name}}, how can I help?" }},
          {{ shortcut = "wait", text = "One moment please, I'm checking that for you." }},
          {{ shortcut = "bye", text = "Thank you for contacting {{site_name}}. Have a nice day!" }},
        ]

        [[sites.triggers]]
        id = "campaign-landing"
        url = "*/demo/*utm_campaign=*"
        time_on_page_secs = 5
        message = "Hi! Questions about the offer? I'm here to help."
        messages = {{ ru = "Здравствуйте! Есть вопросы о предложении? Я помогу." }}
        as_agent = "alice"
        department = "sales"

        [[sites.agents]]
        id = "alice"
        name = "Alice Moreau"
        email = "alice@demo.test"
        role = "admin"
        password_argon2 = "{}"
        departments = ["support", "sales"]
        max_concurrent = 3
        token_sha256 = "{}"

        [[sites.agents]]
        id = "boris"
        name = "Boris Ivanov"
        email = "boris@demo.test"
        departments = ["support"]
        max_concurrent = 2
        token_sha256 = "{}"
        "##,
        token_hash(&admin),
        crate::directory::accounts::hash_password(&password),
        token_hash(&alice),
        token_hash(&boris)
    );
    let config = Config::from_toml(&text).expect("the demo configuration is valid");
    (
        config,
        DemoTokens {
            agents: vec![("alice".into(), alice), ("boris".into(), boris)],
            admin,
            password,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo configuration is valid and its printed tokens match the stored hashes.
    #[test]
    fn demo_is_valid() {
        let (config, tokens) = config();
        let site = &config.sites[0];
        for (id, token) in tokens.agents {
            assert_eq!(
                site.agent(&id).unwrap().token_sha256.as_deref(),
                Some(token_hash(&token).as_str())
            );
        }
    }
}
