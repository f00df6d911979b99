//! A few read connections, so that concurrent searches and reads do not queue behind one
//! another: SQLite in WAL mode lets readers proceed in parallel with each other and with the
//! single writer.

use std::ops::Deref;
use std::path::Path;
use std::sync::{Condvar, Mutex};

use super::{ModelIdentity, Result, Store};

/// Read connections to one data directory, lent out one caller at a time.
pub struct ReadPool {
    idle: Mutex<Vec<Store>>,
    returned: Condvar,
    size: usize,
}

impl ReadPool {
    /// Opens `size` (at least one) connections to the store in `dir`.
    pub fn open(dir: &Path, model: &ModelIdentity, size: usize) -> Result<Self> {
        let size = size.max(1);
        let idle = (0..size)
            .map(|_| Store::open(dir, model))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            idle: Mutex::new(idle),
            returned: Condvar::new(),
            size,
        })
    }

    /// How many connections the pool holds.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A connection, waiting for one to be returned when all are in use.
    pub fn get(&self) -> PooledStore<'_> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(store) = idle.pop() {
                return PooledStore {
                    pool: self,
                    store: Some(store),
                };
            }
            idle = self.returned.wait(idle).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A connection borrowed from a [`ReadPool`]; it goes back when dropped.
pub struct PooledStore<'a> {
    pool: &'a ReadPool,
    store: Option<Store>,
}

impl Deref for PooledStore<'_> {
    type Target = Store;

    fn deref(&self) -> &Store {
        // Present from creation until drop.
        self.store.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledStore<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(store);
            self.pool.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lends_every_connection_then_waits_for_a_return() {
        let dir = tempfile::tempdir().unwrap();
        let model = ModelIdentity {
            name: "m".into(),
            fingerprint: "f".into(),
            dimension: 3,
        };
        Store::open(dir.path(), &model).unwrap();
        let pool = ReadPool::open(dir.path(), &model, 2).unwrap();
        let a = pool.get();
        let b = pool.get();
        assert_eq!(a.counts().unwrap(), (0, 0));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| pool.get().counts().unwrap());
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!waiter.is_finished(), "both connections are lent out");
            drop(a);
            assert_eq!(waiter.join().unwrap(), (0, 0));
        });
        drop(b);
        assert_eq!(pool.idle.lock().unwrap().len(), 2);
    }
}
