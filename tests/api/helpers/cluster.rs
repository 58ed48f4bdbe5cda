//! A Redis Cluster of several primaries (and replicas), for cluster tests.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;

/// A Redis Cluster of this test's own: three primaries and a replica of each (six
/// redis-server processes, `redis-cli --cluster create`), a node timeout of one second so a
/// replica takes over quickly. Killed when dropped.
pub struct RedisCluster {
    /// Each node's port and process.
    nodes: Vec<(u16, std::process::Child)>,
    /// The nodes' working directories (cluster configuration files), removed on drop.
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// A cluster whose nodes declare a silent peer failed after one second.
    pub fn start() -> Self {
        Self::start_with(Duration::from_secs(1))
    }

    /// A cluster whose nodes declare a silent peer failed after `node_timeout` (Redis's
    /// default is 15 s).
    pub fn start_with(node_timeout: Duration) -> Self {
        let dir = temp_dir();
        let node_timeout = node_timeout.as_millis().to_string();
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_port();
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let mut cmd = redis_command(port);
            // The bus port is the client port + 10,000 unless named: a free port of its own
            // (an ephemeral port + 10,000 may be taken, or past 65,535).
            let bus = free_port().to_string();
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                &node_timeout,
            ])
            .args(["--cluster-port", &bus])
            .arg("--dir")
            .arg(&node_dir);
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts (apt-get install redis-server)");
            wait_listening(port, "redis-server (cluster node)");
            nodes.push((port, child));
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for (port, _) in &nodes {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli runs (apt-get install redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let this = Self { nodes, dir };
        // Every node agrees the cluster is whole before a test uses it.
        let deadline = std::time::Instant::now() + WAIT;
        while !this.nodes.iter().all(|(port, _)| {
            this.cli(*port, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
        }) {
            assert!(
                std::time::Instant::now() < deadline,
                "the cluster never became whole"
            );
            std::thread::yield_now();
        }
        this
    }

    /// What a node is given: every node of the cluster as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// redis-cli's answer to a command on one node.
    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The port of the primary serving `key`'s slot now.
    pub fn primary_of(&self, key: &str) -> u16 {
        let first = self.nodes[0].0;
        let slot: u16 = self
            .cli(first, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("a slot number");
        self.cli(first, &["CLUSTER", "NODES"])
            .lines()
            .filter(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("master")))
            .find_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                let serves = f[8..].iter().any(|r| match r.split_once('-') {
                    Some((a, b)) => {
                        (a.parse().unwrap_or(u16::MAX)..=b.parse().unwrap_or(0)).contains(&slot)
                    }
                    None => r.parse() == Ok(slot),
                });
                let port = f[1].split(['@', ':']).nth(1)?.parse().ok()?;
                serves.then_some(port)
            })
            .expect("a primary serves the slot")
    }

    /// Waits until the primary on `port` has shipped everything to its replica (replication is
    /// asynchronous: what a replica lacks dies with its primary).
    pub fn sync_replica(&self, port: u16) {
        let deadline = std::time::Instant::now() + WAIT;
        while self.cli(port, &["WAIT", "1", "200"]).trim() != "1" {
            assert!(
                std::time::Instant::now() < deadline,
                "the replica never caught up"
            );
        }
    }

    /// How many clients of the node on `port` listen to the shard channel `channel`.
    pub fn shard_subscribers(&self, port: u16, channel: &str) -> u64 {
        let out = self.cli(port, &["PUBSUB", "SHARDNUMSUB", channel]);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(channel), "PUBSUB SHARDNUMSUB: {out}");
        lines
            .next()
            .and_then(|n| n.trim().parse().ok())
            .expect("a count")
    }

    /// FLUSHALL on the node on `port` (a primary: its replica follows).
    pub fn flush(&self, port: u16) {
        assert_eq!(self.cli(port, &["FLUSHALL"]).trim(), "OK");
    }

    /// kill -9 of the node on `port`; it is gone from the cluster's list.
    pub fn kill(&mut self, port: u16) {
        let at = self.nodes.iter().position(|(p, _)| *p == port).unwrap();
        let (_, mut child) = self.nodes.remove(at);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, c) in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
