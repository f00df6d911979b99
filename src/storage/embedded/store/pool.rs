//! A few read connections, so that concurrent searches and reads do not queue behind one
//! another: SQLite in WAL mode lets readers proceed in parallel with each other and with the
//! single writer. r2d2 lends them out (a caller waits for a free one, at most
//! [`READ_TIMEOUT`], then gets an error instead of hanging).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use scheduled_thread_pool::ScheduledThreadPool;

use super::{Result, Store, StoreError};
use crate::storage::types::ModelIdentity;

/// Longest wait for a free read connection before a read fails (as unavailable) rather than
/// wait on: every reader held that long means something is stuck.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens read connections to one data directory for r2d2.
#[derive(Debug)]
pub struct Manager {
    dir: PathBuf,
    model: ModelIdentity,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Store;
    type Error = StoreError;

    fn connect(&self) -> Result<Store> {
        Store::open(&self.dir, &self.model)
    }

    fn is_valid(&self, _store: &mut Store) -> Result<()> {
        Ok(())
    }

    fn has_broken(&self, _store: &mut Store) -> bool {
        false
    }
}

/// One helper thread for every pool of the process (r2d2 starts three per pool otherwise: a
/// server with many collections would run hundreds). It only opens connections.
pub(crate) fn helper_threads() -> Arc<ScheduledThreadPool> {
    static POOL: OnceLock<Arc<ScheduledThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Arc::new(
            ScheduledThreadPool::builder()
                .num_threads(1)
                .thread_name_pattern("semdex-pool-{}")
                .build(),
        )
    })
    .clone()
}

/// Read connections to one data directory, lent out one caller at a time.
pub struct ReadPool {
    pool: r2d2::Pool<Manager>,
}

/// A connection borrowed from a [`ReadPool`]; it goes back when dropped.
pub type PooledStore = r2d2::PooledConnection<Manager>;

impl ReadPool {
    /// Opens `size` (at least one) connections to the store in `dir`.
    pub fn open(dir: &Path, model: &ModelIdentity, size: usize) -> Result<Self> {
        let size = u32::try_from(size.max(1)).unwrap_or(u32::MAX);
        let manager = Manager {
            dir: dir.to_path_buf(),
            model: model.clone(),
        };
        // Open the first connection here, so that its error (a locked or foreign store) is
        // returned as it is rather than as r2d2's timeout message.
        let first = r2d2::ManageConnection::connect(&manager)?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(size)
            .min_idle(Some(size))
            .max_lifetime(None)
            .idle_timeout(None)
            .connection_timeout(READ_TIMEOUT)
            .test_on_check_out(false)
            .thread_pool(helper_threads())
            .build(manager)
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        Ok(Self { pool })
    }

    /// How many connections the pool holds.
    pub fn size(&self) -> usize {
        self.pool.max_size() as usize
    }

    /// A connection, waiting (at most [`READ_TIMEOUT`]) for one to be returned when all are in
    /// use.
    pub fn get(&self) -> Result<PooledStore> {
        self.pool.get().map_err(|e| StoreError::Pool(e.to_string()))
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
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        assert_eq!(a.counts().unwrap(), (0, 0));
        let (returned_tx, returned_rx) = std::sync::mpsc::channel();
        let shared = &pool;
        std::thread::scope(|s| {
            let waiter = s.spawn(move || {
                let store = shared.get().unwrap();
                returned_rx
                    .try_recv()
                    .expect("a connection came back first");
                store.counts().unwrap()
            });
            returned_tx.send(()).unwrap();
            drop(a);
            assert_eq!(waiter.join().unwrap(), (0, 0));
        });
        drop(b);
        assert_eq!(pool.pool.state().idle_connections, 2);
    }
}
