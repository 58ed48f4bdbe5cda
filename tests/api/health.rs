//! Liveness and readiness over plain HTTP.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::helpers::*;

both_backends!(health_and_readiness);

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

/// `/healthz` answers; `/readyz` answers 200 once the backend (and Redis pub/sub) is up.
async fn health_and_readiness(backend: Backend) {
    let app = spawn_app(backend, config(&[])).await;
    assert!(get(app.addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    // The Redis subscription comes up asynchronously: poll readiness as a client would.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = get(app.addr, "/readyz").await;
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(std::time::Instant::now() < deadline, "never ready: {r}");
        tokio::task::yield_now().await;
    }
    let r = get(app.addr, "/nope").await;
    assert!(
        r.starts_with("HTTP/1.1 404") && r.contains("not_found"),
        "{r}"
    );
    app.stop().await;
}

/// Redis gone: `/readyz` says so with a 503 well inside the second a health check waits, instead
/// of timing out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_fast_when_redis_is_gone() {
    let mut redis = PrivateRedis::start();
    let mut cfg = config(&[]);
    cfg.redis_url = Some(redis.url.clone());
    cfg.key_prefix = unique_prefix();
    // Memory here only means: leave this configuration's Redis as it is.
    let app = spawn_with(Backend::Memory, cfg, None).await;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(1))
        .build()
        .unwrap();
    let url = format!("http://{}/readyz", app.addr);
    let deadline = std::time::Instant::now() + WAIT;
    while client.get(&url).send().await.unwrap().status() != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::task::yield_now().await;
    }
    redis.kill();
    // The probe notices within a second; every answer meanwhile comes within the check's second.
    until_ready_is(app.addr, 503).await;
    for _ in 0..3 {
        let status = client
            .get(&url)
            .send()
            .await
            .expect("an answer within the health check's second")
            .status();
        assert_eq!(status, 503);
    }
    app.stop().await;
}

/// A node on a Redis of the test's own (its own key prefix too), once `/readyz` says ready.
async fn node_on(redis_url: &str, agents: &[AgentSpec]) -> TestApp {
    node_with_prefix(redis_url, agents, None).await.0
}

/// As `node_on`, with `redis_ca_file`; also returns the node's key prefix.
async fn node_with_prefix(
    redis_url: &str,
    agents: &[AgentSpec],
    ca: Option<std::path::PathBuf>,
) -> (TestApp, String) {
    let mut cfg = config(agents);
    cfg.redis_url = Some(redis_url.to_owned());
    cfg.redis_ca_file = ca;
    cfg.key_prefix = unique_prefix();
    let prefix = cfg.key_prefix.clone();
    let app = spawn_with(Backend::Memory, cfg, None).await;
    until_ready_is(app.addr, 200).await;
    (app, prefix)
}

/// The agent closes the chat; the texts of its messages, as its ticket keeps them.
async fn closed_transcript(app: &TestApp, agent: &mut Client, conv: &str) -> Vec<String> {
    agent
        .send(serde_json::json!({"type": "close", "conversation": conv}))
        .await;
    agent.wait_type("closed").await;
    let (_, ticket) = admin_get(app, &format!("/v1/tickets/{conv}")).await;
    ticket["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "message")
        .filter_map(|e| e["text"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until `/readyz` answers `status`, each answer within a health check's second.
pub async fn until_ready_is(addr: std::net::SocketAddr, status: u16) -> String {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(1))
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .expect("an answer within the health check's second");
        if r.status().as_u16() == status {
            return r.text().await.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never answered {status}"
        );
        tokio::task::yield_now().await;
    }
}

/// Redis demoted to a read-only replica (as after a failover): `/readyz` says 503 until it is
/// a primary again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_refuses_a_replica() {
    let redis = PrivateRedis::start();
    let app = node_on(&redis.url, &[]).await;
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // A primary that does not exist: the server turns read-only at once.
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let why = until_ready_is(app.addr, 503).await;
    assert!(why.contains("replica"), "{why}");
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut conn)
        .await
        .unwrap();
    until_ready_is(app.addr, 200).await;
    app.stop().await;
}

/// Redis restarted without its data: the node notices on its own (the epoch key is gone),
/// registers its agents again, puts its consoles' presence and status back, tells the agent and
/// the visitor that their chat is gone, and routes new chats within seconds, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_heals_without_a_restart() {
    let mut redis = PrivateRedis::start();
    let app = node_on(&redis.url, &[alice(3)]).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (v, conv) = chat_with(&app, &mut alice, "m1", "hello before the crash").await;
    redis.restart_empty();
    heals_after_losing_its_data(app, alice, v, conv).await;
}

/// On a cluster, one shard loses its data (FLUSHALL on the site's primary, which its replica
/// follows) while the others keep theirs: the node notices by the site's own epoch and heals
/// as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_shard_emptied_heals_without_a_restart() {
    let cluster = RedisCluster::start();
    let (app, prefix) = node_with_prefix(&cluster.url(), &[alice(3)], None).await;
    let key = format!("{prefix}:{{{SITE}}}:epoch");
    let mut alice = agent_client(&app, "alice", "online").await;
    let (v, conv) = chat_with(&app, &mut alice, "m1", "hello before the crash").await;
    cluster.flush(cluster.primary_of(&key));
    heals_after_losing_its_data(app, alice, v, conv).await;
}

/// After Redis lost the node's data: the agent and the visitor are told their chat is gone,
/// the node is ready again, and new chats are routed to the console connected all along.
async fn heals_after_losing_its_data(app: TestApp, mut alice: Client, mut v: Client, conv: String) {
    let released = alice
        .wait_for("the lost chat released", |m| {
            m["type"] == "unassigned" && m["conversation"] == conv.as_str()
        })
        .await;
    assert_eq!(released["reason"], "lost");
    let e = v.wait_error("conversation_lost").await;
    assert_eq!(e["conversation"], conv.as_str());
    until_ready_is(app.addr, 200).await;

    // A new chat is routed to the console that was connected all along.
    let (mut w, _) = visitor(&app, serde_json::json!({})).await;
    let new = say(&mut w, "w1", "anyone after the crash?").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (taken, _) = wait_assigned(&mut alice).await;
    assert_eq!(taken, new);
    // The old visitor's next message starts a new conversation, which is routed too.
    let again = say(&mut v, "m2", "are you still there?").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(again, conv);
    let (taken, _) = wait_assigned(&mut alice).await;
    assert_eq!(taken, again);
    let (_, agents) = admin_get(&app, "/v1/agents").await;
    assert_eq!(agents["agents"][0]["name"], "Alice Moreau", "{agents}");
    assert_eq!(agents["agents"][0]["status"], "online", "{agents}");
    app.stop().await;
}

/// How long a failover may take before the test fails: Sentinel marks the primary down after
/// 1 s and may need a second election (its failover timeout is 5 s) on a loaded machine.
const FAILOVER: std::time::Duration = std::time::Duration::from_secs(30);

/// Sends a message until it is acknowledged: an `unavailable` answer (the backend failing
/// over) is retried with the same client id, as clients do; the ack.
async fn send_until_acked(c: &mut Client, frame: serde_json::Value) -> serde_json::Value {
    let id = frame["client_id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + FAILOVER;
    loop {
        c.send(frame.clone()).await;
        let answer = c
            .wait_for("an ack or a refusal", |m| {
                m["client_id"] == id.as_str() && (m["type"] == "ack" || m["type"] == "error")
            })
            .await;
        if answer["type"] == "ack" {
            return answer;
        }
        assert_eq!(answer["code"], "unavailable", "{answer}");
        assert!(std::time::Instant::now() < deadline, "never acknowledged");
        tokio::task::yield_now().await;
    }
}

/// Redis behind Sentinel: the primary is killed (kill -9) during a chat; Sentinel promotes the
/// replica, the node follows it, and the chat goes on: messages sent meanwhile are retried until
/// acknowledged, everything acknowledged before is still in the log, nothing arrives twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_keeps_the_chat_going() {
    sentinel_failover(None).await;
}

/// The same with TLS everywhere (`rediss+sentinel://`): the Sentinel, the primary and the
/// replica speak TLS only, their certificates checked against `redis_ca_file`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_over_tls() {
    sentinel_failover(Some(TestCerts::make())).await;
}

async fn sentinel_failover(tls: Option<TestCerts>) {
    let mut set = match &tls {
        Some(certs) => SentinelSet::start_tls(certs),
        None => SentinelSet::start(),
    };
    let chat = Outage::begin(set.url(), tls.as_ref().map(TestCerts::ca)).await;
    // Replication is asynchronous: what the replica has not received dies with the primary.
    // Wait for it, as a primary under steady load would have shipped it within milliseconds.
    let primary = match &tls {
        Some(certs) => redis::Client::build_with_tls(
            set.primary.url.as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(certs.ca()).unwrap()),
            },
        )
        .unwrap(),
        None => redis::Client::open(set.primary.url.as_str()).unwrap(),
    };
    let mut p = primary.get_multiplexed_async_connection().await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        // Short waits: the client gives up on an answer after a while of its own.
        let replicas: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(200)
            .query_async(&mut p)
            .await
            .unwrap();
        if replicas == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never caught up"
        );
    }
    drop(p);
    set.primary.kill();
    chat.goes_on().await;
}

/// Redis Cluster (six processes, `redis+cluster://`): the primary of the site's shard is
/// killed (kill -9) during a chat; `/readyz` says 503 until its replica has taken over and the
/// node has followed the slot and its sharded subscription; the chat goes on with nothing
/// acknowledged lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_keeps_the_chat_going() {
    let mut cluster = RedisCluster::start();
    let chat = Outage::begin(cluster.url(), None).await;
    let primary = cluster.primary_of(&format!("{}:{{{SITE}}}:ev", chat.prefix));
    cluster.sync_replica(primary);
    cluster.kill(primary);
    // Until the replica has taken the slot and the site's channel is subscribed there again.
    until_ready_is(chat.app.addr, 503).await;
    chat.goes_on().await;
}

/// A primary of the cluster gone, even one that holds none of this node's sites: not ready
/// at once, not only when the other nodes declare it failed (Redis's default node timeout is
/// 15 s) and the whole cluster stops answering until a replica takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_primary_lost_is_not_ready_before_the_cluster_notices() {
    let mut cluster = RedisCluster::start_with(std::time::Duration::from_secs(15));
    let (app, prefix) = node_with_prefix(&cluster.url(), &[alice(2)], None).await;
    until_ready_is(app.addr, 200).await;
    let site = cluster.primary_of(&format!("{prefix}:{{{SITE}}}:ev"));
    let other = (0..)
        .map(|i| cluster.primary_of(&format!("slot{i}")))
        .find(|p| *p != site)
        .unwrap();
    cluster.kill(other);
    // Within WAIT (10 s): before the 15 s after which CLUSTER INFO would say so.
    until_ready_is(app.addr, 503).await;
    app.stop().await;
}

/// On a cluster each site has its own sharded channel on its own shard: a site added at run
/// time (over the admin API), whose slot is on another primary than the first site's, is heard
/// at once, and chats on both sites relay both ways; removed again, it is no longer listened to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_follows_sites_added_at_run_time() {
    use serde_json::json;
    let cluster = RedisCluster::start();
    let (app, prefix) = node_with_prefix(&cluster.url(), &[alice(2)], None).await;
    let a = app.addr;
    let shard = |site: &str| cluster.primary_of(&format!("{prefix}:{{{site}}}:ev"));
    let other = (0..)
        .map(|i| format!("shop{i}"))
        .find(|s| shard(s) != shard(SITE))
        .unwrap();
    let body =
        json!({"id": other, "allowed_origins": [ORIGIN], "departments": [{"id": "support"}]});
    assert_eq!(admin(a, "POST", "/v1/sites", Some(body)).await.0, 201);
    let bob =
        json!({"id": "bob", "name": "Bob Stone", "departments": ["support"], "max_concurrent": 2});
    let path = format!("/v1/sites/{other}/agents");
    assert_eq!(admin(a, "POST", &path, Some(bob)).await.0, 201);
    let (_, t) = admin(a, "POST", &format!("{path}/bob/token"), None).await;
    let mut bob = connect(a, "/v1/agent", None).await.unwrap();
    bob.send(json!({"type": "hello", "token": t["token"], "status": "online"}))
        .await;
    bob.wait_type("welcome").await;
    let mut v = connect(a, &format!("/v1/visitor?site={other}"), Some(ORIGIN))
        .await
        .unwrap();
    v.send(json!({"type": "hello", "page": {"url": "https://shop.test/"}}))
        .await;
    v.wait_type("welcome").await;
    say(&mut v, "m1", "hello, new shop").await;
    let (conv, _) = wait_assigned(&mut bob).await;
    agent_say(&mut bob, &conv, "b1", "welcome to the new shop").await;
    v.wait_for("Bob's reply", |m| {
        m["type"] == "event" && m["event"]["text"] == "welcome to the new shop"
    })
    .await;
    say(&mut v, "m2", "thanks").await;
    bob.wait_for("the visitor's next message", |m| {
        m["type"] == "event" && m["event"]["text"] == "thanks"
    })
    .await;
    // The first site, on its own shard, relays as before.
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut w, conv) = chat_with(&app, &mut alice, "m1", "and the first shop?").await;
    agent_say(&mut alice, &conv, "a1", "here too").await;
    w.wait_for("Alice's reply", |m| {
        m["type"] == "event" && m["event"]["text"] == "here too"
    })
    .await;
    // A site removed at run time: the node stops listening to its channel.
    let channel = format!("{prefix}:{{{other}}}:ev");
    assert_eq!(cluster.shard_subscribers(shard(&other), &channel), 1);
    let (status, _) = admin(a, "DELETE", &format!("/v1/sites/{other}"), None).await;
    assert_eq!(status, 204);
    let deadline = std::time::Instant::now() + WAIT;
    while cluster.shard_subscribers(shard(&other), &channel) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the node still listens to the removed site's channel"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.stop().await;
}

/// A chat on a node of its own, interrupted by a failover or a restart of its Redis.
struct Outage {
    app: TestApp,
    prefix: String,
    alice: Client,
    visitor: Client,
    conv: String,
}

impl Outage {
    /// A node on `url`, and a first exchange between a visitor and Alice.
    async fn begin(url: String, ca: Option<std::path::PathBuf>) -> Self {
        let (app, prefix) = node_with_prefix(&url, &[alice(2)], ca).await;
        let mut alice = agent_client(&app, "alice", "online").await;
        let (visitor, conv) = chat_with(&app, &mut alice, "m1", "before the outage").await;
        agent_say(&mut alice, &conv, "a1", "a reply before it").await;
        Self {
            app,
            prefix,
            alice,
            visitor,
            conv,
        }
    }

    /// After the outage: both sides send until acknowledged (an `unavailable` answer is
    /// retried, as clients do), each hears the other, the node is ready again, the ticket has
    /// everything acknowledged, each once, in order, and no chat was released as lost (the data
    /// and its epoch survived: no rebuild).
    async fn goes_on(self) {
        let Self {
            app,
            mut alice,
            visitor: mut v,
            conv,
            ..
        } = self;
        let ack = send_until_acked(
            &mut v,
            serde_json::json!({"type": "message", "client_id": "m2", "text": "during the outage"}),
        )
        .await;
        assert_eq!(ack["conversation"], conv.as_str(), "the same chat goes on");
        alice
            .wait_for("the visitor's message after the outage", |m| {
                m["type"] == "event" && m["event"]["text"] == "during the outage"
            })
            .await;
        send_until_acked(
            &mut alice,
            serde_json::json!({"type": "message", "conversation": conv, "client_id": "a2", "text": "still here"}),
        )
        .await;
        v.wait_for("the agent's reply after the outage", |m| {
            m["type"] == "event" && m["event"]["text"] == "still here"
        })
        .await;
        until_ready_is(app.addr, 200).await;
        let (_, agents) = admin_get(&app, "/v1/agents").await;
        assert_eq!(agents["agents"][0]["status"], "online", "{agents}");
        let texts = closed_transcript(&app, &mut alice, &conv).await;
        assert_eq!(
            texts,
            [
                "before the outage",
                "a reply before it",
                "during the outage",
                "still here"
            ],
            "the ticket"
        );
        assert!(
            alice.drain().iter().all(|m| m["reason"] != "lost"),
            "no chat was lost, so none was released"
        );
        app.stop().await;
    }
}

/// Redis with an append-only file killed (kill -9) and started again mid-chat: nothing
/// acknowledged is lost, the chat goes on in the same conversation, and no rebuild is needed
/// (the epoch survived with the data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_with_persistence_loses_nothing() {
    let mut redis = PrivateRedis::start_persistent();
    let chat = Outage::begin(redis.url.clone(), None).await;
    redis.restart();
    chat.goes_on().await;
}

/// Redis over TLS (`rediss://`), its certificate signed by the authority in `redis_ca_file`:
/// the node is ready and a chat works end to end. Without that authority the node refuses to
/// start rather than talk to a server it cannot verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls() {
    let redis = TlsRedis::start();
    let mut cfg = config(&[alice(2)]);
    cfg.redis_url = Some(redis.url.clone());
    cfg.key_prefix = unique_prefix();
    let untrusted = switchboard::server::Application::build(cfg.clone()).await;
    assert!(untrusted.is_err(), "an unverified server is refused");
    cfg.redis_ca_file = Some(redis.ca.clone());
    let app = spawn_with(Backend::Memory, cfg, None).await;
    until_ready_is(app.addr, 200).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, conv) = chat_with(&app, &mut alice, "m1", "hello over TLS").await;
    agent_say(&mut alice, &conv, "a1", "answered over TLS").await;
    v.wait_for("the reply", |m| {
        m["type"] == "event" && m["event"]["text"] == "answered over TLS"
    })
    .await;
    app.stop().await;
}
