//! Ticket records themselves: imports from earlier versions, migrations on both databases,
//! privacy requests and retention, SQLite durability.

use super::*;

all_stores!(privacy_requests_and_retention);

/// An upgrade from the JSON-file ticket store: its tickets and outbox entries, the complete
/// ones a crash left as `.tmp` files included, are imported into the database once, and the
/// directories are kept, renamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_is_imported_once() {
    let cfg = config(&[alice(2)]);
    let app = spawn_app(Backend::Memory, cfg).await;
    let mut console = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut console, "m1", "an old question").await;
    let id = agent_closes(&mut console, &conv, "resolved").await;
    let old = ticket(&app, &id).await;
    app.stop().await;

    // The layout the file store left: tickets/<id>.json, a torn-rename .tmp, an outbox entry.
    let cfg = config(&[alice(2)]);
    let dir = cfg.data_dir.clone();
    std::fs::create_dir_all(dir.join("tickets")).unwrap();
    std::fs::create_dir_all(dir.join("outbox")).unwrap();
    std::fs::write(dir.join(format!("tickets/{id}.json")), old.to_string()).unwrap();
    let mut crashed = old.clone();
    // Another valid id: the same with a different last character.
    let last = if id.ends_with('0') { '1' } else { '0' };
    let crashed_id = format!("{}{last}", &id[..id.len() - 1]);
    crashed["id"] = json!(crashed_id);
    std::fs::write(
        dir.join(format!("tickets/.{crashed_id}.json.tmp")),
        crashed.to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("tickets/.torn.json.tmp"), "{\"id\": \"01").unwrap();
    let dead = json!({"id": "d1", "site": SITE, "url": "http://127.0.0.1:9/hook",
        "event": "ticket.created", "body": "{}", "attempts": 9, "created_at": 1,
        "next_at": 1, "expires_at": 2, "last_error": "refused", "dead": true});
    std::fs::write(dir.join("outbox/d1.json"), dead.to_string()).unwrap();

    let app = spawn_app(Backend::Memory, cfg.clone()).await;
    assert_eq!(ticket(&app, &id).await, old);
    assert_eq!(ticket(&app, &crashed_id).await["id"], crashed_id.as_str());
    let (_, list) = admin_get(&app, "/v1/webhooks/dead").await;
    assert_eq!(list["deliveries"][0]["id"], "d1", "{list}");
    assert!(dir.join("tickets.imported").is_dir() && !dir.join("tickets").exists());
    assert!(dir.join("outbox.imported").is_dir());
    app.stop().await;
    // Once: a restart finds nothing more to import and keeps what it has.
    let app = spawn_app(Backend::Memory, cfg).await;
    let (_, list) = admin_get(&app, "/v1/tickets").await;
    assert_eq!(list["tickets"].as_array().unwrap().len(), 2);
    app.stop().await;
}

/// `switchboard migrate` brings an empty SQLite file and an empty PostgreSQL database to the
/// current schema, and running it again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_command_on_both_databases() {
    let cfg = config(&[]);
    let sqlite = format!("sqlite://{}", cfg.data_dir.join("records.db").display());
    let postgres = postgres_database(&cfg).await;
    for url in [sqlite, postgres] {
        for _ in 0..2 {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
                .args(["--database-url", &url, "migrate"])
                .output()
                .await
                .expect("switchboard runs");
            assert!(
                out.status.success(),
                "{url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let db = switchboard::db::Database::open(&url).await.unwrap();
        let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(
            version,
            switchboard::db::Database::schema_version(),
            "{url}"
        );
    }
}

/// Redis only: an upgrade from the version that kept tickets and the outbox in Redis. A node
/// copies them into the database once and renames the indexes; the next start imports nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tickets_are_imported_once() {
    use redis::AsyncCommands;
    // A real ticket, as an earlier version would have written it.
    let app = spawn_app(Backend::Memory, config(&[alice(2)])).await;
    let mut console = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut console, "m1", "kept in Redis").await;
    let id = agent_closes(&mut console, &conv, "resolved").await;
    let old = ticket(&app, &id).await;
    app.stop().await;

    let prefix = unique_prefix();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut r = client.get_multiplexed_async_connection().await.unwrap();
    let site = |rest: &str| format!("{prefix}:{{{SITE}}}:{rest}");
    let outbox = |rest: &str| format!("{prefix}:{{outbox}}:{rest}");
    let dead = json!({"id": "d1", "site": SITE, "url": "http://127.0.0.1:9/hook",
        "event": "ticket.created", "body": "{}", "attempts": 9, "created_at": 1,
        "next_at": 1, "expires_at": 2, "last_error": "refused", "dead": true});
    let _: () = redis::pipe()
        .set(site(&format!("t:{id}")), old.to_string())
        .zadd(site("tickets"), &id, 0)
        .set(outbox("d:d1"), dead.to_string())
        .zadd(outbox("dead"), "d1", 1)
        .query_async(&mut r)
        .await
        .unwrap();

    let cfg = config(&[alice(2)]);
    let app = spawn_with(Backend::Redis, cfg.clone(), Some(&prefix)).await;
    assert_eq!(ticket(&app, &id).await, old);
    let (_, list) = admin_get(&app, "/v1/webhooks/dead").await;
    assert_eq!(list["deliveries"][0]["id"], "d1", "{list}");
    let renamed: bool = r.exists(site("tickets:imported")).await.unwrap();
    let index: bool = r.exists(site("tickets")).await.unwrap();
    assert!(renamed && !index);
    app.stop().await;
    // The next start finds nothing to import, and the database still has the ticket.
    let app = spawn_with(Backend::Redis, cfg, Some(&prefix)).await;
    let (_, list) = admin_get(&app, "/v1/tickets").await;
    assert_eq!(list["tickets"].as_array().unwrap().len(), 1);
    app.stop().await;
}

/// A visitor's data is exported whole and erased everywhere (tickets, live profile and
/// conversation), never while they chat, each request audited; tickets past the retention
/// setting go on their own.
async fn privacy_requests_and_retention(backend: Backend) {
    let mut cfg = config(&[alice(3)]);
    cfg.retention_days = Some(30);
    let (app, clock) = spawn_with_clock(backend, cfg.clone()).await;
    let mut console = agent_client(&app, "alice", "online").await;
    let (mut v, welcome) =
        visitor(&app, json!({"name": "Vera", "email": "vera@example.com"})).await;
    let vid = welcome["visitor_id"].as_str().unwrap().to_owned();
    let conv = say(&mut v, "m1", "my address is 1 Main St").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_assigned(&mut console).await;
    let id = agent_closes(&mut console, &conv, "resolved").await;

    let (status, data) = admin_get(&app, &format!("/v1/visitors/{vid}/export")).await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["visitor"]["email"], "vera@example.com");
    assert_eq!(data["tickets"][0]["id"], id.as_str());
    assert!(data.to_string().contains("1 Main St"));

    // Not while a chat is open.
    let (mut w, wwelcome) = visitor(&app, json!({})).await;
    let wconv = say(&mut w, "m1", "still here").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_assigned(&mut console).await;
    let busy_visitor = wwelcome["visitor_id"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let erase = |who: String| {
        client
            .delete(format!("http://{}/v1/visitors/{who}", app.addr))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    let resp = erase(busy_visitor).await.unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "visitor_busy");

    let resp = erase(vid.clone()).await.unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let (status, _) = admin_get(&app, &format!("/v1/tickets/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = admin_get(&app, &format!("/v1/visitors/{vid}/export")).await;
    assert_eq!(status, 404);
    assert_eq!(erase(vid.clone()).await.unwrap().status().as_u16(), 404);
    let db = records_of(backend, &cfg).await;
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit WHERE subject = $1 ORDER BY action")
            .bind(&vid)
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(actions, ["visitor.erase", "visitor.export"]);
    // The same over REST, newest first, a page at a time; reading a transcript is there too.
    let (status, log) = admin_get(&app, &format!("/v1/audit?subject={vid}&limit=1")).await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["entries"][0]["action"], "visitor.erase");
    assert_eq!(log["entries"][0]["actor"], "admin");
    let cursor = log["next_cursor"].as_str().unwrap();
    let (_, rest) = admin_get(
        &app,
        &format!("/v1/audit?subject={vid}&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(rest["entries"][0]["action"], "visitor.export");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (status, _) = admin_get(&app, "/v1/audit?who=me").await;
    assert_eq!(status, 400);

    // Retention: 31 days later the other chat's ticket is gone too.
    let other = agent_closes(&mut console, &wconv, "resolved").await;
    ticket(&app, &other).await;
    let (_, reads) = admin_get(
        &app,
        &format!("/v1/audit?action=ticket.read&subject={other}"),
    )
    .await;
    assert_eq!(reads["entries"].as_array().unwrap().len(), 1, "{reads}");
    clock.advance(std::time::Duration::from_secs(31 * 86_400));
    until_status(&app, &format!("/v1/tickets/{other}"), 404).await;
    // The figures kept for /v1/stats lost both tickets too (one erased, one expired).
    let (_, figures) = admin_get(&app, "/v1/stats?since=0").await;
    assert_eq!(figures["chats"], 0, "{figures}");
    // And the visitor's record, unseen for 31 days (visitor_retention_days: 30 by default).
    let gone = wwelcome["visitor_id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM visitors WHERE id = $1")
            .bind(gone)
            .fetch_one(db.pool())
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the visitor record outlived its retention"
        );
        tokio::task::yield_now().await;
    }
    app.stop().await;
}

/// The durability setting reaches SQLite: `process` is synchronous=NORMAL, `power` FULL; and
/// the configuration file takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability_setting_reaches_sqlite() {
    use switchboard::db::{Database, Durability};
    let cfg = config(&[]);
    for (durability, level) in [(Durability::Process, 1), (Durability::Power, 2)] {
        let url = format!(
            "sqlite://{}",
            cfg.data_dir.join(format!("{level}.db")).display()
        );
        let db = Database::open_with(&url, durability).await.unwrap();
        let got: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(got, level, "{durability:?}");
    }
    let text = format!("durability = \"power\"\n{}", config_toml(&[]));
    let parsed = switchboard::config::Config::from_toml(&text).unwrap();
    assert_eq!(parsed.durability, Durability::Power);
}
