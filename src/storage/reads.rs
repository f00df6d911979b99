//! Where a read may be answered from: a read scope set around one request's storage calls.
//!
//! A database with hot standbys ([`super::postgres`]) answers writes on its primary and may
//! answer reads on a standby, which lags the primary by its replay lag. Reads opt in: only
//! work run inside [`reading`] with [`Consistency::Eventual`] may go to a standby; everything
//! else (every write, the reads a write makes, background work, the command line) reads the
//! primary. Inside one scope the reads of one database stay on the server they first went
//! to, so that the stages of one search (candidates, then their passages) see one state.
//!
//! The scope is thread-local: the service sets it on the blocking thread that runs the
//! request's storage calls, and a backend that reads on other threads (none that routes reads
//! does) would read the primary there. Backends without standbys ignore it.

use std::cell::RefCell;

/// How current a read must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Any server in rotation: a standby may lag the primary by up to the bound the server
    /// was given (`--max-standby-lag`), so a write made just before may not be seen yet.
    #[default]
    Eventual,
    /// The primary: sees every write committed before the read began (read-your-writes).
    Primary,
}

impl Consistency {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eventual => "eventual",
            Self::Primary => "primary",
        }
    }
}

impl std::str::FromStr for Consistency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "eventual" => Ok(Self::Eventual),
            "primary" => Ok(Self::Primary),
            other => Err(format!(
                "unknown consistency {other:?}: use \"eventual\" (a standby may answer) or \"primary\""
            )),
        }
    }
}

/// The scope of one request's reads on this thread.
struct Scope {
    consistency: Consistency,
    /// (a database's key, the route its reads went to), per database read in this scope.
    pins: Vec<(usize, usize)>,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Puts the previous scope back when dropped (a panic in the work included).
struct Restore(Option<Scope>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        SCOPE.with(|scope| *scope.borrow_mut() = previous);
    }
}

/// Runs `work` with its reads answered as `consistency` allows.
pub fn reading<T>(consistency: Consistency, work: impl FnOnce() -> T) -> T {
    let previous = SCOPE.with(|scope| {
        scope.borrow_mut().replace(Scope {
            consistency,
            pins: Vec::new(),
        })
    });
    let _restore = Restore(previous);
    work()
}

/// The consistency the current scope asks for; [`Consistency::Primary`] outside any scope.
pub(crate) fn consistency() -> Consistency {
    SCOPE.with(|scope| {
        scope
            .borrow()
            .as_ref()
            .map_or(Consistency::Primary, |s| s.consistency)
    })
}

/// The route the current scope's reads of database `key` went to, if any.
pub(crate) fn pinned(key: usize) -> Option<usize> {
    SCOPE.with(|scope| {
        scope
            .borrow()
            .as_ref()?
            .pins
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, route)| *route)
    })
}

/// Keeps the current scope's later reads of database `key` on `route` (nothing outside a
/// scope).
pub(crate) fn pin(key: usize, route: usize) {
    SCOPE.with(|scope| {
        if let Some(scope) = scope.borrow_mut().as_mut() {
            scope.pins.retain(|(k, _)| *k != key);
            scope.pins.push((key, route));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_of_the_primary_outside_a_scope_and_scopes_nest() {
        assert_eq!(consistency(), Consistency::Primary);
        pin(1, 2);
        assert_eq!(pinned(1), None, "no scope, no pin");
        reading(Consistency::Eventual, || {
            assert_eq!(consistency(), Consistency::Eventual);
            pin(1, 2);
            assert_eq!(pinned(1), Some(2));
            reading(Consistency::Primary, || {
                assert_eq!(consistency(), Consistency::Primary);
                assert_eq!(pinned(1), None, "a scope of its own");
            });
            assert_eq!(pinned(1), Some(2));
        });
        assert_eq!(consistency(), Consistency::Primary);
        let caught = std::panic::catch_unwind(|| reading(Consistency::Eventual, || panic!("x")));
        assert!(caught.is_err());
        assert_eq!(
            consistency(),
            Consistency::Primary,
            "restored after a panic"
        );
        assert_eq!("primary".parse(), Ok(Consistency::Primary));
        assert!("strong".parse::<Consistency>().is_err());
    }
}
