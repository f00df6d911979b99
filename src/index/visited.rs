//! Visited marks for graph walks, shared by the builder and the frozen graph's search: the
//! epoch of the walk that last saw each node, so that starting a walk costs nothing (no set
//! to clear or allocate) and marking a node is one store.

/// One thread's visited marks, reused from walk to walk.
pub(crate) struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

impl Visited {
    /// No marks yet (a `const fn`, for thread-local scratch space).
    pub const fn new() -> Self {
        Self {
            marks: Vec::new(),
            epoch: 0,
        }
    }

    /// Starts a walk over `n` nodes: nothing is visited.
    pub fn begin(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Once every 65,535 walks the stamps wrap: old marks must not read as current.
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `node` visited; false if it already was.
    #[inline(always)]
    pub fn visit(&mut self, node: u32) -> bool {
        let mark = &mut self.marks[node as usize];
        if *mark == self.epoch {
            return false;
        }
        *mark = self.epoch;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_walk_forgets_the_last_one_even_when_the_epoch_wraps() {
        let mut visited = Visited::new();
        for _ in 0..70_000 {
            visited.begin(4);
            assert!(visited.visit(2));
            assert!(!visited.visit(2));
        }
        visited.begin(8);
        assert!((0..8).all(|n| visited.visit(n)));
    }
}
