//! The threads a hybrid query's independent reads run on, apart from rayon's global pool:
//! graph builds (compaction, the rebuild at start) fill that pool 2,048 inserts at a time, and
//! a query must not wait behind them.
//!
//! Jobs here must never wait for the vector index's lock: it is taken on the calling thread
//! before they start ([`super::backend::Backend::reads_are_local`]). A job that held it and
//! waited inside a parallel scan could pick up another query's job, and a second read of the
//! lock behind a waiting writer never returns.

use std::sync::OnceLock;

/// The search threads, one per core; `None` if they could not be started (queries then read
/// one part after the other, on the calling thread).
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("semdex-search-{i}"))
            .build()
            .inspect_err(|e| tracing::warn!(error = %e, "no search threads; reads run in turn"))
            .ok()
    })
    .as_ref()
}

/// Runs `a` and `b` side by side on the search threads (in turn without them).
pub(crate) fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    match pool() {
        Some(pool) => pool.install(|| rayon::join(a, b)),
        None => (a(), b()),
    }
}

/// Runs `work` on the search threads, so that its parallel iterators split over them rather
/// than over the global pool (on this thread without them).
pub(crate) fn install<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(pool) => pool.install(work),
        None => work(),
    }
}
