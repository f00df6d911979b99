//! Concurrent writes to one document id, made serial.
//!
//! An ingest reads a document's state, embeds its passages (seconds to minutes), then commits.
//! Two things can happen to the same id meanwhile: another ingest commits it, or a DELETE
//! removes it. The first is settled at commit time — the status is decided under the
//! backend's write lock for the id from what the store holds then, so two ingests of one new
//! id report `created` once. The second needs a record: a DELETE that runs while an ingest of
//! its id is in flight comes after that ingest in the serial order, so the ingest's commit
//! must not bring the document back. [`Claims`] is that record: an ingest holds a [`Claim`] on
//! each id from before it reads the id's state until it is done, and a delete of a claimed id
//! marks the claims.
//!
//! # Locks
//!
//! The map of claims is the last lock of the storage lock order ([`crate::storage`]) and is
//! held only for a few memory operations. A delete marks claims from inside the backend's
//! write lock for the id (the callback of [`crate::storage::Backend::delete`]), which takes
//! this lock briefly; an ingest checks its claim under that same write lock by reading an
//! atomic counter, taking no lock at all. So a delete never holds this lock while it waits for
//! the write lock, and a writer never waits for this lock while it holds the write lock.
//!
//! Why the order of events is right: a claim is registered *before* the ingest reads the
//! document's state. A delete that commits after the registration marks the claim (the mark is
//! made before the delete releases the id's write lock, and the ingest's commit checks it under
//! that lock), so the ingest reports `deleted` and writes nothing; a delete that committed
//! before the registration is seen by the read that follows it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// The ids that ingests are working on, and the deletes of those ids since.
#[derive(Debug, Default)]
pub(super) struct Claims {
    ids: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    /// Claims on this id alive now.
    holders: usize,
    /// Deletes of this id committed while it was claimed; shared with the claims, which read
    /// it without the map's lock.
    deletes: Arc<AtomicU64>,
}

/// An ingest's hold on one id, from before reading its state to committing it. Dropping it
/// (done, failed or abandoned) releases the id.
#[derive(Debug)]
pub(super) struct Claim<'a> {
    owner: &'a Claims,
    id: String,
    deletes: Arc<AtomicU64>,
    /// `deletes` when the claim was made.
    deletes_seen: u64,
}

impl Claims {
    /// Claims `id`. Read the document's state after this returns, never before.
    pub(super) fn claim(&self, id: &str) -> Claim<'_> {
        let mut ids = self.ids.lock();
        let entry = ids.entry(id.to_string()).or_default();
        entry.holders += 1;
        let deletes = entry.deletes.clone();
        let deletes_seen = deletes.load(Ordering::SeqCst);
        Claim {
            owner: self,
            id: id.to_string(),
            deletes,
            deletes_seen,
        }
    }

    /// Records that `id` was deleted: every claim on it now sees the delete. Called by the
    /// backend under its write lock for the id, once the delete is made.
    pub(super) fn mark_deleted(&self, id: &str) {
        if let Some(entry) = self.ids.lock().get(id) {
            entry.deletes.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.ids.lock().is_empty()
    }
}

impl Claim<'_> {
    /// Whether the id was deleted after this claim was made: the ingest then comes before
    /// that delete, and must not write. Takes no lock.
    pub(super) fn deleted_since(&self) -> bool {
        self.deletes.load(Ordering::SeqCst) != self.deletes_seen
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut ids = self.owner.ids.lock();
        if let Some(entry) = ids.get_mut(&self.id) {
            entry.holders -= 1;
            if entry.holders == 0 {
                ids.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_marks_the_claims_made_before_it_only() {
        let claims = Claims::default();
        let early = claims.claim("a");
        let other = claims.claim("b");
        claims.mark_deleted("a");
        let late = claims.claim("a");
        assert!(early.deleted_since());
        assert!(!late.deleted_since());
        assert!(!other.deleted_since());
    }

    #[test]
    fn released_ids_are_forgotten() {
        let claims = Claims::default();
        drop(claims.claim("a"));
        claims.mark_deleted("a");
        assert!(claims.is_empty(), "nothing kept for unclaimed ids");
        let c = claims.claim("a");
        assert!(!c.deleted_since());
    }

    #[test]
    fn marks_and_checks_take_no_lock_a_marker_holds() {
        // A delete marking while a writer checks its claim, both from their own threads, as the
        // backends do under the id's write lock: neither waits for the other.
        let claims = Claims::default();
        let held = claims.claim("a");
        let guard = claims.ids.lock();
        assert!(!held.deleted_since(), "checked while the map is locked");
        drop(guard);
        std::thread::scope(|s| {
            s.spawn(|| claims.mark_deleted("a"));
        });
        assert!(held.deleted_since());
    }
}
