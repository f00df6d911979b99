//! Noticing, on a blocking thread, that the request it works for has gone.
//!
//! A request future that is dropped (its client hung up, or it timed out) cannot stop work it
//! handed to tokio's blocking pool: that work runs to the end unless it looks. The async side
//! holds a [`CancelOnDrop`]; the blocking side checks its [`Cancellation`] between units of
//! work (an input to tokenize, a group of documents to ingest) and stops early.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Marks its [`Cancellation`]s cancelled when dropped, unless [`CancelOnDrop::disarm`]ed.
#[derive(Debug, Default)]
pub struct CancelOnDrop {
    flag: Arc<AtomicBool>,
    armed: bool,
}

/// Whether the work's requester has gone.
#[derive(Debug, Clone)]
pub struct Cancellation {
    flag: Arc<AtomicBool>,
}

impl CancelOnDrop {
    /// A guard for one request.
    pub fn new() -> Self {
        Self {
            flag: Arc::default(),
            armed: true,
        }
    }

    /// A handle the blocking work checks.
    pub fn cancellation(&self) -> Cancellation {
        Cancellation {
            flag: self.flag.clone(),
        }
    }

    /// The request finished normally: dropping the guard no longer cancels.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.flag.store(true, Ordering::Relaxed);
        }
    }
}

impl Cancellation {
    /// A handle that is never cancelled (for callers without a request).
    pub fn never() -> Self {
        Self {
            flag: Arc::default(),
        }
    }

    /// Whether the requester has gone.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_guard_cancels_unless_disarmed() {
        let guard = CancelOnDrop::new();
        let seen = guard.cancellation();
        assert!(!seen.is_cancelled());
        drop(guard);
        assert!(seen.is_cancelled());

        let guard = CancelOnDrop::new();
        let seen = guard.cancellation();
        guard.disarm();
        assert!(!seen.is_cancelled());
        assert!(!Cancellation::never().is_cancelled());
    }
}
