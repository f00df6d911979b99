//! Dynamic batching of embedding requests (the design of text-embeddings-inference's core).
//!
//! Requests arrive already tokenized. One worker thread owns the forward passes: whenever it is
//! free it takes every waiting request that fits the encoder's token budget (the same budget
//! as one forward pass) and embeds them together, so 32 concurrent single-sentence requests
//! cost about one forward pass, not 32. The queue is bounded: past its limit a request is
//! refused at once (the API answers 429), never buffered without end. Requests whose caller
//! has gone (a timeout, a closed connection) are dropped unembedded, and a panic in a forward
//! pass fails that batch's requests, not the worker.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::embed::{Embedding, Encoder, TokenizedText};

/// Queue settings. The token budget of a batch is the encoder's
/// ([`crate::embed::EncoderOptions::max_batch_tokens`]), so that a batch is one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// Most inputs waiting at once; further requests are refused.
    pub max_queued_inputs: usize,
    /// Gather concurrent requests into one batch (off: one request per batch, for comparison).
    pub batching: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            max_queued_inputs: 2048,
            batching: true,
        }
    }
}

/// Why a request was not embedded.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Too much is waiting; retry later.
    #[error("the embedding queue is full ({queued} inputs waiting); retry shortly")]
    Full {
        /// Inputs waiting when the request was refused.
        queued: usize,
    },
    /// The queue is shutting down.
    #[error("the server is shutting down")]
    Closed,
    /// The forward pass failed (the message is shared by every request of the batch).
    #[error("embedding failed: {0}")]
    Failed(String),
}

struct Job {
    inputs: Vec<TokenizedText>,
    tokens: usize,
    /// Whether the caller wants each input's token states (late interaction).
    keep_tokens: bool,
    reply: oneshot::Sender<Result<Vec<Embedding>, QueueError>>,
    enqueued: Instant,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    queued_inputs: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

/// A handle to the batching worker; cheap to clone and share between request handlers.
#[derive(Clone)]
pub struct EmbedQueue {
    shared: Arc<Shared>,
    options: QueueOptions,
    max_batch_tokens: usize,
    worker: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl EmbedQueue {
    /// Starts the worker thread that runs `encoder`.
    pub fn start(encoder: Arc<Encoder>, options: QueueOptions) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker_shared = shared.clone();
        let max_batch_tokens = encoder.options().max_batch_tokens;
        let budget = Budget {
            max_tokens: max_batch_tokens,
            batching: options.batching,
        };
        let worker = std::thread::Builder::new()
            .name("semdex-batcher".into())
            .spawn(move || run_worker(&worker_shared, &encoder, budget))?;
        Ok(Self {
            shared,
            options,
            max_batch_tokens,
            worker: Arc::new(Mutex::new(Some(worker))),
        })
    }

    /// Embeds tokenized inputs, in order, batched with whatever else is waiting.
    pub async fn embed(&self, inputs: Vec<TokenizedText>) -> Result<Vec<Embedding>, QueueError> {
        self.submit(inputs, false).await
    }

    /// [`EmbedQueue::embed`], keeping each input's token states (for late interaction).
    pub async fn embed_with_tokens(
        &self,
        inputs: Vec<TokenizedText>,
    ) -> Result<Vec<Embedding>, QueueError> {
        self.submit(inputs, true).await
    }

    async fn submit(
        &self,
        inputs: Vec<TokenizedText>,
        keep_tokens: bool,
    ) -> Result<Vec<Embedding>, QueueError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(QueueError::Closed);
            }
            if state.queued_inputs > 0
                && state.queued_inputs + inputs.len() > self.options.max_queued_inputs
            {
                metrics::counter!("semdex_queue_rejected_total").increment(1);
                return Err(QueueError::Full {
                    queued: state.queued_inputs,
                });
            }
            state.queued_inputs += inputs.len();
            let tokens = inputs.iter().map(|i| i.ids.len()).sum();
            state.jobs.push_back(Job {
                inputs,
                tokens,
                keep_tokens,
                reply,
                enqueued: Instant::now(),
            });
            metrics::gauge!("semdex_queue_depth").set(state.queued_inputs as f64);
        }
        self.shared.wake.notify_one();
        answer.await.unwrap_or(Err(QueueError::Closed))
    }

    /// Inputs waiting now.
    pub fn depth(&self) -> usize {
        self.shared.lock().queued_inputs
    }

    /// The options the queue runs with.
    pub fn options(&self) -> QueueOptions {
        self.options
    }

    /// Whether the worker thread is alive (it is gone after [`EmbedQueue::shutdown`], or if it
    /// died); `/health` reports it.
    pub fn is_running(&self) -> bool {
        self.worker
            .lock()
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// Most tokens gathered into one batch: the encoder's forward-pass budget.
    pub fn max_batch_tokens(&self) -> usize {
        self.max_batch_tokens
    }

    /// Stops taking requests, lets the worker finish what is queued, and waits for it.
    pub fn shutdown(&self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
        let handle = self.worker.lock().take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// How the worker packs batches.
#[derive(Debug, Clone, Copy)]
struct Budget {
    max_tokens: usize,
    batching: bool,
}

/// Takes the jobs of the next batch: the oldest, then more while they fit the token budget.
/// Jobs whose caller has stopped waiting are dropped here, unembedded.
fn next_batch(state: &mut State, budget: Budget) -> Vec<Job> {
    let mut batch = Vec::new();
    let mut tokens = 0;
    while let Some(job) = state.jobs.front() {
        if job.reply.is_closed() {
            if let Some(gone) = state.jobs.pop_front() {
                state.queued_inputs -= gone.inputs.len();
                metrics::counter!("semdex_queue_abandoned_total").increment(1);
            }
            continue;
        }
        let fits =
            batch.is_empty() || (budget.batching && tokens + job.tokens <= budget.max_tokens);
        if !fits {
            break;
        }
        tokens += job.tokens;
        if let Some(job) = state.jobs.pop_front() {
            state.queued_inputs -= job.inputs.len();
            batch.push(job);
        }
    }
    batch
}

fn run_worker(shared: &Shared, encoder: &Encoder, budget: Budget) {
    loop {
        let batch = {
            let mut state = shared.lock();
            while state.jobs.is_empty() && !state.closed {
                shared.wake.wait(&mut state);
            }
            if state.jobs.is_empty() {
                return;
            }
            let batch = next_batch(&mut state, budget);
            metrics::gauge!("semdex_queue_depth").set(state.queued_inputs as f64);
            batch
        };
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        for job in &batch {
            metrics::histogram!("semdex_queue_wait_seconds")
                .record(started.duration_since(job.enqueued).as_secs_f64());
        }
        let inputs: Vec<TokenizedText> = batch
            .iter()
            .flat_map(|j| j.inputs.iter().cloned())
            .collect();
        metrics::histogram!("semdex_embed_batch_inputs").record(inputs.len() as f64);
        metrics::histogram!("semdex_embed_batch_tokens")
            .record(batch.iter().map(|j| j.tokens).sum::<usize>() as f64);
        // A panic in a forward pass fails this batch, not the worker (which would leave every
        // later request waiting for a thread that is gone).
        let keep_tokens = batch.iter().any(|j| j.keep_tokens);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            encoder.embed_tokenized_with(&inputs, keep_tokens)
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(crate::embed::EmbedError::Unsupported(format!(
                "the forward pass panicked: {what}"
            )))
        });
        metrics::histogram!("semdex_embed_batch_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(mut embeddings) => {
                for job in batch.into_iter().rev() {
                    let mut own = embeddings.split_off(embeddings.len() - job.inputs.len());
                    if !job.keep_tokens {
                        own.iter_mut().for_each(|e| e.token_states = None);
                    }
                    let _ = job.reply.send(Ok(own));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedding batch failed");
                let message = e.to_string();
                for job in batch {
                    let _ = job.reply.send(Err(QueueError::Failed(message.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(tokens: usize) -> (Job, oneshot::Receiver<Result<Vec<Embedding>, QueueError>>) {
        let (reply, rx) = oneshot::channel();
        let input = TokenizedText {
            ids: vec![0; tokens],
            full_len: tokens,
        };
        (
            Job {
                inputs: vec![input],
                tokens,
                keep_tokens: false,
                reply,
                enqueued: Instant::now(),
            },
            rx,
        )
    }

    #[test]
    fn batches_pack_under_the_token_budget() {
        let mut state = State::default();
        let mut receivers = Vec::new();
        for t in [100, 200, 300, 50] {
            let (j, rx) = job(t);
            state.queued_inputs += 1;
            state.jobs.push_back(j);
            receivers.push(rx);
        }
        let budget = Budget {
            max_tokens: 350,
            batching: true,
        };
        let first = next_batch(&mut state, budget);
        assert_eq!(
            first.iter().map(|j| j.tokens).collect::<Vec<_>>(),
            [100, 200]
        );
        let second = next_batch(&mut state, budget);
        assert_eq!(
            second.iter().map(|j| j.tokens).collect::<Vec<_>>(),
            [300, 50]
        );
        assert_eq!(state.queued_inputs, 0);
        let (big, _rx) = job(1000);
        state.jobs.push_back(big);
        state.queued_inputs += 1;
        assert_eq!(
            next_batch(&mut state, budget).len(),
            1,
            "an oversized job runs alone"
        );
    }

    #[test]
    fn jobs_whose_caller_left_are_skipped() {
        let mut state = State::default();
        let (gone, rx) = job(10);
        drop(rx);
        let (kept, _rx) = job(20);
        for j in [gone, kept] {
            state.jobs.push_back(j);
            state.queued_inputs += 1;
        }
        let budget = Budget {
            max_tokens: 1000,
            batching: true,
        };
        let batch = next_batch(&mut state, budget);
        assert_eq!(batch.iter().map(|j| j.tokens).collect::<Vec<_>>(), [20]);
        assert_eq!(state.queued_inputs, 0);
        assert!(state.jobs.is_empty());
    }

    #[test]
    fn without_batching_one_job_per_batch() {
        let mut state = State::default();
        let mut receivers = Vec::new();
        for _ in 0..3 {
            let (j, rx) = job(10);
            state.jobs.push_back(j);
            state.queued_inputs += 1;
            receivers.push(rx);
        }
        let budget = Budget {
            max_tokens: 1000,
            batching: false,
        };
        assert_eq!(next_batch(&mut state, budget).len(), 1);
    }
}
