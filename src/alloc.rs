//! An allocator for programs built on semdex: mimalloc, with a count of live heap bytes.
//!
//! mimalloc, because the forward pass and index builds allocate large short-lived buffers and
//! the system allocator's page-fault churn measurably slowed them. The count (one relaxed
//! atomic add per allocation) lets benchmarks report what a structure really holds, which
//! resident-set deltas cannot: the allocator keeps and reuses freed pages.
//!
//! The library does not install it; a program opts in:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: semdex::alloc::CountingMimalloc = semdex::alloc::CountingMimalloc;
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Bytes currently allocated on the heap through [`CountingMimalloc`] (0 when the program's
/// global allocator is another).
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// mimalloc plus the live-bytes count.
pub struct CountingMimalloc;

// SAFETY: every method forwards to mimalloc unchanged and only updates a counter.
unsafe impl GlobalAlloc for CountingMimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by us with `layout`.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by us with `layout`.
        let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}
