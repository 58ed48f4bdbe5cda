//! `switchboard backup` and `restore`, as an operator runs them: the backup taken from a node
//! that serves, the restore refused while it runs, then put back after it stopped; the node,
//! run as the service user (when the tests run as root), comes back with what the backup held
//! and nothing after. `migrate` run as root leaves the database to the service user.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::helpers::*;
use crate::multinode::{Node, start_command};
use crate::restart::visitor_hello;

/// `nobody`: a user that owns nothing here, standing in for the package's `switchboard`.
const SERVICE_UID: u32 = 65534;

struct Setup {
    dir: PathBuf,
    config: PathBuf,
    data: PathBuf,
    /// A copy of the binary any user may run (the build's directory may be private to root).
    binary: PathBuf,
    /// Whether the node runs as `SERVICE_UID` (the tests run as root).
    as_service: bool,
}

impl Setup {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        // SAFETY: geteuid has no preconditions.
        let as_service = unsafe { libc::geteuid() } == 0;
        if as_service {
            std::os::unix::fs::chown(&data, Some(SERVICE_UID), Some(SERVICE_UID)).unwrap();
        }
        let text = config_toml(&[alice(2)])
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("data_dir") {
                    format!("data_dir = {:?}", data.display().to_string())
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config = dir.join("switchboard.toml");
        std::fs::write(&config, text).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let binary = dir.join("switchboard");
        std::fs::copy(env!("CARGO_BIN_EXE_switchboard"), &binary).unwrap();
        Self {
            dir,
            config,
            data,
            binary,
            as_service,
        }
    }

    /// `switchboard --config … ARGS`, run as the operator (this process's user).
    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.arg("--config").arg(&self.config).args(args);
        for var in ["SWITCHBOARD_REDIS_URL", "SWITCHBOARD_DATABASE_URL"] {
            cmd.env_remove(var);
        }
        cmd.output().unwrap()
    }

    /// The node, as the service user when there is one.
    async fn start(&self) -> Node {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.arg("--config").arg(&self.config);
        if self.as_service {
            cmd.uid(SERVICE_UID).gid(SERVICE_UID);
        }
        cmd.env_remove("SWITCHBOARD_DATABASE_URL");
        let (node, mut log) = start_command(cmd, false).await;
        tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
        node
    }

    /// The owner the data directory's files must have.
    fn owner(&self) -> u32 {
        std::fs::metadata(&self.data).unwrap().uid()
    }

    fn assert_owned(&self, file: &Path) {
        assert_eq!(
            std::fs::metadata(file).unwrap().uid(),
            self.owner(),
            "{} belongs to the data directory's owner",
            file.display()
        );
    }
}

/// Opens a chat with `text`, has alice pick it up and, when `close`, close it into a ticket.
async fn chat(node: &Node, alice: &mut Client, text: &str, close: bool) -> (Client, String) {
    let (mut v, welcome) = visitor_hello(node, json!({})).await;
    let welcome_token = welcome["token"].as_str().unwrap().to_owned();
    let conv = say(&mut v, "m1", text).await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (assigned, _) = wait_assigned(alice).await;
    assert_eq!(assigned, conv);
    if close {
        alice
            .send(json!({"type": "close", "conversation": conv}))
            .await;
        alice
            .wait_for("closed", |m| {
                m["type"] == "closed" && m["conversation"] == conv
            })
            .await;
    }
    (v, welcome_token)
}

/// The tickets `q` finds.
async fn found(node: &Node, q: &str) -> usize {
    let (status, body) = http(
        node.addr,
        "GET",
        &format!("/v1/tickets?q={q}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["tickets"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_what_it_held() {
    let s = Setup::new();
    let node = s.start().await;
    let mut alice = agent_client_at(node.addr, "alice").await;
    chat(&node, &mut alice, "beforebackup", true).await;
    let (_open, token) = chat(&node, &mut alice, "openatbackup", false).await;

    // Online: the node keeps serving while the copy is taken.
    let backup = s.dir.join("backup");
    let out = s.run(&["backup", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for file in ["switchboard.db", "live.db", "backup.json"] {
        assert!(backup.join(file).exists(), "{file} in the backup: {out:?}");
    }
    // Never over an earlier backup.
    let again = s.run(&["backup", backup.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");

    chat(&node, &mut alice, "afterbackup", true).await;
    assert_eq!(found(&node, "afterbackup").await, 1);

    // Refused while the node holds the data directory.
    let refused = s.run(&["restore", backup.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stop the node"),
        "{refused:?}"
    );

    drop(alice);
    node.terminate().await;
    let out = s.run(&["restore", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for file in ["switchboard.db", "live.db"] {
        s.assert_owned(&s.data.join(file));
        assert!(
            !s.data.join(format!("{file}-wal")).exists(),
            "no old log beside {file}"
        );
    }

    let node = s.start().await;
    assert_eq!(found(&node, "beforebackup").await, 1);
    assert_eq!(
        found(&node, "afterbackup").await,
        0,
        "later than the backup"
    );
    // The chat open at the backup is open again, where it was.
    let (_v, welcome) = visitor_hello(&node, json!({"token": token})).await;
    assert_eq!(welcome["conversation"]["state"], "active", "{welcome}");
    node.terminate().await;
}

/// `migrate` run as root in a data directory the service user owns leaves the database to
/// that user, who can then serve from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_as_root_leaves_the_database_to_the_service_user() {
    let s = Setup::new();
    let out = s.run(&["migrate"]);
    assert!(out.status.success(), "{out:?}");
    s.assert_owned(&s.data.join("switchboard.db"));
    let node = s.start().await;
    let mut alice = agent_client_at(node.addr, "alice").await;
    chat(&node, &mut alice, "aftermigrate", true).await;
    assert_eq!(found(&node, "aftermigrate").await, 1);
    node.terminate().await;
}
