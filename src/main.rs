//! The `switchboard` binary: configuration, telemetry, serve until ctrl-c or SIGTERM.

use clap::Parser;
use switchboard::config::{Cli, Config};
use switchboard::server::{Application, shutdown_signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Logs on stderr: stdout's first line is the bound address, which scripts read.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour for a terminal, plain text for files and journald.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let (config, demo) = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            std::process::exit(2);
        }
    };
    if let Some(switchboard::config::Command::Migrate) = cli.command {
        let url = config
            .database_url
            .clone()
            .unwrap_or_else(|| switchboard::db::default_url(&config.data_dir));
        switchboard::db::Database::open_with(&url, config.durability).await?;
        println!("database migrated: {}", switchboard::db::redacted(&url));
        return Ok(());
    }
    let backend = if config.redis_url.is_some() {
        "redis"
    } else {
        "embedded"
    };
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    // The first stdout line is machine-readable: tests and scripts read the bound address.
    println!("switchboard listening on {addr} ({backend} state)");
    if let Some(demo) = demo {
        println!("demo site `demo`; agent tokens:");
        for (agent, token) in demo.agents {
            println!("  {agent}: {token}");
        }
        println!("admin token (REST API): {}", demo.admin);
    }
    app.run(shutdown_signal()).await
}
