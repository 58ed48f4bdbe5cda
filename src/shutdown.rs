//! Graceful shutdown: one trigger, many listeners. Every long-lived loop selects on `recv()`.
//!
//! A `watch` channel (not `broadcast`) so that a listener created after the signal still sees it,
//! and so that waiting costs nothing until then.

use tokio::sync::watch;

/// Held by whoever decides to stop (signal handler, test harness).
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// A listener; clone one per task.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Resolves once shutdown has been requested (at once if it already was, or if the trigger is
    /// gone).
    pub async fn recv(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }
}
