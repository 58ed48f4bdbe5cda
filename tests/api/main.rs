//! Integration tests: one binary, real sockets, both state backends (a real redis-server).

mod helpers;

mod attachments;
mod backup;
mod chat;
mod check;
mod conformance;
mod crash;
mod directory;
mod edges;
mod estimate;
mod hardening;
mod health;
mod http;
mod multinode;
mod notify;
mod offers;
mod policies;
mod proxy;
mod push;
mod restart;
mod resume;
mod routing;
mod security;
mod simulate;
mod supervisor;
mod tickets;
mod triggers;
mod upgrade;
mod visitors;
