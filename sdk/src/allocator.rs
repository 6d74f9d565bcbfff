//! The policy's memory allocator when built for `wasm32-unknown-unknown`
//! (the default feature `bump-allocator`): it hands out memory in order and
//! never reuses it, except the block given last. (For WASI targets the
//! standard library allocates with the C library's `malloc`, which shares the
//! heap: it stays.)
//!
//! That suits a policy: the host calls it in a fresh instance every time, so
//! its memory is thrown away after one decision of a few kilobytes, and the
//! sandbox's memory cap bounds a policy that allocates without end (the pool
//! falls back). In exchange it is some sixty instructions where the standard
//! library's `dlmalloc` is 7 KB of every policy, and it is faster.
//!
//! A policy that brings its own `#[global_allocator]` turns the feature off:
//! `runner-scaler-policy = { version = "...", default-features = false }`.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// WebAssembly pages are 64 KiB.
const PAGE: usize = 65_536;

struct Bump;

/// Where the next block starts; 0 until the first allocation, when it is
/// the end of the module's static data (`__heap_base`, set by the linker).
static NEXT: AtomicUsize = AtomicUsize::new(0);

extern "C" {
    static __heap_base: u8;
}

/// The address `size` bytes from `start`, with memory grown to hold it; None
/// if memory cannot grow that far.
fn claim(start: usize, size: usize) -> Option<usize> {
    let end = start.checked_add(size)?;
    let have = wasm32::memory_size(0).saturating_mul(PAGE);
    if end > have && wasm32::memory_grow(0, (end - have).div_ceil(PAGE)) == usize::MAX {
        return None;
    }
    Some(end)
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut next = NEXT.load(Relaxed);
        if next == 0 {
            next = core::ptr::addr_of!(__heap_base) as usize;
        }
        // `align` is a power of two: round `next` up to a multiple of it.
        let start = next
            .checked_add(layout.align() - 1)
            .map(|next| next & !(layout.align() - 1));
        match start.and_then(|start| Some((start, claim(start, layout.size())?))) {
            Some((start, end)) => {
                NEXT.store(end, Relaxed);
                start as *mut u8
            }
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // The last block comes back: the next allocation reuses it.
        if ptr as usize + layout.size() == NEXT.load(Relaxed) {
            NEXT.store(ptr as usize, Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The last block grows (or shrinks) where it is: a `String` built up
        // by `+=` is copied only when something else was allocated after it.
        if ptr as usize + layout.size() == NEXT.load(Relaxed) {
            return match claim(ptr as usize, new_size) {
                Some(end) => {
                    NEXT.store(end, Relaxed);
                    ptr
                }
                None => core::ptr::null_mut(),
            };
        }
        let new =
            unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            let size = layout.size().min(new_size);
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, size) };
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Bump = Bump;
