//! Automatic replies, per locale: English and Russian ship with the binary; sites and departments
//! override any of them in configuration. `{agent}`, `{position}`, `{minutes}` (the estimate's
//! point) and `{range}` (its range, `3–6`) are filled in.

use crate::directory::model::SiteConfig;
use crate::model::DeptId;

/// Which reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    Connected,
    Queued,
    Offline,
    Transferring,
    Requeued,
    Overflowed,
    Reassigned,
    InactivityWarning,
    ClosedByAgent,
    ClosedByVisitor,
    ClosedInactive,
}

impl Template {
    pub fn key(self) -> &'static str {
        match self {
            Template::Connected => "connected",
            Template::Queued => "queued",
            Template::Offline => "offline",
            Template::Transferring => "transferring",
            Template::Requeued => "requeued",
            Template::Overflowed => "overflowed",
            Template::Reassigned => "reassigned",
            Template::InactivityWarning => "inactivity_warning",
            Template::ClosedByAgent => "closed_by_agent",
            Template::ClosedByVisitor => "closed_by_visitor",
            Template::ClosedInactive => "closed_inactive",
        }
    }

    fn builtin(self, lang: &str) -> &'static str {
        match (lang, self) {
            ("ru", Template::Connected) => "Вас приветствует {agent}. Чем можем помочь?",
            ("ru", Template::Queued) => {
                "Спасибо! Вы {position}-й в очереди, ответим примерно через {range} мин."
            }
            ("ru", Template::Offline) => {
                "Сейчас нет свободных операторов. Оставьте e-mail, и мы ответим вам письмом."
            }
            ("ru", Template::Transferring) => "Передаём ваш чат коллеге, минуту…",
            ("ru", Template::Requeued) => {
                "Оператор отключился. Вы снова в очереди первым, скоро ответим."
            }
            ("ru", Template::Overflowed) => {
                "Все операторы здесь заняты: передаём ваш чат в «{department}», там ответят быстрее."
            }
            ("ru", Template::Reassigned) => {
                "Оператор не успел ответить. Вы первым в очереди к следующему, скоро ответим."
            }
            ("ru", Template::InactivityWarning) => {
                "Вы ещё здесь? Если вы не ответите, чат закроется через {minutes} мин."
            }
            ("ru", Template::ClosedByAgent) => "Оператор завершил чат. Спасибо за обращение!",
            ("ru", Template::ClosedByVisitor) => "Вы завершили чат. Спасибо за обращение!",
            ("ru", Template::ClosedInactive) => {
                "Чат завершён: в нём давно не было сообщений. Напишите, если нужна помощь."
            }
            (_, Template::Connected) => "You are now chatting with {agent}. How can we help?",
            (_, Template::Queued) => {
                "Thanks! You are #{position} in line; an agent will answer in about {range} min."
            }
            (_, Template::Offline) => {
                "No agent is available right now. Leave your email and we will write back."
            }
            (_, Template::Transferring) => "Transferring you to a colleague, one moment…",
            (_, Template::Requeued) => {
                "Your agent was disconnected. You are first in line again; someone will be with you shortly."
            }
            (_, Template::Overflowed) => {
                "Everyone here is busy: your chat moves to {department}, where someone can answer sooner."
            }
            (_, Template::Reassigned) => {
                "Your agent could not answer in time. You are first in line for the next one."
            }
            (_, Template::InactivityWarning) => {
                "Are you still there? This chat will close in {minutes} min unless you reply."
            }
            (_, Template::ClosedByAgent) => {
                "The agent ended the chat. Thank you for contacting us!"
            }
            (_, Template::ClosedByVisitor) => "You ended the chat. Thank you for contacting us!",
            (_, Template::ClosedInactive) => {
                "The chat ended after a while without messages. Write again whenever you need us."
            }
        }
    }
}

/// The language part of a locale (`ru-RU` → `ru`), lower-cased.
pub fn language(locale: &str) -> String {
    locale
        .split(['-', '_'])
        .next()
        .unwrap_or("en")
        .to_ascii_lowercase()
}

/// Values to fill in.
#[derive(Default)]
pub struct Vars<'a> {
    pub agent: Option<&'a str>,
    pub position: Option<u32>,
    pub minutes: Option<u32>,
    /// The estimate's range in minutes, for `{range}` ("3–6", or "3" when both ends agree).
    pub range: Option<(u32, u32)>,
    /// A department's name in the visitor's language, for `{department}`.
    pub department: Option<&'a str>,
}

/// Renders a reply for a visitor's locale: department override, site override, built-in.
pub fn render(
    site: &SiteConfig,
    dept: Option<&DeptId>,
    locale: &str,
    t: Template,
    vars: &Vars<'_>,
) -> String {
    let lang = language(locale);
    let from =
        |m: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>| {
            m.get(locale)
                .or_else(|| m.get(&lang))
                .and_then(|by_key| by_key.get(t.key()))
                .cloned()
        };
    let text = dept
        .and_then(|d| site.department(d))
        .and_then(|d| from(&d.templates))
        .or_else(|| from(&site.templates))
        .unwrap_or_else(|| t.builtin(&lang).to_owned());
    text.replace("{agent}", vars.agent.unwrap_or(""))
        .replace("{position}", &vars.position.unwrap_or(0).to_string())
        .replace("{minutes}", &vars.minutes.unwrap_or(1).to_string())
        .replace("{range}", &range_text(vars.range.unwrap_or((1, 1))))
        .replace("{department}", vars.department.unwrap_or(""))
}

fn range_text((low, high): (u32, u32)) -> String {
    if low >= high {
        low.to_string()
    } else {
        format!("{low}–{high}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Russian locales get Russian text; anything unknown falls back to English; overrides win.
    #[test]
    fn locale_and_overrides() {
        let (mut config, _) = crate::demo::config();
        let vars = Vars {
            agent: Some("Alice Moreau"),
            ..Vars::default()
        };
        let site = &config.sites[0];
        assert!(render(site, None, "ru-RU", Template::Connected, &vars).contains("Alice Moreau"));
        assert!(render(site, None, "ru-RU", Template::Connected, &vars).starts_with("Вас"));
        assert!(render(site, None, "de", Template::Connected, &vars).starts_with("You are"));
        config.sites[0].templates.insert(
            "en".into(),
            [("connected".to_string(), "Hi, {agent} here".to_string())].into(),
        );
        let site = &config.sites[0];
        assert_eq!(
            render(site, None, "en-GB", Template::Connected, &vars),
            "Hi, Alice Moreau here"
        );
    }
}
