//! The command line: flags (each also an environment variable) and subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Command-line interface. Every flag can also come from the environment.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Self-hosted live-chat backend",
    after_help = "Environment: SWITCHBOARD_SECRET signs visitor tokens (all nodes need the same one; \
without it a random one is made at start-up). RUST_LOG sets the log level (default info; \
e.g. RUST_LOG=switchboard=debug). Logs go to stderr."
)]
pub struct Cli {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file; without it a demo site is configured
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Redis URL (redis://, rediss://, redis+sentinel://…/name, redis+cluster://h1:p1,h2:p2):
    /// switches state to Redis so several nodes can share it
    #[arg(long, env = "SWITCHBOARD_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Directory for durable data: the embedded live state (live.db) and, without
    /// --database-url, the SQLite record database [default: ./data]
    #[arg(long, env = "SWITCHBOARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log lines as `text` (for people) or `json` (one object a line, for collectors)
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Record database (the directory of sites, agents and accounts, tickets, attachments,
    /// visitors, the webhook outbox, the audit log): sqlite://FILE or postgres://…
    /// [default: sqlite://<data-dir>/switchboard.db]
    #[arg(long, env = "SWITCHBOARD_DATABASE_URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do instead of serving.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Check the settings (file, flags and environment) as start-up would, without connecting
    /// to anything: exit 0 when they are valid, 2 with what is wrong
    Check,
    /// Apply the record database's migrations, then exit (serving applies them too)
    Migrate,
    /// Upsert the directory (sites with their departments, agents, canned responses,
    /// triggers, webhooks) from a TOML file into the database, then exit. Running nodes pick
    /// it up within a second.
    Import {
        /// A configuration file; only its `[[sites]]` are read
        file: PathBuf,
    },
    /// Ask a node's /readyz (a container's HEALTHCHECK: the image has no curl): exit 0 when it
    /// answers 200 within 2 s, 1 otherwise
    Probe {
        /// The node's address [default: SWITCHBOARD_LISTEN's port on loopback, or
        /// 127.0.0.1:8080]
        addr: Option<String>,
    },
    /// Copy the node's SQLite files (the record database, the embedded state) into DIR while
    /// it serves, each at one instant, then exit (docs/operations.md, backups)
    Backup {
        /// Where the copy goes: a new or empty directory
        dir: PathBuf,
    },
    /// Put a backup made by `backup` back in place, then exit; the node must be stopped
    Restore {
        /// The backup's directory
        dir: PathBuf,
    },
    /// Replay recorded chats (the database's tickets of a time range, or a trace file)
    /// through the routing in force and candidate policies, and print their waits, offline
    /// forms, service-level breaches and fairness side by side (docs/routing.md)
    Simulate {
        /// The site (needed when the directory has several)
        #[arg(long)]
        site: Option<String>,
        /// Tickets closed from this time: 2026-12-01, 2026-12-01T09:00:00Z or ms since the epoch
        #[arg(long)]
        since: Option<String>,
        /// Tickets closed before this time
        #[arg(long)]
        until: Option<String>,
        /// A trace file (JSON: agents' shifts and arrivals) instead of the tickets
        #[arg(long)]
        trace: Option<PathBuf>,
        /// A candidate policy (TOML: `name`, `[routing]`, `[departments.<id>]`); repeatable
        #[arg(long = "policy")]
        policies: Vec<PathBuf>,
        /// Print the reports as JSON
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The README's flag table and `--help` agree: every flag of one is in the other, with
    /// the same environment variable and, where `--help` states one, the same default.
    #[test]
    fn readme_flag_table_matches_help() {
        let readme = include_str!("../../README.md");
        let ticked = |cell: &str| cell.split('`').nth(1).map(str::to_owned);
        // `--flag ARG` | `ENV` | default, one row per flag (`\|` is a literal bar).
        let table: Vec<(String, String, Option<String>)> = readme
            .lines()
            .filter(|l| l.starts_with("| `--"))
            .map(|l| {
                let cells: Vec<String> =
                    l.replace("\\|", "/").split('|').map(String::from).collect();
                let flag = ticked(&cells[1]).unwrap();
                let flag = flag.split(' ').next().unwrap().to_owned();
                (
                    flag,
                    ticked(&cells[2]).unwrap_or_default(),
                    ticked(&cells[3]),
                )
            })
            .collect();
        let cli = Cli::command();
        let mut flags = Vec::new();
        for arg in cli.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let flag = format!("--{long}");
            let env = arg
                .get_env()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let default = arg
                .get_default_values()
                .first()
                .map(|d| d.to_string_lossy().into_owned())
                .or_else(|| {
                    let (_, rest) = help.split_once("[default: ")?;
                    Some(rest.split(']').next()?.to_owned())
                });
            let row = table
                .iter()
                .find(|(f, _, _)| *f == flag)
                .unwrap_or_else(|| panic!("{flag} is in --help but not in the README's table"));
            assert_eq!(row.1, env, "{flag}: environment variable");
            if let Some(d) = default {
                assert_eq!(row.2.as_deref(), Some(d.as_str()), "{flag}: default");
            }
            flags.push(flag);
        }
        for (flag, _, _) in &table {
            assert!(
                flags.contains(flag),
                "{flag} is in the README's table but not in --help"
            );
        }
    }
}
