//! The `switchboard` binary: configuration, telemetry, serve until ctrl-c or SIGTERM; SIGHUP
//! reloads the settings file. `check` validates the settings; `migrate`, `import` and
//! `simulate` work on the database and exit. A fatal error is one line on stderr, a JSON
//! object with JSON logs; exit code 2 for settings that are refused, 1 otherwise.

use clap::Parser;
use switchboard::config::{Cli, Command, Config};
use switchboard::server::{Application, shutdown_signal};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Swaps the log filter in force (SIGHUP).
type FilterHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let json = cli.log_format == switchboard::config::LogFormat::Json;
    if let Err(e) = run(cli).await {
        fatal(json, &format!("{e:#}"), 1);
    }
}

/// Ends the process with what went wrong: in the log's format (the subscriber is in place
/// by then), so a collector of JSON logs reads it too.
fn fatal(json: bool, message: &str, code: i32) -> ! {
    if json {
        tracing::error!(error = %message, exit_code = code, "switchboard cannot go on");
    } else {
        eprintln!("switchboard: {message}");
    }
    std::process::exit(code)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.log_format == switchboard::config::LogFormat::Json;
    // RUST_LOG wins over the file's `log`, now and on reload.
    let (filter, filter_handle) = tracing_subscriber::reload::Layer::new(
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    );
    // Logs on stderr: stdout's first line is the bound address, which scripts read.
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match cli.log_format {
        switchboard::config::LogFormat::Json => registry
            .with(fmt.json().flatten_event(true).with_current_span(false))
            .init(),
        // Colour for a terminal, plain text for files and journald.
        switchboard::config::LogFormat::Text => registry
            .with(fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())))
            .init(),
    }
    // A health check needs no settings: it must not fail on the settings file it cannot read.
    if let Some(Command::Probe { addr }) = &cli.command {
        return probe(&probe_addr(addr.as_deref()));
    }
    let (config, demo) = match switchboard::demo::load(&cli) {
        Ok(c) => c,
        Err(e) => fatal(json, &format!("{e:#}"), 2),
    };
    apply_log_filter(&filter_handle, &config.log);
    match &cli.command {
        Some(Command::Check) => {
            match &cli.config {
                Some(path) => println!("settings valid: {}", path.display()),
                None => println!("settings valid (the built-in demo: no --config given)"),
            }
            return Ok(());
        }
        Some(Command::Migrate) => {
            let url = database_url(&config);
            switchboard::db::Database::open_with(&url, config.durability)
                .await?
                .close()
                .await;
            own_database(&url)?;
            println!("database migrated: {}", switchboard::db::redacted(&url));
            return Ok(());
        }
        Some(Command::Import { file }) => {
            let n = import(&config, file).await?;
            own_database(&database_url(&config))?;
            println!("directory imported: {n} rows written");
            return Ok(());
        }
        Some(Command::Probe { addr }) => return probe(&probe_addr(addr.as_deref())),
        Some(Command::Backup { dir }) => {
            for file in switchboard::backup::backup(&config, dir)? {
                println!("backed up: {}", file.display());
            }
            return Ok(());
        }
        Some(Command::Restore { dir }) => {
            for file in switchboard::backup::restore(&config, dir)? {
                println!("restored: {}", file.display());
            }
            return Ok(());
        }
        Some(Command::Simulate {
            site,
            since,
            until,
            trace,
            policies,
            json,
        }) => {
            use switchboard::simulate::parse_instant;
            let request = switchboard::simulate::Request {
                site: site.as_deref().map(Into::into),
                since: since.as_deref().map(parse_instant).transpose()?,
                until: until.as_deref().map(parse_instant).transpose()?,
                trace: trace.clone(),
                policies: policies.clone(),
            };
            let reports = switchboard::simulate::run(&config, &request).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                print!("{}", switchboard::simulate::table(&reports));
            }
            return Ok(());
        }
        None => {}
    }
    let backend = if config.redis_url.is_some() {
        "redis"
    } else {
        "embedded"
    };
    let app = Application::build(config).await?;
    if let Some(demo) = &demo {
        // The demo's directory was seeded by its first start; this start printed new secrets.
        demo_credentials(&app.engine(), demo).await?;
    }
    let addr = app.local_addr();
    // The first stdout line is machine-readable: tests and scripts read the bound address.
    println!("switchboard listening on {addr} ({backend} state)");
    if let Some(demo) = demo {
        println!(
            "demo site `demo`: console http://localhost:{}/console/",
            addr.port()
        );
        println!(
            "  sign in as alice@demo.test (admin), password {}",
            demo.password
        );
        println!("agent API tokens:");
        for (agent, token) in demo.agents {
            println!("  {agent}: {token}");
        }
        println!("admin token (REST API): {}", demo.admin);
    }
    let engine = app.engine();
    tokio::spawn(reload_on_hangup(engine, cli, filter_handle));
    app.run(shutdown_signal()).await
}

/// Puts the credentials this start of the demo prints in force: the directory in the database
/// keeps the first start's otherwise.
async fn demo_credentials(
    engine: &switchboard::engine::Engine,
    demo: &switchboard::demo::DemoTokens,
) -> anyhow::Result<()> {
    use switchboard::directory::Credentials;
    use switchboard::model::SiteId;
    let site = SiteId::from("demo");
    for (agent, token) in &demo.agents {
        let hash = switchboard::auth::token_hash(token);
        engine
            .set_credentials(&site, agent, Credentials::Token(Some(hash)))
            .await?;
    }
    let hash = switchboard::directory::accounts::hash_password(&demo.password);
    engine
        .set_credentials(&site, &"alice".into(), Credentials::Password(hash))
        .await?;
    Ok(())
}

/// The address `probe` asks: the one given, or where SWITCHBOARD_LISTEN says the node listens
/// (a wildcard address asked on loopback), or the image's 127.0.0.1:8080.
fn probe_addr(given: Option<&str>) -> String {
    if let Some(a) = given {
        return a.to_owned();
    }
    match std::env::var("SWITCHBOARD_LISTEN") {
        Ok(listen) => listen
            .replace("0.0.0.0:", "127.0.0.1:")
            .replace("[::]:", "[::1]:"),
        Err(_) => "127.0.0.1:8080".to_owned(),
    }
}

/// `switchboard probe ADDR`: GET /readyz over plain HTTP, 200 or an error.
fn probe(addr: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let within = std::time::Duration::from_secs(2);
    let target = addr
        .to_socket_addrs()
        .with_context(|| format!("{addr} is not an address"))?
        .next()
        .with_context(|| format!("{addr} names no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&target, within)
        .with_context(|| format!("no answer from {addr}"))?;
    stream.set_read_timeout(Some(within))?;
    stream.set_write_timeout(Some(within))?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    if line.starts_with("HTTP/1.1 200") {
        println!("ready");
        Ok(())
    } else {
        anyhow::bail!("not ready: {}", line.lines().next().unwrap_or("no answer"))
    }
}

/// Run as root, `migrate` and `import` leave the SQLite file to the data directory's owner.
fn own_database(url: &str) -> anyhow::Result<()> {
    match switchboard::db::sqlite_path(url) {
        Some(path) => switchboard::db::own_like_dir(&path),
        None => Ok(()),
    }
}

fn database_url(config: &Config) -> String {
    config
        .database_url
        .clone()
        .unwrap_or_else(|| switchboard::db::default_url(&config.data_dir))
}

/// `switchboard import FILE`: the file's sites replace the stored sites of the same ids.
async fn import(config: &Config, file: &std::path::Path) -> anyhow::Result<usize> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let incoming = Config::from_toml(&text)?;
    let db = switchboard::db::Database::open_with(&database_url(config), config.durability).await?;
    let store = switchboard::directory::DirectoryStore::new(db);
    let (_, stored) = store.load().await?;
    let next = switchboard::directory::merged(&stored, &incoming.sites);
    let writes = switchboard::directory::diff(&stored, &next).len();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    switchboard::directory::change(&store, now, |sites| {
        *sites = switchboard::directory::merged(sites, &incoming.sites);
        Ok(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(writes)
}

fn apply_log_filter(handle: &FilterHandle, log: &str) {
    if std::env::var_os("RUST_LOG").is_some() {
        return;
    }
    // Validated with the configuration.
    if let Ok(filter) = EnvFilter::try_new(log) {
        let _ = handle.reload(filter);
    }
}

/// On SIGHUP, reads the settings file again and puts it in force without closing a socket.
async fn reload_on_hangup(engine: switchboard::engine::Engine, cli: Cli, filter: FilterHandle) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangups.recv().await.is_some() {
        let Some(path) = &cli.config else {
            tracing::info!(
                "SIGHUP: no --config file to reload (the demo runs on built-in settings)"
            );
            continue;
        };
        switchboard::notify::reloading();
        // The same layering as at start: flags and environment over the file.
        let file = match switchboard::demo::load(&cli) {
            Ok((c, _)) => c,
            Err(e) => {
                tracing::error!(cause = %e, path = %path.display(), "SIGHUP: settings not reloaded; the old ones stay");
                switchboard::notify::ready();
                continue;
            }
        };
        apply_log_filter(&filter, &file.log);
        let fixed = engine.reload_settings(file).await;
        switchboard::notify::ready();
        if fixed.is_empty() {
            tracing::info!(path = %path.display(), "SIGHUP: settings reloaded");
        } else {
            tracing::warn!(
                path = %path.display(),
                unchanged = %fixed.join(", "),
                "SIGHUP: settings reloaded; these need a restart and keep their old values"
            );
        }
    }
}
