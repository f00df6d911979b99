//! Named points in slow or racy work where a test can pause it, or watch it pass, instead of
//! guessing how long it takes.
//!
//! Code calls [`reached`] at a point, with a key; nothing happens unless a test has
//! [`install`]ed a hook for that point and key, so the cost in production is one atomic load.
//! Keys let tests that run side by side in one process hook their own collections or
//! documents only. The points:
//!
//! | point | key | where |
//! | --- | --- | --- |
//! | `collections.open` | collection name | opening a collection's engine, under its gate |
//! | `ingest.document` | document id | an ingest reaching a document, before reading its state |
//! | `ingest.commit` | document id | an ingest's commit, under the backend's write lock for the id |
//! | `delete.commit` | document id | a delete made, under the backend's write lock for the id |
//! | `service.embed` | the first input's text | an admitted embedding request, before tokenizing |
//! | `ingest.forward_pass` | the first document's id in the pass | an ingest about to embed one forward pass |
//! | `jobs.document` | document id | an upload job reaching a file, before reading it (on a blocking thread) |
//! | `snapshot.begun` | collection name | a snapshot's read transaction is open: its moment is fixed, nothing copied yet |
//! | `restore.staged` | collection name | a restore is checked and its indexes built, still hidden |
//! | `restore.swap` | collection name | a replacing restore has moved the old collection away, the new one not yet in place |
//!
//! And the points where a test can inject a failure ([`inject_failure`]) into a write of the
//! embedded backend, keyed by document id, or by the collection folder's path for commits:
//!
//! | point | what fails |
//! | --- | --- |
//! | `storage.store` | the SQLite transaction (nothing is stored) |
//! | `storage.vectors` | the vector index's update, after the store committed |
//! | `storage.lexical` | the lexical index's update, after the store committed |
//! | `storage.lexical_commit` | the lexical index's commit (key: the folder's path) |
//! | `service.deadline` | an ingest's deadline, passed now (key: its first document's id) |
//!
//! A test of the `semdex` binary cannot install a hook in it: `SEMDEX_PAUSE_AT=POINT=KEY`
//! ([`pause_where_the_environment_says`]) makes the binary stop for good at that point, after
//! saying so on stderr, so that the test can kill it there.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

/// What a test installed at a point.
#[derive(Clone)]
enum Hook {
    /// Run this (it may block until its test lets it go).
    Run(Arc<dyn Fn() + Send + Sync>),
    /// Fail the operation with this message.
    Fail(String),
}

/// Hooks installed now.
static INSTALLED: AtomicUsize = AtomicUsize::new(0);
static HOOKS: RwLock<Vec<(u64, &'static str, String, Hook)>> = RwLock::new(Vec::new());
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

fn installed_at(point: &'static str, key: &str) -> Vec<Hook> {
    if INSTALLED.load(Ordering::Acquire) == 0 {
        return Vec::new();
    }
    HOOKS
        .read()
        .iter()
        .filter(|(_, p, k, _)| *p == point && k == key)
        .map(|(_, _, _, hook)| hook.clone())
        .collect()
}

/// Runs the hooks installed for `point` and `key`, if any (on the calling thread, with no lock
/// held: a hook may block until its test releases it).
pub fn reached(point: &'static str, key: &str) {
    for hook in installed_at(point, key) {
        if let Hook::Run(run) = hook {
            run();
        }
    }
}

/// The failure a test injected at `point` for `key` ([`inject_failure`]), if any: the code
/// there fails as if the operation had, with this message.
pub fn injected_failure(point: &'static str, key: &str) -> Option<String> {
    installed_at(point, key)
        .into_iter()
        .find_map(|hook| match hook {
            Hook::Fail(message) => Some(message),
            Hook::Run(_) => None,
        })
}

/// Makes every operation at `point` for `key` fail with `message` until the returned guard is
/// dropped.
pub fn inject_failure(
    point: &'static str,
    key: impl Into<String>,
    message: impl Into<String>,
) -> Installed {
    add(point, key.into(), Hook::Fail(message.into()))
}

fn add(point: &'static str, key: String, hook: Hook) -> Installed {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) as u64;
    HOOKS.write().push((id, point, key, hook));
    INSTALLED.fetch_add(1, Ordering::Release);
    Installed { id }
}

/// Removes its hook when dropped.
#[must_use = "the hook is removed when this guard is dropped"]
pub struct Installed {
    id: u64,
}

/// Installs `hook` to run each time work reaches `point` with `key`, until the returned guard
/// is dropped.
pub fn install(
    point: &'static str,
    key: impl Into<String>,
    hook: impl Fn() + Send + Sync + 'static,
) -> Installed {
    add(point, key.into(), Hook::Run(Arc::new(hook)))
}

impl Drop for Installed {
    fn drop(&mut self) {
        HOOKS.write().retain(|(id, ..)| *id != self.id);
        INSTALLED.fetch_sub(1, Ordering::Release);
    }
}

/// The environment variable naming the point (`POINT=KEY`) where the binary stops.
pub const PAUSE_AT: &str = "SEMDEX_PAUSE_AT";

/// When [`PAUSE_AT`] names a point and key, installs a hook there that prints
/// `semdex: paused at POINT=KEY` on stderr and then waits forever (until the process is
/// killed); keep the guard for as long as the process runs. Nothing when it is unset.
pub fn pause_where_the_environment_says() -> Option<Installed> {
    let spec = std::env::var(PAUSE_AT).ok()?;
    let (point, key) = spec.split_once('=')?;
    let point: &'static str = Box::leak(point.to_string().into_boxed_str());
    let named = spec.clone();
    Some(install(point, key, move || {
        eprintln!("semdex: paused at {named}");
        loop {
            std::thread::park();
        }
    }))
}

/// A gate a hook can wait at: closed until [`Gate::open`], and counting who arrived.
#[derive(Debug, Default)]
pub struct Gate {
    state: parking_lot::Mutex<(bool, usize)>,
    changed: parking_lot::Condvar,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Waits until the gate is open (counting this arrival first).
    pub fn wait(&self) {
        let mut state = self.state.lock();
        state.1 += 1;
        self.changed.notify_all();
        while !state.0 {
            self.changed.wait(&mut state);
        }
    }

    /// Waits until at least `count` callers have arrived at [`Gate::wait`], or `timeout`
    /// passes; returns whether they did.
    pub fn wait_for_arrivals(&self, count: usize, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.state.lock();
        while state.1 < count {
            if self.changed.wait_until(&mut state, deadline).timed_out() {
                return state.1 >= count;
            }
        }
        true
    }

    /// How many callers have arrived at [`Gate::wait`] so far.
    pub fn arrivals(&self) -> usize {
        self.state.lock().1
    }

    /// Opens the gate: every waiter, and every later one, goes on.
    pub fn open(&self) {
        self.state.lock().0 = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_run_for_their_point_and_key_until_removed() {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let guard = install("test.point", "mine", move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        reached("test.point", "mine");
        reached("test.point", "other");
        reached("test.other", "mine");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        drop(guard);
        reached("test.point", "mine");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_gate_holds_until_opened() {
        let gate = Gate::new();
        std::thread::scope(|s| {
            let waiting = gate.clone();
            let waiter = s.spawn(move || waiting.wait());
            assert!(gate.wait_for_arrivals(1, std::time::Duration::from_secs(60)));
            assert!(!waiter.is_finished());
            gate.open();
            waiter.join().unwrap();
        });
    }
}
