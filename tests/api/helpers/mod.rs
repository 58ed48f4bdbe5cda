//! Test harness: a real Switchboard on 127.0.0.1:0, on the embedded backend or on a real
//! redis-server that this harness starts (or that `SWITCHBOARD_TEST_REDIS_URL` names), and
//! WebSocket clients that wait for events with a timeout instead of sleeping.
//!
//! The process harnesses, one file per server kind: `redis`, `tls`, `sentinel`, `cluster`,
//! `postgres`, `smtp` (a mail sink) and `webhooks` (a receiver); `process` holds what they
//! share. `app` starts Switchboard itself; `clients` and `console` speak to it.

use std::time::Duration;

mod app;
mod clients;
mod cluster;
mod console;
mod postgres;
mod process;
mod push;
mod redis;
mod sentinel;
mod smtp;
mod tls;
mod webhooks;

pub use app::*;
pub use clients::*;
pub use cluster::*;
pub use console::*;
pub use postgres::*;
pub use process::*;
pub use push::*;
pub use redis::*;
pub use sentinel::*;
pub use smtp::*;
pub use tls::*;
pub use webhooks::*;

/// How long any single expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub const ORIGIN: &str = "http://shop.test";
pub const SITE: &str = "test";

/// Where a test server keeps its state. `Memory` and `Redis` are the two live-state backends
/// (records in SQLite: a file in the data directory); `Postgres` is the embedded backend with
/// its records in a real PostgreSQL that the harness starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
    Postgres,
}

/// One test per listed backend, in a module named after the scenario.
#[macro_export]
macro_rules! backend_tests {
    ([$($test:ident = $backend:ident),*] $name:ident) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$name($crate::helpers::Backend::$backend).await
                }
            )*
        }
    };
}

/// Generates `#[tokio::test]`s named `memory` and `redis` in a module named after the scenario.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        $crate::backend_tests!([memory = Memory, redis = Redis] $name);
    )*};
}

/// Adds a `postgres` test to those: for scenarios about records (tickets, the outbox), which
/// must hold on both live-state backends and on both databases.
#[macro_export]
macro_rules! all_stores {
    ($($name:ident),* $(,)?) => {$(
        $crate::backend_tests!([memory = Memory, redis = Redis, postgres = Postgres] $name);
    )*};
}
