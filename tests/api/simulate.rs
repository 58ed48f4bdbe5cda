//! `switchboard simulate` on a recorded run (docs/routing.md, "The policy simulator"): the
//! database's tickets replayed through the policy in force give each chat the wait it had,
//! and a candidate policy changes what it should. On both state backends and both databases.

use std::time::Duration;

use serde_json::json;
use switchboard::simulate::{Request, run};

use crate::all_stores;
use crate::helpers::*;

all_stores!(the_simulator_replays_a_recorded_run);

/// Two agents of one chat each; chats arrive at 0, 0, 1 and 6 s (the test clock) and are
/// closed at 5, 10, 12 and 15 s, so the third waits 4 s for the first slot and the fourth 4 s
/// for the second. Replayed from the tickets, each chat waits what it waited; under a
/// candidate policy with a 3 s longest wait, the two that waited reach the offline form.
async fn the_simulator_replays_a_recorded_run(backend: Backend) {
    let mut config = config(&[alice(1), boris(1)]);
    if backend == Backend::Postgres {
        config.database_url = Some(postgres_database(&config).await);
    }
    let clock = TestClock::at("2026-12-01T10:00:00Z");
    let app = spawn_full(backend, config.clone(), None, clock.clone()).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut boris = agent_client(&app, "boris", "online").await;
    let mut consoles = [&mut alice, &mut boris];
    // Who took which chat: (conversation, console index).
    let mut held: Vec<(String, usize)> = Vec::new();
    let mut visitors = Vec::new();
    let c1 = arrive(&app, &mut visitors).await;
    held.push((c1.clone(), taker(&mut consoles, &c1).await));
    let c2 = arrive(&app, &mut visitors).await;
    held.push((c2.clone(), taker(&mut consoles, &c2).await));
    clock.advance(Duration::from_secs(1));
    let c3 = arrive(&app, &mut visitors).await;
    clock.advance(Duration::from_secs(4));
    close(&mut consoles, &held, &c1).await;
    held.push((c3.clone(), taker(&mut consoles, &c3).await));
    clock.advance(Duration::from_secs(1));
    let c4 = arrive(&app, &mut visitors).await;
    clock.advance(Duration::from_secs(4));
    close(&mut consoles, &held, &c2).await;
    held.push((c4.clone(), taker(&mut consoles, &c4).await));
    clock.advance(Duration::from_secs(2));
    close(&mut consoles, &held, &c3).await;
    clock.advance(Duration::from_secs(3));
    close(&mut consoles, &held, &c4).await;
    drop(visitors);
    app.stop().await;

    let policy = config.data_dir.join("three-seconds.toml");
    std::fs::write(
        &policy,
        "name = \"at most 3 s\"\n[routing]\nmax_wait_secs = 3\n",
    )
    .unwrap();
    let request = Request {
        site: None,
        since: Some(parse_time("2026-12-01T00:00:00Z")),
        until: Some(parse_time("2026-12-02T00:00:00Z")),
        trace: None,
        policies: vec![policy],
    };
    let reports = run(&config, &request).await.expect("the simulation runs");
    let now = &reports[0];
    assert_eq!((now.chats, now.served, now.offline), (4, 4, 0), "{now:?}");
    // The waits were 0, 0, 4 and 4 s: the median is 0, the 90th percentile 4 s.
    // The test clock also runs with the wall clock between its jumps: a few ms.
    assert!(now.wait_p50_secs < 0.1, "{now:?}");
    assert!((now.wait_p90_secs - 4.0).abs() < 0.1, "{now:?}");
    assert!(
        now.replay_error_max_ms.is_some_and(|e| e < 100),
        "every chat waits what it waited: {now:?}"
    );
    // At most 3 s: the third chat reaches the offline form at 4 s; the fourth finds the first
    // slot free (from 5 s) when it arrives at 6 s.
    let strict = &reports[1];
    assert_eq!(strict.policy, "at most 3 s");
    assert_eq!((strict.served, strict.offline), (3, 1), "{strict:?}");
}

/// A visitor whose first message opens a chat; its id.
async fn arrive(app: &TestApp, visitors: &mut Vec<Client>) -> String {
    let (mut v, _) = visitor(app, json!({})).await;
    let c = say(&mut v, "m", "hello").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    visitors.push(v);
    c
}

/// Which console took the chat, once one has.
async fn taker(consoles: &mut [&mut Client; 2], conv: &str) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for (i, c) in consoles.iter_mut().enumerate() {
            c.sync().await;
            if c.drain()
                .iter()
                .any(|m| m["type"] == "assigned" && m["conversation"]["id"] == conv)
            {
                return i;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "nobody took {conv}");
    }
}

async fn close(consoles: &mut [&mut Client; 2], held: &[(String, usize)], conv: &str) {
    let i = held.iter().find(|(c, _)| c == conv).expect("held").1;
    let c = &mut consoles[i];
    c.send(json!({"type": "close", "conversation": conv})).await;
    c.wait_for("closed", |m| {
        m["type"] == "closed" && m["conversation"] == conv
    })
    .await;
}
