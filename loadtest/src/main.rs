//! `switchboard-loadtest`: drives a running Switchboard through its public WebSocket protocol only
//! and measures it. Scenarios: `idle`, `chat`, `burst`, `churn`, `estimate`; `config` writes a server
//! configuration with the agents the scenarios sign in as; `smoke` starts the server itself (on
//! embedded state and on Redis) and runs every scenario small, failing on any loss, duplicate or
//! error. Every run is bounded in time and talks to loopback addresses only.

mod records;
mod report;
mod scenarios;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, http};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Parser)]
#[command(
    name = "switchboard-loadtest",
    about = "Load test for Switchboard (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a server configuration for the load test site `lt` (agents lt0…ltN-1).
    Config {
        #[arg(long, default_value_t = 500)]
        agents: usize,
        #[arg(long, default_value_t = 10)]
        slots: u32,
        /// Skills `sk0`… of which each agent has three, and page rules that require one
        /// each (visitors' pages spread over them): routing with skills switched on.
        #[arg(long, default_value_t = 0)]
        skills: usize,
        /// Priority levels (page rules raising 1…N-1; visitors' pages spread over them).
        #[arg(long, default_value_t = 1)]
        priorities: u8,
    },
    /// Hold N idle visitor connections and measure server memory per connection.
    Idle {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        visitors: usize,
        /// Seconds to hold the connections after they are all open.
        #[arg(long, default_value_t = 5.0)]
        hold: f64,
    },
    /// Conversations started at a rate, messages both ways at a total rate.
    Chat {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 200)]
        visitors: usize,
        #[arg(long, default_value_t = 20)]
        agents: usize,
        /// Conversations started per second.
        #[arg(long, default_value_t = 200.0)]
        start_rate: f64,
        /// Messages per second in all, alternating visitor→agent and agent→visitor.
        #[arg(long, default_value_t = 1000.0)]
        msg_rate: f64,
        /// Seconds of message traffic once every conversation has started.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Many visitors queue at once, then the agents come online: how fast the queue drains.
    Burst {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        visitors: usize,
        #[arg(long, default_value_t = 100)]
        agents: usize,
        #[arg(long, default_value_t = 10)]
        slots: u32,
    },
    /// Visitors arrive at random, agents hold chats for log-normal times: how accurate the
    /// wait estimates are (median error, range coverage).
    Estimate {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 20)]
        agents: usize,
        #[arg(long, default_value_t = 2)]
        slots: u32,
        /// Median handling time, seconds.
        #[arg(long, default_value_t = 6.0)]
        median_secs: f64,
        /// Spread of the log-normal handling times (1.0: a long tail).
        #[arg(long, default_value_t = 1.0)]
        sigma: f64,
        /// Arrivals as a share of the agents' throughput (above 1: a queue builds).
        #[arg(long, default_value_t = 1.05)]
        load: f64,
        /// Seconds of arrivals.
        #[arg(long, default_value_t = 180.0)]
        duration: f64,
        /// Write the run down for `switchboard simulate --trace`.
        #[arg(long)]
        trace: Option<std::path::PathBuf>,
    },
    /// Anonymous visitors connect, say hello and leave, `rate` per second: handshake latency,
    /// and (with --pid, --redis-url) whether memory and Redis keys come back afterwards.
    Churn {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// The server's Redis, to count its keys before and after.
        #[arg(long)]
        redis_url: Option<String>,
        /// Seconds to wait after the last visitor left before measuring again.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
    },
    /// Fill a record database with generated tickets, closed evenly over the last `days` days.
    Tickets {
        /// sqlite://FILE or postgres://…
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[arg(long, default_value = "lt")]
        site: String,
    },
    /// Start the server on a record database: start-up time, memory, search and /v1/stats latency.
    Records {
        /// The switchboard binary.
        #[arg(long)]
        server: PathBuf,
        #[arg(long)]
        database_url: String,
        /// Searches to run (two each: plain and with a department filter).
        #[arg(long, default_value_t = 200)]
        queries: usize,
        /// Write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Start the server on both backends and run every scenario small; exit 1 on any failure.
    Smoke {
        /// The switchboard binary.
        #[arg(long)]
        server: PathBuf,
    },
}

/// What every scenario against a running server needs.
#[derive(Args, Clone)]
pub struct Common {
    /// The server's address (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The server's pid, to read its memory (VmRSS).
    #[arg(long)]
    pid: Option<u32>,
    /// Spread client sockets over 127.0.0.1 … 127.0.0.N (past one address's ephemeral ports).
    #[arg(long, default_value_t = 4)]
    sources: u8,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write an SVG plot of the latency distributions here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Hard limit on the whole run, seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
}

/// Shared by the tasks of one run.
pub struct Ctx {
    pub addr: SocketAddr,
    pub sources: u8,
    pub origin: String,
    pub epoch: Instant,
    next_source: AtomicUsize,
    next_page: AtomicUsize,
}

pub const SITE: &str = "lt";
pub const ORIGIN: &str = "http://loadtest.local";
pub fn agent_token(i: usize) -> String {
    format!("lt-token-{i:05}-0123456789")
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl Ctx {
    pub fn new(addr: SocketAddr, sources: u8) -> anyhow::Result<Self> {
        if !addr.ip().is_loopback() {
            bail!("load tests target loopback addresses only (127.0.0.0/8), not {addr}");
        }
        Ok(Self {
            addr,
            sources: sources.max(1),
            origin: ORIGIN.into(),
            epoch: Instant::now(),
            next_source: AtomicUsize::new(0),
            next_page: AtomicUsize::new(0),
        })
    }

    /// Microseconds since the run started: the timestamp carried in messages.
    pub fn micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Opens a WebSocket from the next source address in 127.0.0.1…N.
    pub async fn connect(&self, path: &str, origin: bool) -> anyhow::Result<Ws> {
        let n = self.next_source.fetch_add(1, Ordering::Relaxed) % usize::from(self.sources);
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + n as u8));
        let sock = TcpSocket::new_v4()?;
        sock.bind(SocketAddr::new(src, 0))?;
        let stream = tokio::time::timeout(Duration::from_secs(10), sock.connect(self.addr))
            .await
            .context("connect timed out")??;
        stream.set_nodelay(true)?;
        let mut req = format!("ws://{}{path}", self.addr).into_client_request()?;
        if origin {
            req.headers_mut()
                .insert(http::header::ORIGIN, self.origin.parse()?);
        }
        // Small buffers, like the server's: tungstenite's default read buffer (128 KiB) is
        // zero-filled before every read, which with thousands of sockets made the generator
        // the busiest process on the machine (page faults and memset in its profile).
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::client_async_with_config(
                req,
                MaybeTlsStream::Plain(stream),
                Some(config),
            ),
        )
        .await
        .context("handshake timed out")??;
        Ok(ws)
    }

    pub async fn visitor(&self) -> anyhow::Result<Ws> {
        let mut ws = self
            .connect(&format!("/v1/visitor?site={SITE}"), true)
            .await?;
        // Pages spread over the priorities and skills `config --skills --priorities` routes by.
        let n = self.next_page.fetch_add(1, Ordering::Relaxed);
        let page = format!("{ORIGIN}/p{}/s{}/", n % 3, n % 20);
        send(
            &mut ws,
            &serde_json::json!({"type": "hello", "locale": "en", "page": {"url": page, "title": "Load"}}),
        )
        .await?;
        expect(&mut ws, "welcome").await?;
        Ok(ws)
    }

    pub async fn agent(&self, i: usize, status: &str) -> anyhow::Result<Ws> {
        let mut ws = self.connect("/v1/agent", false).await?;
        send(
            &mut ws,
            &serde_json::json!({"type": "hello", "token": agent_token(i), "status": status}),
        )
        .await?;
        expect(&mut ws, "welcome").await?;
        Ok(ws)
    }
}

pub async fn send(ws: &mut Ws, v: &Value) -> anyhow::Result<()> {
    ws.send(Message::Text(v.to_string().into())).await?;
    Ok(())
}

/// The next JSON message, or None when the socket closed.
pub async fn recv(ws: &mut Ws) -> anyhow::Result<Option<Value>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(Some(serde_json::from_str(&t)?)),
            Some(Ok(Message::Close(_))) | None => return Ok(None),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// Reads until a message of `ty` arrives (10 s at most).
pub async fn expect(ws: &mut Ws, ty: &str) -> anyhow::Result<Value> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match recv(ws).await? {
                Some(v) if v["type"] == ty => return Ok(v),
                Some(v) if v["type"] == "error" => {
                    bail!("server error while waiting for {ty}: {v}")
                }
                Some(_) => continue,
                None => bail!("socket closed while waiting for {ty}"),
            }
        }
    })
    .await
    .with_context(|| format!("timed out waiting for {ty}"))?
}

/// Resident memory of a process in bytes (Linux).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Raises the open-file limit to the hard limit: each connection is a file.
fn raise_nofile() {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The server configuration the scenarios expect: site `lt`, department `support`, agents
/// `lt0…` with `slots` chats each, limits generous enough for load.
/// Page rules that require skill `sk<k>` on pages `…/s<k>/…` and raise the priority to `p` on
/// `…/p<p>/…` (the visitors' pages spread over them: `Ctx::visitor`), appended to
/// `server_config_with`'s site.
fn routing_rules(skills: usize, priorities: u8) -> String {
    let mut rules = Vec::new();
    for k in 0..skills {
        rules.push(format!("{{ url = \"*/s{k}/*\", skills = [\"sk{k}\"] }}"));
    }
    for p in 1..priorities {
        rules.push(format!("{{ url = \"*/p{p}/*\", priority = {p} }}"));
    }
    if rules.is_empty() {
        return String::new();
    }
    format!("[sites.routing]\nrules = [{}]\n", rules.join(", "))
}

/// Three of `skills` skills for agent `i`, spread so each skill has about as many agents.
fn agent_skills(i: usize, skills: usize) -> Vec<String> {
    if skills == 0 {
        return Vec::new();
    }
    let mut out: Vec<String> = [i, i * 7 + 3, i * 13 + 5]
        .iter()
        .map(|k| format!("sk{}", k % skills))
        .collect();
    out.sort();
    out.dedup();
    out
}

pub fn server_config(agents: usize, slots: u32) -> String {
    server_config_with(agents, slots, 0, 1)
}

/// As `server_config`, with skills and priorities switched on (`routing_rules`).
pub fn server_config_with(agents: usize, slots: u32, skills: usize, priorities: u8) -> String {
    use sha2::{Digest, Sha256};
    let mut s = format!(
        r#"# Generated by switchboard-loadtest config --agents {agents} --slots {slots} --skills {skills} --priorities {priorities}
secret = "loadtest-secret-0123456789"
[limits]
messages_per_second = 1000.0
message_burst = 1000.0
connections_per_ip = 0
visitor_messages_per_minute = 1000000
new_visitors_per_ip_per_hour = 0
send_queue = 1024
[timing]
heartbeat_secs = 30.0
hello_timeout_secs = 30.0
[[sites]]
id = "{SITE}"
allowed_origins = ["{ORIGIN}"]
inactivity_timeout_secs = 86400.0
departments = [{{ id = "support" }}]
"#
    );
    for i in 0..agents {
        let hash = hex::encode(Sha256::digest(agent_token(i).as_bytes()));
        s.push_str(&format!(
            "[[sites.agents]]\nid = \"lt{i}\"\nname = \"Load Agent {i}\"\ndepartments = [\"support\"]\nmax_concurrent = {slots}\ntoken_sha256 = \"{hash}\"\nskills = {:?}\n",
            agent_skills(i, skills)
        ));
    }
    s.push_str(&routing_rules(skills, priorities));
    s
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    raise_nofile();
    let cli = Cli::parse();
    let (common, report) = match cli.cmd {
        Cmd::Config {
            agents,
            slots,
            skills,
            priorities,
        } => {
            print!("{}", server_config_with(agents, slots, skills, priorities));
            return Ok(());
        }
        Cmd::Smoke { server } => return scenarios::smoke(&server).await,
        Cmd::Tickets {
            database_url,
            count,
            days,
            site,
        } => return records::generate(&database_url, &site, count, days).await,
        Cmd::Records {
            server,
            database_url,
            queries,
            json,
        } => {
            let report = records::measure(&server, &database_url, queries).await?;
            report.print();
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_string_pretty(&report.json())?)?;
            }
            if !report.failures().is_empty() {
                std::process::exit(1);
            }
            return Ok(());
        }
        Cmd::Idle {
            common,
            visitors,
            hold,
        } => {
            let ctx = std::sync::Arc::new(Ctx::new(common.addr, common.sources)?);
            let r = bounded(&common, scenarios::idle(ctx, common.pid, visitors, hold)).await?;
            (common, r)
        }
        Cmd::Chat {
            common,
            visitors,
            agents,
            start_rate,
            msg_rate,
            duration,
        } => {
            let ctx = std::sync::Arc::new(Ctx::new(common.addr, common.sources)?);
            let r = bounded(
                &common,
                scenarios::chat(
                    ctx, common.pid, visitors, agents, start_rate, msg_rate, duration,
                ),
            )
            .await?;
            (common, r)
        }
        Cmd::Burst {
            common,
            visitors,
            agents,
            slots,
        } => {
            let ctx = std::sync::Arc::new(Ctx::new(common.addr, common.sources)?);
            let r = bounded(
                &common,
                scenarios::burst(ctx, common.pid, visitors, agents, slots),
            )
            .await?;
            (common, r)
        }
        Cmd::Estimate {
            common,
            agents,
            slots,
            median_secs,
            sigma,
            load,
            duration,
            trace,
        } => {
            let ctx = std::sync::Arc::new(Ctx::new(common.addr, common.sources)?);
            let run = scenarios::estimate(
                ctx,
                common.pid,
                agents,
                slots,
                median_secs,
                sigma,
                load,
                duration,
                trace.as_deref(),
            );
            let r = bounded(&common, run).await?;
            (common, r)
        }
        Cmd::Churn {
            common,
            rate,
            duration,
            redis_url,
            settle,
        } => {
            let ctx = std::sync::Arc::new(Ctx::new(common.addr, common.sources)?);
            let run = scenarios::churn(ctx, rate, duration, common.pid, redis_url, settle);
            let r = bounded(&common, run).await?;
            (common, r)
        }
    };
    report.print();
    if let Some(path) = &common.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)?;
    }
    if let Some(path) = &common.svg {
        std::fs::write(path, report.svg())?;
    }
    if !report.failures().is_empty() {
        for f in report.failures() {
            eprintln!("FAILED: {f}");
        }
        std::process::exit(1);
    }
    Ok(())
}

async fn bounded<T>(
    common: &Common,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(Duration::from_secs_f64(common.timeout), f)
        .await
        .context("the run exceeded --timeout")?
}
