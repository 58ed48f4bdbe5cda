//! Assembly: bind, pick the state backend, start the background duties, serve until shutdown.
//!
//! `Application::build` binds first so tests can use port 0 and read the real address.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::app::{AppState, IpLimiter};
use crate::auth::Keys;
use crate::auth::random_token;
use crate::config::Config;
use crate::directory::DirectoryStore;
use crate::engine::Engine;
use crate::hub::Hub;
use crate::model::Secret;
use crate::model::{Clock, SystemClock};
use crate::shutdown::{self, Trigger};
use crate::state::Store;
use crate::state::memory::MemoryStore;
use crate::state::redis::RedisStore;
use crate::tickets::TicketStore;
use crate::tickets::sql::SqlTickets;
use crate::tickets::timed::Timed;
use crate::{http, ws};

pub struct Application {
    listener: TcpListener,
    /// `metrics_listen`: `/metrics` alone, on an address of its own.
    metrics_listener: Option<TcpListener>,
    /// `inbound_smtp_listen`: where the SMTP listener for email replies took its address.
    smtp_addr: Option<SocketAddr>,
    state: AppState,
    trigger: Trigger,
    /// Background tasks (engine duties, Redis subscriber); awaited on shutdown.
    tasks: Vec<JoinHandle<()>>,
    /// Closed last, once sessions and tasks are done: the embedded state commits and releases
    /// its file.
    store: Arc<dyn Store>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As `build`, with the clock business hours are read from (tests control it).
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let listener =
            bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => {
                Some(bind(addr).with_context(|| format!("cannot listen on {addr} (metrics)"))?)
            }
            None => None,
        };
        let smtp_listener = match config.inbound_smtp_listen {
            Some(addr) => {
                Some(bind(addr).with_context(|| format!("cannot listen on {addr} (SMTP)"))?)
            }
            None => None,
        };
        let geo = Arc::new(crate::geo::Geo::open(&config)?);
        // Counting starts now, whether or not anything scrapes.
        crate::observe::handle();
        let (trigger, shutdown) = shutdown::channel();
        let hub = Hub::new(config.limits.send_queue);
        let secret = config.secret.clone().unwrap_or_else(|| {
            if config.redis_url.is_some() {
                tracing::warn!(
                    "no secret configured: visitor tokens will not work across nodes or restarts"
                );
            }
            Secret::new(random_token())
        });
        if config.admin_token_sha256.is_none() {
            tracing::warn!(
                "no admin_token_sha256 configured: the REST API (tickets, figures, privacy \
                 requests) answers 401 to every request"
            );
        }
        let mut tasks = Vec::new();
        // The backends deliver to the hub through the sink interface alone.
        let sink: Arc<dyn crate::envelope::Sink> = Arc::new(hub.clone());
        let db = open_database(&config).await?;
        let directory = DirectoryStore::new(db.clone());
        let attachments = crate::attachments::Attachments::new(db.clone());
        let db_for_push = db.clone();
        let (store, tickets): (Arc<dyn Store>, Arc<dyn TicketStore>) = match &config.redis_url {
            Some(url) => {
                let (store, redis_tasks) = RedisStore::connect(
                    url,
                    config.redis_ca_file.as_deref(),
                    &config.key_prefix,
                    sink,
                    shutdown.clone(),
                )
                .await?;
                tasks.extend(redis_tasks);
                if db.kind() == crate::db::Kind::Sqlite {
                    tracing::warn!(
                        "records in SQLite serve one node: several nodes need PostgreSQL \
                         (--database-url postgres://…)"
                    );
                }
                let tickets = SqlTickets::new(db);
                let sites: Vec<_> = config.sites.iter().map(|s| s.id.clone()).collect();
                crate::tickets::redis::import(
                    store.connection(),
                    &config.key_prefix,
                    &sites,
                    &tickets,
                )
                .await
                .context("cannot import tickets kept in Redis by an earlier version")?;
                (Arc::new(store), Arc::new(Timed(tickets)))
            }
            None => {
                let tickets = SqlTickets::new(db);
                tickets.import_files(&config.data_dir).await?;
                let store =
                    MemoryStore::open(&config.data_dir, config.durability, sink, clock.now_ms())
                        .await?;
                (Arc::new(store), Arc::new(Timed(tickets)))
            }
        };
        let engine = Engine::new(
            config,
            store.clone(),
            hub,
            Keys::new(secret),
            crate::engine::Records {
                tickets,
                directory,
                attachments,
                push: db_for_push,
            },
            clock,
        );
        engine.start_directory().await?;
        let admission = crate::listener::Admission::new(engine.config().limits.max_connections);
        tasks.push(tokio::spawn(
            engine.clone().run_background(shutdown.clone()),
        ));
        let smtp_addr = smtp_listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(l) = smtp_listener {
            tasks.push(tokio::spawn(crate::smtp::serve(
                l,
                engine.clone(),
                shutdown.clone(),
            )));
        }
        Ok(Self {
            listener,
            metrics_listener,
            smtp_addr,
            state: AppState {
                engine,
                ip_limiter: IpLimiter::default(),
                admission,
                shutdown,
                uploads: crate::app::UploadTurns::default(),
                geo,
            },
            trigger,
            tasks,
            store,
        })
    }

    /// The engine, for what runs beside the server (the SIGHUP reload).
    pub fn engine(&self) -> Engine {
        self.state.engine.clone()
    }

    /// The address `/metrics` is served on, when `metrics_listen` names one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp_addr
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `signal` resolves, then closes every socket and stops the background tasks.
    pub async fn run(
        self,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            metrics_listener,
            state,
            trigger,
            tasks,
            store,
            smtp_addr: _,
        } = self;
        // Responses over a kilobyte are compressed (gzip, when the client accepts it):
        // REST pages and the scripts. Not the WebSocket routes: their frames are another matter.
        let app = http::router(state.clone())
            .layer(tower_http::compression::CompressionLayer::new().compress_when(compressible()))
            .merge(ws::router())
            .with_state(state.clone());
        let reserve = http::reserve_router().with_state(state.clone());
        let engine = state.engine.clone();
        let serving = crate::listener::Serving {
            app,
            reserve,
            admission: state.admission.clone(),
            settings: Arc::new(move || engine.config()),
        };
        let server = tokio::spawn(crate::listener::serve(
            listener,
            serving,
            trigger.subscribe(),
        ));
        let metrics_server = metrics_listener.map(|l| {
            // Health checks too: this address is not subject to the connection caps, so a
            // monitor on it sees the node even while attackers hold every public slot.
            let app = http::health::router()
                .route(
                    "/metrics",
                    axum::routing::get(
                        |axum::extract::State(state): axum::extract::State<
                            crate::app::AppState,
                        >| async move { http::metrics_text(&state) },
                    ),
                )
                .with_state(state.clone());
            let engine = state.engine.clone();
            // Counted apart from the public address, and served the same way (one HTTP server
            // in the binary, with its header deadline).
            let serving = crate::listener::Serving {
                reserve: app.clone(),
                app,
                admission: crate::listener::Admission::fixed(crate::listener::RESERVE * 8),
                settings: Arc::new(move || engine.config()),
            };
            tokio::spawn(crate::listener::serve(l, serving, trigger.subscribe()))
        });
        // Bound, the state backend and the database open: the node serves.
        crate::notify::ready();
        let watchdog = tokio::spawn(crate::notify::watchdog(trigger.subscribe()));
        signal.await;
        crate::notify::stopping();
        let drain = state.engine.config().timing.drain();
        tracing::info!(
            sockets = state.ip_limiter.open(),
            drain_secs = drain.as_secs_f64(),
            "shutting down: no new connections; finishing work in flight"
        );
        // One signal: the listener stops accepting, HTTP requests in flight finish, every
        // session finishes the frame in hand (a close is stored and its ticket filed before
        // the answer) and closes its socket with 1001, background loops stop (the courier
        // first finishes the webhook attempts in flight).
        trigger.fire();
        server.await.context("server task failed")?;
        if let Some(m) = metrics_server {
            let _ = m.await;
        }
        // Upgraded sockets are not the HTTP server's: wait for their sessions to end, so none
        // is cut off mid-write (1006) and nothing acknowledged misses the state backend.
        if !state.ip_limiter.wait_idle(drain).await {
            tracing::warn!(
                sockets = state.ip_limiter.open(),
                "drain time over; exiting with sockets still open"
            );
        }
        for t in tasks {
            let _ = tokio::time::timeout(drain, t).await;
        }
        store.shutdown().await;
        let _ = watchdog.await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// What is worth compressing: bodies over a kilobyte, except images and event streams.
fn compressible() -> impl tower_http::compression::Predicate {
    use tower_http::compression::Predicate;
    use tower_http::compression::predicate::{NotForContentType, SizeAbove};
    SizeAbove::new(1024)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE)
}

/// The record database the configuration names, or SQLite in the data directory.
async fn open_database(config: &Config) -> anyhow::Result<crate::db::Database> {
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| crate::db::default_url(&config.data_dir));
    crate::db::Database::open_with(&url, config.durability).await
}

/// Binds with a deep accept queue: std's default of 128 overflows when hundreds of widgets
/// reconnect at once (after a deploy), and each overflow costs the client a 1 s SYN retry.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
