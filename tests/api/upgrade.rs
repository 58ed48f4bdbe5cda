//! Rolling upgrades on one database: a node serves a schema that a newer release expanded
//! (a table and a column it does not know, and a migration it does not have), and comes back
//! after a restart mid-rollout, on SQLite and on PostgreSQL.

use crate::helpers::*;
use crate::tickets::{agent_closes, ticket};

crate::backend_tests!([memory = Memory, postgres = Postgres] a_node_serves_a_schema_a_newer_release_expanded);

async fn a_node_serves_a_schema_a_newer_release_expanded(backend: Backend) {
    let mut cfg = config(&[alice(2)]);
    let url = match backend {
        Backend::Postgres => {
            let url = postgres_database(&cfg).await;
            cfg.database_url = Some(url.clone());
            url
        }
        _ => switchboard::db::default_url(&cfg.data_dir),
    };
    // Migrated by this release, then by the next one: an expand migration it recorded.
    let db = switchboard::db::Database::open(&url).await.unwrap();
    let next = switchboard::db::Database::schema_version() + 1;
    for sql in [
        "CREATE TABLE future_feature (id TEXT PRIMARY KEY, note TEXT)",
        "ALTER TABLE tickets ADD COLUMN future_column TEXT",
    ] {
        sqlx::query(sql).execute(db.pool()).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'a newer release', TRUE, $2, 0)",
    )
    .bind(next)
    .bind(vec![0u8; 48])
    .execute(db.pool())
    .await
    .unwrap();
    db.close().await;

    // The release before starts on it (it used to refuse: "migration … was previously
    // applied but is missing"), files a ticket into the expanded table, and restarts.
    for round in 0..2 {
        let app = spawn_app(backend, cfg.clone()).await;
        let mut alice = agent_client(&app, "alice", "online").await;
        let (_v, conv) = chat_with(&app, &mut alice, &format!("m{round}"), "hello").await;
        let id = agent_closes(&mut alice, &conv, "resolved").await;
        assert_eq!(ticket(&app, &id).await["id"], id.as_str());
        app.stop().await;
    }
    // The newer release's migration is still recorded, untouched.
    let db = switchboard::db::Database::open(&url).await.unwrap();
    let recorded: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(recorded, next);
    db.close().await;
}
