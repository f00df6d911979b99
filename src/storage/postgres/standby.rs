//! Hot standbys: a pool of connections per standby beside the primary's, a probe thread that
//! measures each standby's replay lag and keeps it in or out of rotation, and the choice of
//! the server each read goes to.
//!
//! Replay lag is measured against the primary's WAL position, on this process's clock only
//! (no comparison of two machines' clocks): every probe records the primary's position with
//! the time it was read, and a standby that has replayed up to position R lags by the time
//! since the first recorded primary position past R (zero once it has replayed everything the
//! primary had written at the latest probe). That is what PostgreSQL's own
//! `pg_stat_replication.replay_lag` measures on the primary, at the probe's resolution. A
//! standby is in rotation while it answers, is still in recovery (a promoted one has left the
//! primary's timeline) and lags by at most the bound; a read that finds it unreachable takes
//! it out at once, and the next probe that finds it well brings it back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postgres::types::PgLsn;
use postgres::{Client, NoTls};

use super::Pool;
use crate::storage::StandbyStatus;

/// How often the probe measures the primary's position and every standby's.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Longest wait for a probe's connection (a standby that does not answer is out).
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Primary positions remembered: ten minutes of probes. A standby behind the oldest one
/// lags by at least that long.
const HISTORY: usize = 1200;

/// The probe's latest findings about one standby.
#[derive(Debug, Default)]
struct Health {
    in_rotation: bool,
    replay_lag: Option<Duration>,
    replay_lag_bytes: Option<u64>,
    reason: Option<String>,
}

/// One hot standby.
pub(super) struct Standby {
    pub(super) pool: Pool,
    pub(super) display: String,
    /// Where the probe connects (its own connection, not one of the pool's).
    config: postgres::Config,
    /// Brief: read or written by one assignment, never held across I/O or another lock (a leaf
    /// of the storage lock order).
    health: Mutex<Health>,
    reads: AtomicU64,
}

impl Standby {
    pub(super) fn new(pool: Pool, display: String, config: postgres::Config) -> Self {
        Self {
            pool,
            display,
            config,
            health: Mutex::new(Health {
                reason: Some("not probed yet".into()),
                ..Health::default()
            }),
            reads: AtomicU64::new(0),
        }
    }

    pub(super) fn in_rotation(&self) -> bool {
        self.health.lock().in_rotation
    }

    /// Takes it out of rotation after a read found it unreachable; the probe brings it back.
    pub(super) fn take_out(&self, reason: &str) {
        let mut health = self.health.lock();
        if health.in_rotation {
            tracing::warn!(standby = %self.display, reason, "standby taken out of rotation");
        }
        health.in_rotation = false;
        health.reason = Some(reason.to_string());
    }

    pub(super) fn count_read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn status(&self) -> StandbyStatus {
        let health = self.health.lock();
        StandbyStatus {
            url: self.display.clone(),
            in_rotation: health.in_rotation,
            replay_lag: health.replay_lag,
            replay_lag_bytes: health.replay_lag_bytes,
            reads: self.reads.load(Ordering::Relaxed),
            reason: health.reason.clone(),
        }
    }

    fn record(&self, found: Health) {
        let mut health = self.health.lock();
        if health.in_rotation != found.in_rotation {
            match &found.reason {
                None => tracing::info!(standby = %self.display, "standby in rotation"),
                Some(reason) => {
                    tracing::warn!(standby = %self.display, %reason, "standby out of rotation")
                }
            }
        }
        *health = found;
    }
}

/// The standbys of one database and the round robin over them.
pub(super) struct Standbys {
    pub(super) list: Vec<Arc<Standby>>,
    next: AtomicUsize,
    /// Stops the probe thread when dropped.
    _stop: Option<mpsc::Sender<()>>,
}

impl Standbys {
    /// No standbys: every read goes to the primary.
    pub(super) fn none() -> Self {
        Self {
            list: Vec::new(),
            next: AtomicUsize::new(0),
            _stop: None,
        }
    }

    /// `list`, probed once now (so that a start knows which answer) and then every
    /// [`PROBE_INTERVAL`] on a thread of its own, against the primary at `primary`.
    pub(super) fn start(
        list: Vec<Arc<Standby>>,
        primary: postgres::Config,
        max_lag: Duration,
    ) -> Self {
        if list.is_empty() {
            return Self::none();
        }
        let mut probe = Probe {
            primary: Connection::new(primary),
            standbys: list
                .iter()
                .map(|s| (s.clone(), Connection::new(s.config.clone())))
                .collect(),
            history: VecDeque::new(),
            max_lag,
        };
        probe.round();
        let (stop, stopped) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("semdex-standby-probe".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(PROBE_INTERVAL)
                {
                    probe.round();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the standby probe: standbys stay as first probed");
        }
        Self {
            list,
            next: AtomicUsize::new(0),
            _stop: Some(stop),
        }
    }

    /// The next standby in rotation after the round robin's position, skipping `except`
    /// (indexes into the list); `None` when none is in rotation.
    pub(super) fn choose(&self, except: &[usize]) -> Option<usize> {
        let count = self.list.len();
        if count == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|offset| (start + offset) % count)
            .find(|&i| !except.contains(&i) && self.list[i].in_rotation())
    }
}

/// A probe's own connection to one server, made again when it breaks.
struct Connection {
    config: postgres::Config,
    client: Option<Client>,
}

impl Connection {
    fn new(mut config: postgres::Config) -> Self {
        config.connect_timeout(PROBE_CONNECT_TIMEOUT);
        config.application_name("semdex-standby-probe");
        Self {
            config,
            client: None,
        }
    }

    /// Whether the server is in recovery, and its WAL position: the replay position of a
    /// standby, the write position of a primary.
    fn position(&mut self) -> Result<(bool, Option<u64>), String> {
        let client = match &mut self.client {
            Some(client) if !client.is_closed() => client,
            _ => self
                .client
                .insert(self.config.connect(NoTls).map_err(|e| e.to_string())?),
        };
        let row = client.query_one(
            "SELECT pg_is_in_recovery(),
                    CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                         ELSE pg_current_wal_lsn() END",
            &[],
        );
        match row {
            Ok(row) => Ok((row.get(0), row.get::<_, Option<PgLsn>>(1).map(u64::from))),
            Err(e) => {
                self.client = None;
                Err(e.to_string())
            }
        }
    }
}

/// The probe thread's state.
struct Probe {
    primary: Connection,
    standbys: Vec<(Arc<Standby>, Connection)>,
    /// The primary's WAL positions with when they were read, oldest first.
    history: VecDeque<(Instant, u64)>,
    max_lag: Duration,
}

impl Probe {
    /// Reads the primary's position, then every standby's, and records what it found.
    fn round(&mut self) {
        match self.primary.position() {
            Ok((_, Some(lsn))) => {
                if self.history.back().is_none_or(|&(_, last)| lsn > last) {
                    self.history.push_back((Instant::now(), lsn));
                    if self.history.len() > HISTORY {
                        self.history.pop_front();
                    }
                }
            }
            Ok((_, None)) => {}
            Err(e) => tracing::debug!(error = %e, "standby probe: the primary does not answer"),
        }
        for (standby, connection) in &mut self.standbys {
            let found = match connection.position() {
                Err(e) => Health {
                    reason: Some(format!("does not answer: {e}")),
                    ..Health::default()
                },
                Ok((false, _)) => Health {
                    reason: Some(
                        "not in recovery (promoted?): it no longer follows the primary".into(),
                    ),
                    ..Health::default()
                },
                Ok((true, replay)) => {
                    let (lag, bytes) = match replay {
                        Some(replay) => lag_behind(&self.history, replay, Instant::now()),
                        None => (None, None),
                    };
                    let behind = lag.is_some_and(|lag| lag > self.max_lag);
                    Health {
                        in_rotation: !behind,
                        replay_lag: lag,
                        replay_lag_bytes: bytes,
                        reason: behind.then(|| {
                            format!(
                                "replay lag {:.1} s is over the bound of {:.1} s",
                                lag.unwrap_or_default().as_secs_f64(),
                                self.max_lag.as_secs_f64()
                            )
                        }),
                    }
                }
            };
            standby.record(found);
        }
    }
}

/// How far a standby that has replayed up to `replay` is behind the primary whose positions
/// `history` recorded: the time since the primary first stood past `replay` (zero when it
/// never did), and the bytes between `replay` and the primary's latest position. Unknown
/// (`None`) before the primary was read once.
fn lag_behind(
    history: &VecDeque<(Instant, u64)>,
    replay: u64,
    now: Instant,
) -> (Option<Duration>, Option<u64>) {
    let Some(&(_, latest)) = history.back() else {
        return (None, None);
    };
    let lag = history
        .iter()
        .find(|&&(_, lsn)| lsn > replay)
        .map_or(Duration::ZERO, |&(at, _)| now.saturating_duration_since(at));
    (Some(lag), Some(latest.saturating_sub(replay)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_time_since_the_primary_passed_the_replayed_position() {
        let start = Instant::now();
        let history: VecDeque<(Instant, u64)> = [(0, 100), (1, 200), (2, 300)]
            .into_iter()
            .map(|(s, lsn)| (start + Duration::from_secs(s), lsn))
            .collect();
        let now = start + Duration::from_secs(5);
        assert_eq!(
            lag_behind(&history, 300, now),
            (Some(Duration::ZERO), Some(0)),
            "caught up"
        );
        assert_eq!(
            lag_behind(&history, 400, now),
            (Some(Duration::ZERO), Some(0)),
            "ahead of the last probe"
        );
        assert_eq!(
            lag_behind(&history, 250, now),
            (Some(Duration::from_secs(3)), Some(50)),
            "behind since the probe that saw 300"
        );
        assert_eq!(
            lag_behind(&history, 50, now),
            (Some(Duration::from_secs(5)), Some(250))
        );
        assert_eq!(lag_behind(&VecDeque::new(), 50, now), (None, None));
    }
}
