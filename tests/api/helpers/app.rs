//! A Switchboard under test: its configuration, the server on 127.0.0.1:0 on either backend, and a
//! clock the test moves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use switchboard::auth::token_hash;
use switchboard::config::Config;
use switchboard::model::{Clock, SystemClock};
use switchboard::server::Application;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::*;

/// One agent of the test site.
#[derive(Clone)]
pub struct AgentSpec {
    pub id: String,
    pub name: String,
    pub departments: Vec<String>,
    pub max: u32,
}

pub fn agent(id: &str, name: &str, departments: &[&str], max: u32) -> AgentSpec {
    AgentSpec {
        id: id.into(),
        name: name.into(),
        departments: departments.iter().map(|d| d.to_string()).collect(),
        max,
    }
}

/// The test site's usual agents, in `support`, with a limit.
pub fn alice(max: u32) -> AgentSpec {
    agent("alice", "Alice Moreau", &["support"], max)
}

pub fn boris(max: u32) -> AgentSpec {
    agent("boris", "Boris Ivanov", &["support"], max)
}

/// The token the test configuration gives an agent.
pub fn token(agent: &str) -> String {
    format!("token-for-{agent}-0123456789")
}

/// A test configuration: site `test` (origin http://shop.test) with `support` and `sales`.
pub fn config(agents: &[AgentSpec]) -> Config {
    Config::from_toml(&config_toml(agents)).expect("test configuration is valid")
}

/// The TOML text of `config`, for running the real binary.
pub fn config_toml(agents: &[AgentSpec]) -> String {
    let mut text = String::from(
        r#"
                listen = "127.0.0.1:0"
        secret = "test-secret-0123456789abcdef"
        admin_token_sha256 = "ADMIN_HASH"
        data_dir = "DATA_DIR"
        webhook_allowed_networks = ["127.0.0.0/8"]
        [timing]
        heartbeat_secs = 5.0
        agent_grace_secs = 60.0
        sweep_secs = 0.1
        [limits]
        messages_per_second = 200.0
        message_burst = 200.0
        connections_per_ip = 0
        visitor_messages_per_minute = 0
        new_visitors_per_ip_per_hour = 0
        [[sites]]
        id = "test"
        allowed_origins = ["http://shop.test"]
        default_department = "support"
        departments = [{ id = "support" }, { id = "sales" }]
        "#,
    );
    text = text
        .replace("ADMIN_HASH", &token_hash(ADMIN_TOKEN))
        .replace("DATA_DIR", &temp_dir().display().to_string());
    for a in agents {
        text.push_str(&format!(
            "[[sites.agents]]\nid = {:?}\nname = {:?}\ndepartments = {:?}\nmax_concurrent = {}\ntoken_sha256 = {:?}\n",
            a.id,
            a.name,
            a.departments,
            a.max,
            token_hash(&token(&a.id))
        ));
    }
    text
}

/// A running server; stops when dropped or with `stop()`.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The SMTP listener's address, when the configuration asks for one.
    pub smtp: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Builds a server on either backend. Each Redis-backed app gets its own key prefix so tests
/// running in parallel never see each other's state; pass `prefix` to share one (multi-node).
pub async fn spawn_with(backend: Backend, config: Config, prefix: Option<&str>) -> TestApp {
    spawn_full(backend, config, prefix, Arc::new(SystemClock)).await
}

/// A clock tests move by hand. It runs like the wall clock from wherever it was set, so
/// everything that waits for time keeps working; `set` and `advance` jump it and wake whatever
/// sleeps on it (the trigger schedule), and the next sweep sees the new time.
pub struct TestClock {
    /// Clock time minus wall time.
    offset: AtomicI64,
    jumped: tokio::sync::Notify,
}

impl TestClock {
    pub fn at(rfc3339: &str) -> Arc<Self> {
        let clock = Arc::new(Self {
            offset: AtomicI64::new(0),
            jumped: tokio::sync::Notify::new(),
        });
        clock.set(rfc3339);
        clock
    }

    /// A clock at the wall time, to be moved forward.
    pub fn now() -> Arc<Self> {
        Arc::new(Self {
            offset: AtomicI64::new(0),
            jumped: tokio::sync::Notify::new(),
        })
    }

    pub fn set(&self, rfc3339: &str) {
        let offset = parse_time(rfc3339) - switchboard::model::now_ms();
        self.offset.store(offset, Ordering::SeqCst);
        self.jumped.notify_waiters();
    }

    pub fn advance(&self, by: Duration) {
        self.offset
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        self.jumped.notify_waiters();
    }
}

pub fn parse_time(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        switchboard::model::now_ms() + self.offset.load(Ordering::SeqCst)
    }

    fn sleep_until(
        &self,
        at: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                let jumped = self.jumped.notified();
                let now = self.now_ms();
                if now >= at {
                    return;
                }
                let wait = Duration::from_millis((at - now) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = jumped => {}
                }
            }
        })
    }
}

pub async fn spawn_full(
    backend: Backend,
    mut config: Config,
    prefix: Option<&str>,
    clock: Arc<dyn Clock>,
) -> TestApp {
    // RUST_LOG=debug shows the server's log in a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    match backend {
        Backend::Memory => {}
        Backend::Redis => {
            config.redis_url = Some(redis_url());
            config.key_prefix = prefix.map(str::to_owned).unwrap_or_else(unique_prefix);
        }
        Backend::Postgres => {
            if config.database_url.is_none() {
                config.database_url = Some(postgres_database(&config).await);
            }
        }
    }
    let app = Application::build_with_clock(config, clock)
        .await
        .expect("application builds");
    let addr = app.local_addr();
    let smtp = app.smtp_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        smtp,
        stop: Some(tx),
        task: Some(task),
    }
}

/// A server on a test clock that starts at the wall time: tests move it past a grace period or
/// an inactivity timeout instead of waiting for one.
pub async fn spawn_with_clock(backend: Backend, config: Config) -> (TestApp, Arc<TestClock>) {
    let clock = TestClock::now();
    let app = spawn_full(backend, config, None, clock.clone()).await;
    (app, clock)
}

/// Whether the server counts one of the agent's consoles as connected.
pub async fn agent_connected(app: &TestApp, id: &str) -> bool {
    let (_, body) = admin_get(app, "/v1/agents").await;
    body["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == id))
        .is_some_and(|a| a["connected"] == true)
}

/// Waits until the server has seen an agent's last console go (their grace starts then).
pub async fn agent_gone(app: &TestApp, id: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while agent_connected(app, id).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} still connected"
        );
        tokio::task::yield_now().await;
    }
}

pub async fn spawn_app(backend: Backend, config: Config) -> TestApp {
    spawn_with(backend, config, None).await
}

pub fn unique_prefix() -> String {
    format!("t{}", ulid::Ulid::new())
}

pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
