//! Visitors are bounded: one who comes and goes costs no live state once gone, only a record in
//! the database that expires (`visitor_retention_days`).

use serde_json::json;

use crate::helpers::*;
use crate::{all_stores, both_backends};

both_backends!(visitors_who_leave_leave_no_live_state);
both_backends!(welcome_lists_each_department_open_or_when_it_opens);
// The zone, the device and the country are kept on the visitor's record and the ticket: on
// both databases too.
all_stores!(
    the_visitors_time_zone_reaches_the_agent,
    the_visitors_device_and_country_reach_the_agent,
);

/// The widget's time zone is kept on the visitor's profile (agents show their local time); a
/// zone the server does not know is not.
async fn the_visitors_time_zone_reaches_the_agent(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, _) = visitor(&app, json!({"timezone": "Europe/Berlin", "name": "Vera"})).await;
    say(&mut v, "m1", "hello").await;
    let (_, assigned) = wait_assigned(&mut alice).await;
    assert_eq!(
        assigned["visitor"]["timezone"], "Europe/Berlin",
        "{assigned}"
    );
    let (_, live) = admin_get(&app, "/v1/visitors?site=test").await;
    assert!(
        live["visitors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["timezone"] == "Europe/Berlin"),
        "{live}"
    );
    let (_w, _) = visitor(&app, json!({"timezone": "Mars/Olympus_Mons"})).await;
    let (_, live) = admin_get(&app, "/v1/visitors?site=test").await;
    assert!(
        live["visitors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["timezone"] != "Mars/Olympus_Mons"),
        "{live}"
    );
    app.stop().await;
}

/// The live-list row of the visitor named `name`.
async fn live_row(app: &TestApp, name: &str) -> serde_json::Value {
    let (_, live) = admin_get(app, "/v1/visitors?site=test").await;
    let rows = live["visitors"].as_array().unwrap();
    let row = rows.iter().find(|l| l["name"] == name);
    row.cloned()
        .unwrap_or_else(|| panic!("{name} is in the live list: {live}"))
}

/// A visitor's browser, system and kind of device are read from their User-Agent, and their
/// country from the header a trusted proxy sets (`country_header`): agents see both in the
/// assignment, the live list and the ticket. From anyone else the header is not believed.
async fn the_visitors_device_and_country_reach_the_agent(backend: Backend) {
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    let mut cfg = config(&[alice(2)]);
    cfg.country_header = Some("CF-IPCountry".into());
    cfg.trusted_proxies = vec!["127.0.0.1".to_owned().try_into().unwrap()];
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let hello = || json!({"type": "hello", "name": "Nina", "page": {"url": "https://shop.test/"}});
    let mut v = connect_with(
        app.addr,
        &format!("/v1/visitor?site={SITE}"),
        Some(ORIGIN),
        &[("user-agent", IPHONE), ("cf-ipcountry", "no")],
    )
    .await
    .unwrap();
    v.send(hello()).await;
    v.wait_type("welcome").await;
    say(&mut v, "m1", "hello").await;
    let (conv, assigned) = wait_assigned(&mut alice).await;
    let expected = json!({"browser": "safari", "version": 18, "os": "ios", "kind": "phone"});
    assert_eq!(assigned["visitor"]["device"], expected, "{assigned}");
    assert_eq!(assigned["visitor"]["country"], "NO", "{assigned}");
    let row = live_row(&app, "Nina").await;
    assert_eq!(
        (&row["device"], &row["country"]),
        (&expected, &json!("NO")),
        "{row}"
    );
    alice
        .send(json!({"type": "close", "conversation": conv}))
        .await;
    alice.wait_type("closed").await;
    until_status(&app, &format!("/v1/tickets/{conv}"), 200).await;
    let (_, t) = admin_get(&app, &format!("/v1/tickets/{conv}")).await;
    assert_eq!(
        (&t["visitor"]["device"], &t["visitor"]["country"]),
        (&expected, &json!("NO")),
        "{t}"
    );
    app.stop().await;

    // Not behind a trusted proxy: the header is anyone's word, and ignored.
    let mut cfg = config(&[]);
    cfg.country_header = Some("CF-IPCountry".into());
    let app = spawn_app(backend, cfg).await;
    let mut v = connect_with(
        app.addr,
        &format!("/v1/visitor?site={SITE}"),
        Some(ORIGIN),
        &[("cf-ipcountry", "NO")],
    )
    .await
    .unwrap();
    v.send(hello()).await;
    v.wait_type("welcome").await;
    let row = live_row(&app, "Nina").await;
    assert!(row["country"].is_null(), "{row}");
    app.stop().await;
}

/// The welcome tells a visitor, for every department, whether a first message would reach an
/// agent now and when a closed one opens: Support closed by its hours (Monday 08:30 in Berlin,
/// opening at 09:00) while Sales is staffed.
async fn welcome_lists_each_department_open_or_when_it_opens(backend: Backend) {
    let mut cfg = config(&[agent("alice", "Alice Moreau", &["support", "sales"], 2)]);
    cfg.sites[0].departments[0].hours = Some(
        toml::from_str(
            r#"timezone = "Europe/Berlin"
               monday = ["09:00-17:00"]"#,
        )
        .unwrap(),
    );
    let clock = TestClock::at("2026-11-23T07:30:00Z");
    let app = spawn_full(backend, cfg, None, clock.clone()).await;
    let _alice = agent_client(&app, "alice", "online").await;
    let (_v, welcome) = visitor(&app, json!({})).await;
    assert_eq!(
        welcome["available"], false,
        "support is the default: {welcome}"
    );
    let departments = welcome["departments"].as_array().unwrap();
    let find = |id: &str| departments.iter().find(|d| d["id"] == id).unwrap().clone();
    let support = find("support");
    assert_eq!(support["available"], false, "{welcome}");
    // 09:00 in Berlin is 08:00 UTC.
    let opens = "2026-11-23T08:00:00Z".parse::<jiff::Timestamp>().unwrap();
    assert_eq!(support["opens_at"], opens.as_millisecond(), "{welcome}");
    let sales = find("sales");
    assert_eq!(sales["available"], true, "{welcome}");
    assert!(sales.get("opens_at").is_none(), "{welcome}");
    app.stop().await;
}

/// The Redis keys a deployment's prefix has, sorted.
async fn redis_keys(prefix: &str) -> Vec<String> {
    use redis::AsyncCommands;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut r = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = r.keys(format!("{prefix}*")).await.unwrap();
    keys.sort();
    keys
}

/// 150 anonymous visitors connect, say hello and leave without writing: each leaves the live
/// list when they go, nothing of theirs stays in live state (on Redis the key count is back
/// where it was), and their records are in the database.
async fn visitors_who_leave_leave_no_live_state(backend: Backend) {
    const VISITORS: usize = 150;
    let prefix = unique_prefix();
    let cfg = config(&[alice(2)]);
    let app = spawn_with(backend, cfg.clone(), Some(&prefix)).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    alice
        .send(json!({"type": "watch_visitors", "on": true}))
        .await;
    alice.wait_type("visitors").await;
    let before = redis_keys(&prefix).await;
    for _ in 0..VISITORS {
        let (v, welcome) = visitor(&app, json!({})).await;
        let id = welcome["visitor_id"].clone();
        drop(v);
        alice
            .wait_for("the visitor left", |m| {
                m["type"] == "visitor_left" && m["id"] == id
            })
            .await;
    }
    let (status, live) = admin_get(&app, "/v1/visitors").await;
    assert_eq!(status, 200, "{live}");
    assert_eq!(live["visitors"], json!([]), "nobody is on the site");
    if backend == Backend::Redis {
        // Once under a loaded CI run one key more was counted here, once: the keys may take a
        // moment to settle after the last socket's end. Wait for them to come back to what they
        // were, and name any that stays.
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut after = redis_keys(&prefix).await;
        while after != before && tokio::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
            after = redis_keys(&prefix).await;
        }
        assert_eq!(after, before, "no key outlives a visitor");
    }
    let db = switchboard::db::Database::open(&switchboard::db::default_url(&cfg.data_dir))
        .await
        .unwrap();
    let records: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM visitors")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(records as usize, VISITORS, "each visitor has a record");
    app.stop().await;
}
