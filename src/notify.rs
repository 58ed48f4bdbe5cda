//! The service manager's notifications (systemd's `Type=notify`, `sd_notify(3)`).
//!
//! - `READY=1` once the listener is bound and the state backend and the record database are
//!   open: `systemctl start` returns when the node can serve, not when the process exists.
//! - `RELOADING=1` and `READY=1` around each SIGHUP reload.
//! - `STOPPING=1` when the drain begins.
//! - `WATCHDOG=1` at half the unit's `WatchdogSec`, from a task on the async runtime: a node
//!   whose runtime has stalled (a deadlock, a blocked worker) misses its pings and systemd
//!   restarts it. An unreachable Redis or database does not stop the pings: the node heals
//!   itself when they return, and `/readyz` tells load balancers meanwhile.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) each call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::shutdown::Shutdown;

/// The node serves.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// A SIGHUP reload begins; `ready` follows when it is over, whatever its outcome.
pub fn reloading() {
    // systemd (from 253) pairs RELOADING=1 with the monotonic time it was sent at.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// The drain begins.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Pings the watchdog until shutdown, when the service manager asked for it
/// (`WATCHDOG_USEC`, and `WATCHDOG_PID` this process when set).
pub async fn watchdog(mut shutdown: Shutdown) {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return;
    };
    // Half the timeout, as sd_watchdog_enabled(3) advises: one late tick is not a restart.
    let mut tick = tokio::time::interval((timeout / 2).max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = tick.tick() => send(&[NotifyState::Watchdog]),
        }
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(cause = %e, "cannot notify the service manager");
    }
}
