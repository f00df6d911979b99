//! Progress of long work (ingest, index builds, benchmarks), reported through a trait so that
//! the library imposes no terminal library on its users: the command line draws bars, the
//! server and the tests pass [`NoProgress`].

/// Receives the progress of one long task. Implementations must be cheap: `advance` is called
/// from hot loops.
pub trait Progress: Sync {
    /// The task's total size is now known (or has changed).
    fn set_total(&self, total: u64);
    /// `delta` more units are done.
    fn advance(&self, delta: u64);
    /// The task is over; a bar may clear itself.
    fn finish(&self) {}
    /// What is being worked on now (a file's name), for a bar to show beside it.
    fn message(&self, _message: &str) {}
}

/// Progress that goes nowhere: for servers, tests and callers that do not show any.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn set_total(&self, _total: u64) {}

    fn advance(&self, _delta: u64) {}
}
