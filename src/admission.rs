//! Admission control: how much work the server takes on at once, decided before any of it is
//! done.
//!
//! Every request that costs CPU asks here first and is refused at once (the API answers 429
//! with `Retry-After`) when its budget is spent, so an overloaded server neither tokenizes,
//! chunks nor buffers work it will not finish in time. Two budgets: embedding inputs in flight
//! (tokenizing, waiting in the batching queue or in a forward pass: the queue's own limit) and
//! documents being ingested (their text bytes, and how many requests). A [`Permit`] gives its
//! share back when dropped, so whoever runs the work holds it until the work has really
//! stopped, not merely until its caller stopped waiting.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// The budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Embedding inputs admitted at once, from tokenization to the end of their forward pass.
    pub inputs: usize,
    /// Text and metadata bytes of documents being ingested at once.
    pub ingest_bytes: usize,
    /// Ingest requests running at once.
    pub ingest_requests: usize,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The embedding budget is spent.
    #[error(
        "the server is embedding {in_flight} inputs, its limit; retry shortly (this request has {asked})"
    )]
    Inputs {
        /// Inputs admitted now.
        in_flight: usize,
        /// Inputs this request asked for.
        asked: usize,
    },
    /// The ingest budget is spent.
    #[error(
        "the server is ingesting {requests} requests ({bytes} bytes of documents), its limit; retry shortly"
    )]
    Ingest {
        /// Ingest requests running now.
        requests: usize,
        /// Their bytes.
        bytes: usize,
    },
    /// The server is stopping.
    #[error("the server is shutting down")]
    Closed,
}

/// A share of a budget; given back when dropped.
#[derive(Debug)]
pub struct Permit {
    _held: Vec<OwnedSemaphorePermit>,
}

/// One budget: a semaphore and its size.
#[derive(Debug)]
struct Budget {
    semaphore: Arc<Semaphore>,
    size: usize,
}

impl Budget {
    fn new(size: usize) -> Self {
        let size = size.clamp(1, u32::MAX as usize);
        Self {
            semaphore: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// Takes `amount` (at most the whole budget, so that a request larger than the budget can
    /// still run, alone) or nothing.
    fn take(&self, amount: usize) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        let amount = amount.clamp(1, self.size) as u32;
        self.semaphore.clone().try_acquire_many_owned(amount)
    }

    fn in_use(&self) -> usize {
        self.size - self.semaphore.available_permits()
    }

    fn close(&self) {
        self.semaphore.close();
    }
}

/// The server's budgets; shared by every request.
#[derive(Debug)]
pub struct Admission {
    inputs: Budget,
    ingest_bytes: Budget,
    ingest_requests: Budget,
    limits: AdmissionLimits,
}

impl Admission {
    /// Budgets of these sizes (each at least 1).
    pub fn new(limits: AdmissionLimits) -> Self {
        Self {
            inputs: Budget::new(limits.inputs),
            ingest_bytes: Budget::new(limits.ingest_bytes),
            ingest_requests: Budget::new(limits.ingest_requests),
            limits,
        }
    }

    /// The budgets' sizes.
    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// Admits `count` embedding inputs, or refuses at once.
    pub fn admit_inputs(&self, count: usize) -> Result<Permit, Refused> {
        match self.inputs.take(count) {
            Ok(permit) => Ok(Permit {
                _held: vec![permit],
            }),
            Err(TryAcquireError::Closed) => Err(Refused::Closed),
            Err(TryAcquireError::NoPermits) => {
                metrics::counter!("semdex_admission_refused_total", "budget" => "inputs")
                    .increment(1);
                Err(Refused::Inputs {
                    in_flight: self.inputs.in_use(),
                    asked: count,
                })
            }
        }
    }

    /// Admits one ingest request of `bytes` bytes of documents, or refuses at once.
    pub fn admit_ingest(&self, bytes: usize) -> Result<Permit, Refused> {
        let request = self
            .ingest_requests
            .take(1)
            .map_err(|e| self.refused_ingest(e))?;
        let bytes = match self.ingest_bytes.take(bytes) {
            Ok(permit) => permit,
            Err(e) => {
                drop(request);
                return Err(self.refused_ingest(e));
            }
        };
        Ok(Permit {
            _held: vec![request, bytes],
        })
    }

    fn refused_ingest(&self, err: TryAcquireError) -> Refused {
        match err {
            TryAcquireError::Closed => Refused::Closed,
            TryAcquireError::NoPermits => {
                metrics::counter!("semdex_admission_refused_total", "budget" => "ingest")
                    .increment(1);
                Refused::Ingest {
                    requests: self.ingest_requests.in_use(),
                    bytes: self.ingest_bytes.in_use(),
                }
            }
        }
    }

    /// Embedding inputs admitted now.
    pub fn inputs_in_flight(&self) -> usize {
        self.inputs.in_use()
    }

    /// Refuses everything from now on (shutdown).
    pub fn close(&self) {
        self.inputs.close();
        self.ingest_bytes.close();
        self.ingest_requests.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission() -> Admission {
        Admission::new(AdmissionLimits {
            inputs: 10,
            ingest_bytes: 1000,
            ingest_requests: 2,
        })
    }

    #[test]
    fn inputs_are_refused_past_the_budget_and_given_back_on_drop() {
        let a = admission();
        let first = a.admit_inputs(6).unwrap();
        assert_eq!(a.inputs_in_flight(), 6);
        assert_eq!(
            a.admit_inputs(5).unwrap_err(),
            Refused::Inputs {
                in_flight: 6,
                asked: 5
            }
        );
        let second = a.admit_inputs(4).unwrap();
        drop(first);
        assert_eq!(a.inputs_in_flight(), 4);
        drop(second);
        assert_eq!(a.inputs_in_flight(), 0);
    }

    #[test]
    fn a_request_larger_than_the_budget_runs_alone() {
        let a = admission();
        let alone = a.admit_inputs(50).unwrap();
        assert!(a.admit_inputs(1).is_err());
        drop(alone);
        let _small = a.admit_inputs(1).unwrap();
        assert!(
            a.admit_inputs(50).is_err(),
            "the large one waits for an empty server"
        );
    }

    #[test]
    fn ingest_is_bounded_by_bytes_and_by_requests() {
        let a = admission();
        let big = a.admit_ingest(900).unwrap();
        assert!(matches!(
            a.admit_ingest(200),
            Err(Refused::Ingest {
                requests: 1,
                bytes: 900
            })
        ));
        let small = a.admit_ingest(50).unwrap();
        assert!(
            matches!(a.admit_ingest(1), Err(Refused::Ingest { requests: 2, .. })),
            "two requests at most"
        );
        drop(big);
        drop(small);
        let _again = a.admit_ingest(1000).unwrap();
        a.close();
        assert_eq!(a.admit_inputs(1).unwrap_err(), Refused::Closed);
    }
}
