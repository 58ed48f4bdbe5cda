//! The record database at scale: `tickets` fills a database with generated tickets (through
//! Switchboard's own ticket store, so rows, search text and figures are what a server writes);
//! `records` starts the server on it and measures start-up, memory, search and figures.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use switchboard::model::{
    AgentId, AgentRef, AuthorKind, ConvId, ConvState, Conversation, DeptId, Event, EventBody,
    SiteId, VisitorId, VisitorProfile,
};
use switchboard::tickets::Ticket;
use switchboard::tickets::sql::SqlTickets;

use crate::report::{Report, histogram};

/// Words the generated transcripts are made of. Searches pick from them: common words match
/// a large share of the tickets, rare ones a few.
const WORDS: &[&str] = &[
    "order",
    "delivery",
    "refund",
    "invoice",
    "password",
    "account",
    "shipping",
    "parcel",
    "payment",
    "card",
    "subscription",
    "cancel",
    "upgrade",
    "discount",
    "coupon",
    "warranty",
    "return",
    "exchange",
    "size",
    "colour",
    "broken",
    "missing",
    "late",
    "address",
    "tracking",
    "courier",
    "weekend",
    "monday",
    "tuesday",
    "price",
    "quote",
    "demo",
    "trial",
    "login",
    "email",
    "phone",
    "invoice",
    "receipt",
    "tax",
    "vat",
    "europe",
    "oslo",
    "berlin",
    "paris",
    "madrid",
    "lisbon",
    "warsaw",
    "prague",
    "vienna",
    "zurich",
    "milan",
    "dublin",
    "london",
    "printer",
    "laptop",
    "charger",
    "cable",
    "battery",
    "screen",
    "keyboard",
    "mouse",
    "camera",
    "headphones",
    "speaker",
    "router",
    "modem",
    "tablet",
    "watch",
    "sofa",
    "chair",
    "table",
];

/// A small deterministic generator (xorshift64*): runs are repeatable and need no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn word(&mut self) -> &'static str {
        // Skewed: low indexes are much more frequent, as in real text.
        let i = (self.below(WORDS.len() as u64) * self.below(WORDS.len() as u64)) as usize
            / WORDS.len();
        WORDS[i]
    }

    fn sentence(&mut self, words: usize) -> String {
        let mut s = String::new();
        for i in 0..words {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(self.word());
        }
        s
    }
}

/// One generated ticket, closed at `closed_at`.
fn ticket(rng: &mut Rng, n: u64, site: &SiteId, agents: usize, closed_at: i64) -> Ticket {
    let started = closed_at - 60_000 - rng.below(1_800_000) as i64;
    let id = ulid::Ulid::from_parts(started as u64, u128::from(n) << 64 | u128::from(rng.next()));
    let visitor = VisitorId(format!("v{:012}", rng.below(agents as u64 * 10_000)));
    let department = DeptId(
        if n.is_multiple_of(5) {
            "sales"
        } else {
            "support"
        }
        .into(),
    );
    let agent_no = rng.below(agents as u64);
    let agent = AgentRef {
        id: AgentId(format!("agent{agent_no}")),
        name: format!("Agent Number{agent_no}"),
    };
    let mut at = started;
    let mut events = Vec::new();
    let push = |body: EventBody, events: &mut Vec<Event>| {
        let seq = events.len() as u64 + 1;
        events.push(Event { seq, body });
    };
    let visitor_text = format!("{} {}", rng.sentence(6), n);
    push(
        EventBody::Message {
            at,
            author: AuthorKind::Visitor,
            author_id: Some(visitor.0.clone()),
            author_name: None,
            text: visitor_text,
            client_id: Some("c0".into()),
            attachment: None,
        },
        &mut events,
    );
    at += rng.below(120_000) as i64;
    push(
        EventBody::Assigned {
            at,
            agent: agent.clone(),
            text: format!("You are now chatting with {}.", agent.name),
        },
        &mut events,
    );
    for k in 0..(2 + rng.below(8)) {
        at += rng.below(30_000) as i64;
        let (author, author_id, author_name) = if k % 2 == 0 {
            (
                AuthorKind::Agent,
                Some(agent.id.0.clone()),
                Some(agent.name.clone()),
            )
        } else {
            (AuthorKind::Visitor, Some(visitor.0.clone()), None)
        };
        let words = 4 + rng.below(12) as usize;
        push(
            EventBody::Message {
                at,
                author,
                author_id,
                author_name,
                text: rng.sentence(words),
                client_id: Some(format!("c{}", k + 1)),
                attachment: None,
            },
            &mut events,
        );
    }
    push(
        EventBody::Closed {
            at: closed_at,
            by: AuthorKind::Agent,
            reason: "resolved".into(),
            text: "The agent ended the chat.".into(),
        },
        &mut events,
    );
    let conv = Conversation {
        id: ConvId(id.to_string()),
        visitor: visitor.clone(),
        department,
        state: ConvState::Closed,
        agent: Some(agent.id.clone()),
        priority: 0,
        created_at: started,
        queued_at: Some(started),
        first_assigned_at: Some(started + 1_000),
        closed_at: Some(closed_at),
        close_reason: Some("resolved".into()),
        locale: "en".into(),
        last_seq: events.len() as u64,
        visitor_read: events.len() as u64,
        agent_read: events.len() as u64,
        needs: Default::default(),
        pending_since: None,
        offered: false,
    };
    let mut profile = VisitorProfile::with_id(visitor);
    profile.name = Some(format!("Visitor {}", rng.sentence(1)));
    profile.email = Some(format!("visitor{}@example.com", rng.below(1_000_000)));
    let mut t = Ticket::build(site, &conv, events, &profile, closed_at);
    if rng.below(3) == 0 {
        t.rating = Some(switchboard::tickets::Rating {
            score: 1 + rng.below(5) as u8,
            comment: None,
            at: closed_at,
        });
    }
    t
}

/// Writes `count` tickets closed over the last `days` days into the database at `url`.
pub async fn generate(url: &str, site: &str, count: u64, days: u32) -> anyhow::Result<()> {
    let db = switchboard::db::Database::open(url)
        .await
        .with_context(|| format!("cannot open {}", switchboard::db::redacted(url)))?;
    let store = SqlTickets::new(db);
    let site = SiteId(site.into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let span = i64::from(days.max(1)) * 86_400_000;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let began = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for n in 0..count {
        // Evenly over the span, oldest first, as a server would have written them.
        let closed_at = now - span + (span * n as i64) / count.max(1) as i64;
        batch.push(ticket(&mut rng, n, &site, 50, closed_at));
        if batch.len() == 1000 || n + 1 == count {
            store.save_batch(&batch).await?;
            batch.clear();
            if (n + 1).is_multiple_of(100_000) {
                eprintln!(
                    "{} tickets, {:.0}/s",
                    n + 1,
                    (n + 1) as f64 / began.elapsed().as_secs_f64()
                );
            }
        }
    }
    eprintln!(
        "wrote {count} tickets in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A GET with a bearer token over a fresh connection: status and body.
async fn get(addr: std::net::SocketAddr, path: &str, token: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_owned()))
}

/// Starts the server on the database, reads its start-up time and memory, then times
/// `queries` searches and `/v1/stats` calls over the last 30 days.
pub async fn measure(server: &Path, url: &str, queries: usize) -> anyhow::Result<Report> {
    use sha2::Digest;
    const TOKEN: &str = "records-benchmark-admin-token";
    let dir = std::env::temp_dir().join(format!("switchboard-records-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = format!(
        "secret = \"records-benchmark-secret-0123\"\nadmin_token_sha256 = \"{}\"\n\
         [[sites]]\nid = \"lt\"\nallowed_origins = [\"http://loadtest.local\"]\n\
         departments = [{{ id = \"support\" }}, {{ id = \"sales\" }}]\n",
        hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()))
    );
    let file = dir.join("records.toml");
    std::fs::write(&file, config)?;
    let began = Instant::now();
    let mut child = tokio::process::Command::new(server)
        .arg("--config")
        .arg(&file)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--database-url")
        .arg(url)
        .env("RUST_LOG", "warn")
        .env_remove("SWITCHBOARD_REDIS_URL")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", server.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = lines
        .next_line()
        .await?
        .context("the server printed nothing")?;
    let startup = began.elapsed();
    let addr: std::net::SocketAddr = first
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("unexpected first line: {first}"))?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let pid = child.id();
    let mut r = Report::new("records");
    r.server_rss_before = pid.and_then(crate::rss_bytes);
    r.extra
        .push(("start-up ms".into(), startup.as_secs_f64() * 1000.0));

    let (status, body) = get(addr, "/v1/tickets?limit=1", TOKEN).await?;
    if status != 200 {
        bail!("GET /v1/tickets answered {status}: {body}");
    }
    let mut rng = Rng(42);
    let mut search = histogram();
    let mut search_filtered = histogram();
    let mut stats = histogram();
    let mut stats_grouped = histogram();
    let month_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64
        - 30 * 86_400_000;
    for i in 0..queries {
        let q = if i % 2 == 0 {
            rng.word().to_owned()
        } else {
            format!("{} {}", rng.word(), rng.word())
        };
        let mut calls = vec![
            (
                format!("/v1/tickets?q={q}&limit=50").replace(' ', "%20"),
                &mut search,
            ),
            (
                format!("/v1/tickets?q={q}&department=sales&limit=50").replace(' ', "%20"),
                &mut search_filtered,
            ),
        ];
        if i % 5 == 0 {
            calls.push((format!("/v1/stats?since={month_ago}"), &mut stats));
            calls.push((
                format!("/v1/stats?since={month_ago}&group=agent"),
                &mut stats_grouped,
            ));
        }
        for (path, h) in calls {
            let t = Instant::now();
            let (status, body) = get(addr, &path, TOKEN).await?;
            if status != 200 {
                r.errors += 1;
                eprintln!("{path}: {status} {body}");
            }
            h.record(t.elapsed().as_micros().max(1) as u64).ok();
        }
    }
    r.server_rss_after = pid.and_then(crate::rss_bytes);
    r.latencies = vec![
        ("search".into(), search),
        ("search + department".into(), search_filtered),
        ("stats, 30 days".into(), stats),
        ("stats by agent, 30 days".into(), stats_grouped),
    ];
    r.duration_secs = began.elapsed().as_secs_f64();
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(r)
}
