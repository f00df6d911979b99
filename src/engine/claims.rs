//! Concurrent writes to one document id, made serial.
//!
//! An ingest reads a document's state, embeds its passages (seconds to minutes), then commits.
//! Two things can happen to the same id meanwhile: another ingest commits it, or a DELETE
//! removes it. The first is settled at commit time — the status is decided under the write
//! connection from what the store holds then, so two ingests of one new id report `created`
//! once. The second needs a record: a DELETE that runs while an ingest of its id is embedding
//! comes after that ingest in the serial order, so the ingest's commit must not bring the
//! document back. [`Claims`] is that record: an ingest holds a [`Claim`] on each id from
//! reading its state until it is done, and a delete of a claimed id marks the claims.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The ids that ingests are working on, and the deletes of those ids since.
#[derive(Debug, Default)]
pub(super) struct Claims {
    ids: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    /// Claims on this id alive now.
    holders: usize,
    /// Deletes of this id committed while it was claimed.
    deletes: u64,
}

/// An ingest's hold on one id, from reading its state to committing it. Dropping it (done,
/// failed or abandoned) releases the id.
#[derive(Debug)]
pub(super) struct Claim<'a> {
    owner: &'a Claims,
    id: String,
    /// `Entry::deletes` when the claim was made.
    deletes_seen: u64,
}

impl Claims {
    /// Claims `id` and runs `read` (which reads the document's state) in the same step, so
    /// that no delete falls between the two.
    pub(super) fn claim<T, E>(
        &self,
        id: &str,
        read: impl FnOnce() -> Result<T, E>,
    ) -> Result<(Claim<'_>, T), E> {
        let mut ids = self.lock();
        let state = read()?;
        let entry = ids.entry(id.to_string()).or_default();
        entry.holders += 1;
        let claim = Claim {
            owner: self,
            id: id.to_string(),
            deletes_seen: entry.deletes,
        };
        Ok((claim, state))
    }

    /// Runs `delete` (which deletes `id` from the store, returning whether it existed) and,
    /// when it deleted something, marks every claim on `id` in the same step.
    pub(super) fn delete<T, E>(
        &self,
        id: &str,
        delete: impl FnOnce() -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E> {
        let mut ids = self.lock();
        let outcome = delete()?;
        if outcome.is_some()
            && let Some(entry) = ids.get_mut(id)
        {
            entry.deletes += 1;
        }
        Ok(outcome)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Claim<'_> {
    /// Whether the id was deleted after this claim read its state: the ingest then comes
    /// before that delete, and must not write.
    pub(super) fn deleted_since(&self) -> bool {
        self.owner
            .lock()
            .get(&self.id)
            .is_some_and(|e| e.deletes != self.deletes_seen)
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut ids = self.owner.lock();
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

    fn claim<'a>(claims: &'a Claims, id: &str) -> Claim<'a> {
        claims.claim(id, || Ok::<_, ()>(())).unwrap().0
    }

    fn delete(claims: &Claims, id: &str, existed: bool) {
        claims
            .delete(id, || Ok::<_, ()>(existed.then_some(())))
            .unwrap();
    }

    #[test]
    fn a_delete_marks_the_claims_made_before_it_only() {
        let claims = Claims::default();
        let early = claim(&claims, "a");
        let other = claim(&claims, "b");
        delete(&claims, "a", true);
        let late = claim(&claims, "a");
        assert!(early.deleted_since());
        assert!(!late.deleted_since());
        assert!(!other.deleted_since());
    }

    #[test]
    fn a_delete_that_found_nothing_marks_nothing() {
        let claims = Claims::default();
        let c = claim(&claims, "a");
        delete(&claims, "a", false);
        assert!(!c.deleted_since());
    }

    #[test]
    fn released_ids_are_forgotten() {
        let claims = Claims::default();
        drop(claim(&claims, "a"));
        delete(&claims, "a", true);
        assert!(claims.lock().is_empty(), "nothing kept for unclaimed ids");
        let c = claim(&claims, "a");
        assert!(!c.deleted_since());
    }
}
