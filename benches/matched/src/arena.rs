//! A native arena of the same design as the guest SDK's bump allocator
//! (`guest-sdk/src/alloc.rs`), so that the `native-matched` baseline
//! allocates the way a Code block does.
//!
//! The allocator proper ([`Bump`], [`Memory`], the growth constants and
//! `align_up`) is **copied verbatim** from the SDK; the test
//! `copied_from_the_sdk` fails if the two drift apart. What is native is
//! only where pages come from ([`Reserved`]: one large `mmap` reservation,
//! grown by moving its end, pages kept mapped between runs, as the
//! sandbox's pool keeps a slot's pages resident) and [`Arena::reset`],
//! which empties the arena between runs (a Code block gets a fresh
//! instance instead).
//!
//! Allocations made outside a run (the process's own buffers, the
//! documents) go to the system allocator: [`ArenaAlloc`] bumps only while
//! a run is active, and frees each pointer to where it came from.

// Copied code: kept as in the SDK (a few helpers are unused here).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

// ---- copied from guest-sdk/src/alloc.rs (see `copied_from_the_sdk`) ----

/// Size of a WebAssembly page.
const PAGE: usize = 64 * 1024;

/// The least the heap grows by at once (unless the memory limit allows only
/// less): each `memory.grow` is a call into the host and a system call, and
/// pages that are never touched cost nothing.
const MIN_GROW_STEP: usize = 1024 * 1024;

/// The most the heap grows by at once beyond what an allocation needs
/// (it doubles until then): fewer `memory.grow` calls for a heap that keeps
/// growing, without reserving far more than the block uses.
const MAX_GROW_STEP: usize = 8 * 1024 * 1024;

// ---- (copy continues)

/// Where the heap's pages come from: wasm linear memory on wasm32, a fake
/// in the tests.
trait Memory {
    /// The free memory the module starts with, `(start, end)`: from the end
    /// of its static data to the end of its initial memory.
    fn initial(&self) -> (usize, usize);

    /// Grows memory by `pages`; returns the previous size in bytes, or
    /// `None` if the memory cannot grow (the operator's limit).
    fn grow(&self, pages: usize) -> Option<usize>;
}

// ---- (copy continues)

/// The allocator proper, over any [`Memory`].
///
/// Invariants: `[start, end)` is the current region, obtained from
/// `memory.grow` and owned by the allocator; `next` is in it; everything
/// at or above `next` is free; every byte at or above `clean` was never
/// handed out, so it is still zero (fresh wasm pages are zero).
struct Bump<M> {
    memory: M,
    next: Cell<usize>,
    end: Cell<usize>,
    clean: Cell<usize>,
    /// Bytes obtained from `memory.grow` so far (the growth step doubles
    /// with it).
    grown: Cell<usize>,
}

impl<M: Memory> Bump<M> {
    const fn new(memory: M) -> Self {
        Bump {
            memory,
            next: Cell::new(0),
            end: Cell::new(0),
            clean: Cell::new(0),
            grown: Cell::new(0),
        }
    }

    /// The start of a block of `layout` at or after `next`, making room
    /// for it; null if memory cannot grow.
    #[inline]
    fn alloc(&self, layout: Layout) -> *mut u8 {
        let start = align_up(self.next.get(), layout.align());
        match start.checked_add(layout.size()) {
            Some(new_next) if new_next <= self.end.get() && start != 0 => {
                self.next.set(new_next);
                start as *mut u8
            }
            _ => self.alloc_slow(layout),
        }
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, layout: Layout) -> *mut u8 {
        if !self.reserve(layout) {
            return std::ptr::null_mut();
        }
        self.alloc(layout)
    }

    /// Grows memory so that a block of `layout` fits after `next`. Memory
    /// is grown by at least what is needed, and by up to the heap's size so
    /// far (doubling, at most [`MAX_GROW_STEP`]) when that is allowed.
    fn reserve(&self, layout: Layout) -> bool {
        if self.end.get() == 0 {
            // First use: the free end of the initial memory (no
            // `memory.grow`, which costs a system call in the host).
            let (start, end) = self.memory.initial();
            self.next.set(start);
            self.clean.set(start);
            self.end.set(end);
            if start != 0 && align_up(start, layout.align()).saturating_add(layout.size()) <= end {
                return true;
            }
        }
        let start = align_up(self.next.get(), layout.align());
        let Some(needed) = start
            .checked_add(layout.size())
            .map(|end| end.saturating_sub(self.end.get()))
        else {
            return false;
        };
        // Alignment padding in case the new pages do not continue the
        // current region.
        let Some(needed) = needed.checked_add(layout.align()) else {
            return false;
        };
        let min_pages = needed.div_ceil(PAGE);
        let step = self.grown.get().clamp(MIN_GROW_STEP, MAX_GROW_STEP) / PAGE;
        let (old, pages) = match self.memory.grow(min_pages.max(step)) {
            Some(old) => (old, min_pages.max(step)),
            None if step > min_pages => match self.memory.grow(min_pages) {
                Some(old) => (old, min_pages),
                None => return false,
            },
            None => return false,
        };
        let bytes = pages * PAGE;
        self.grown.set(self.grown.get() + bytes);
        if old != self.end.get() || self.next.get() == 0 {
            // A new region (the first one, or someone else grew memory in
            // between): start afresh there.
            self.next.set(old);
            self.clean.set(old);
        }
        self.end.set(old + bytes);
        true
    }

    #[inline]
    fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = self.alloc(layout);
        if !ptr.is_null() {
            let start = ptr as usize;
            let end = start + layout.size();
            let clean = self.clean.get();
            if start < clean {
                // Bytes below `clean` may have been used (and rolled back).
                let dirty = end.min(clean) - start;
                // SAFETY: `[start, start + dirty)` is inside the block just
                // allocated.
                unsafe { std::ptr::write_bytes(ptr, 0, dirty) };
            }
            self.clean.set(clean.max(end));
        }
        ptr
    }

    #[inline]
    fn dealloc(&self, ptr: usize, layout: Layout) {
        // Only the most recent allocation can be taken back.
        if ptr + layout.size() == self.next.get() {
            self.mark_used(self.next.get());
            self.next.set(ptr);
        }
    }

    /// Records that memory up to `upto` was handed out (so `alloc_zeroed`
    /// will not trust it to be zero once rolled back).
    #[inline]
    fn mark_used(&self, upto: usize) {
        if upto > self.clean.get() {
            self.clean.set(upto);
        }
    }

    /// # Safety
    ///
    /// `ptr` was returned by this allocator for `layout` and not freed;
    /// `new_size` is non-zero.
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        let old_end = start + layout.size();
        if old_end == self.next.get() {
            // The most recent allocation: grow or shrink in place.
            if let Some(new_end) = start.checked_add(new_size) {
                if new_end <= self.end.get() {
                    self.mark_used(old_end);
                    self.next.set(new_end);
                    return ptr;
                }
                // Grow memory; if the new pages continue this region the
                // block still grows in place.
                let extra = Layout::from_size_align(new_end - self.end.get(), 1);
                if let Ok(extra) = extra {
                    let end_before = self.end.get();
                    self.next.set(end_before);
                    if self.reserve(extra) && self.next.get() == end_before {
                        self.mark_used(old_end);
                        self.next.set(new_end);
                        return ptr;
                    }
                    if self.next.get() == end_before {
                        // Could not grow: restore and fail below.
                        self.next.set(old_end);
                    }
                }
            }
        } else if new_size <= layout.size() {
            // Shrinking an older block: keep it where it is.
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size` with `layout`'s
        // alignment is a valid layout (GlobalAlloc::realloc's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = self.alloc(new_layout);
        if !new.is_null() {
            // SAFETY: both blocks are live and distinct (`new` comes after
            // every live block), and each holds at least the bytes copied.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            self.dealloc(start, layout);
        }
        new
    }
}

#[inline]
fn align_up(addr: usize, align: usize) -> usize {
    (addr + align - 1) & !(align - 1)
}

// ---- end of the copy ----

/// Pages for the arena: one reservation of address space (`MAP_NORESERVE`,
/// so untouched pages cost nothing), handed out from the bottom as
/// [`Bump`] grows. Pages stay mapped and resident across
/// [`Arena::reset`], as a pool slot's pages do in the sandbox
/// (`linear_memory_keep_resident`).
pub struct Reserved {
    base: Cell<usize>,
    committed: Cell<usize>,
}

/// Address space reserved for the arena: as much as a Code block may use
/// (4 GiB, the 32-bit wasm maximum).
const RESERVE: usize = 4 << 30;

impl Reserved {
    const fn new() -> Self {
        Reserved {
            base: Cell::new(0),
            committed: Cell::new(0),
        }
    }

    fn base(&self) -> usize {
        if self.base.get() == 0 {
            // SAFETY: an anonymous private mapping of fresh address space;
            // nothing else refers to it.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    RESERVE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            assert!(ptr != libc::MAP_FAILED, "reserving the arena failed");
            self.base.set(ptr as usize);
        }
        self.base.get()
    }

    fn contains(&self, addr: usize) -> bool {
        let base = self.base.get();
        base != 0 && addr >= base && addr < base + RESERVE
    }
}

impl Memory for Reserved {
    fn initial(&self) -> (usize, usize) {
        // No static data before the heap: the arena starts empty and grows.
        let base = self.base();
        (base, base)
    }

    fn grow(&self, pages: usize) -> Option<usize> {
        let old = self.committed.get();
        let new = old.checked_add(pages.checked_mul(PAGE)?)?;
        if new > RESERVE {
            return None;
        }
        self.committed.set(new);
        Some(self.base() + old)
    }
}

/// The SDK's [`Bump`] over [`Reserved`] pages, resettable between runs.
pub struct Arena {
    heap: Bump<Reserved>,
}

impl Arena {
    /// An empty arena (the address space is reserved on first use).
    pub const fn new() -> Self {
        Arena {
            heap: Bump::new(Reserved::new()),
        }
    }

    /// Forgets every allocation: the next one starts at the bottom again.
    /// Pages stay mapped; what was written stays dirty (`alloc_zeroed`
    /// clears it, as the SDK does for memory that was handed out before).
    ///
    /// # Safety
    ///
    /// Nothing allocated from the arena is used after this.
    pub unsafe fn reset(&self) {
        if self.heap.end.get() != 0 {
            let (start, _) = self.heap.memory.initial();
            self.heap.mark_used(self.heap.next.get());
            self.heap.next.set(start);
        }
    }

    /// Bytes handed out since the last reset.
    pub fn used(&self) -> usize {
        let (start, _) = self.heap.memory.initial();
        self.heap.next.get().saturating_sub(start)
    }
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

/// The child's global allocator: the [`Arena`] while a run is active
/// ([`ArenaAlloc::run`]), the system allocator otherwise; every pointer is
/// freed to the allocator it came from.
pub struct ArenaAlloc {
    arena: Arena,
    active: Cell<bool>,
}

// SAFETY: the matched-native child is single-threaded (it starts no
// threads), so the `Cell`s inside are never accessed concurrently.
unsafe impl Sync for ArenaAlloc {}

impl ArenaAlloc {
    /// The allocator, inactive.
    pub const fn new() -> Self {
        ArenaAlloc {
            arena: Arena::new(),
            active: Cell::new(false),
        }
    }

    /// Runs `f` with every allocation from the arena, then drops its
    /// result and resets the arena, as a fresh instance would start over.
    /// Returns what `keep` extracted from the result (allocated from the
    /// system allocator).
    pub fn run<T, K>(&self, f: impl FnOnce() -> T, keep: impl FnOnce(&T) -> K) -> K {
        self.active.set(true);
        let result = f();
        self.active.set(false);
        let kept = keep(&result);
        drop(result);
        // SAFETY: `result`, the only thing built from the arena, is gone
        // (`keep` copied what it needs out with the system allocator).
        unsafe { self.arena.reset() };
        kept
    }
}

impl Default for ArenaAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: blocks come from `Bump` (the SDK's allocator, whose contract is
// the same) while active, else from `System`; each is returned to the one
// it came from, decided by its address.
unsafe impl GlobalAlloc for ArenaAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.active.get() {
            self.arena.heap.alloc(layout)
        } else {
            // SAFETY: forwarded with the caller's contract.
            unsafe { System.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if self.active.get() {
            self.arena.heap.alloc_zeroed(layout)
        } else {
            // SAFETY: forwarded with the caller's contract.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.arena.heap.memory.contains(ptr as usize) {
            self.arena.heap.dealloc(ptr as usize, layout)
        } else {
            // SAFETY: `ptr` came from `System` (it is outside the arena).
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.arena.heap.memory.contains(ptr as usize) {
            // SAFETY: `ptr` came from the arena, with the caller's contract.
            unsafe { self.arena.heap.realloc(ptr, layout, new_size) }
        } else {
            // SAFETY: `ptr` came from `System`, with the caller's contract.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_from_the_sdk() {
        let sdk = include_str!("../../../guest-sdk/src/alloc.rs");
        let this = include_str!("arena.rs");
        let start = this.find("// ---- copied from").unwrap();
        let end = this.find("// ---- end of the copy ----").unwrap();
        let copy = &this[start..end];
        let copy = &copy[copy.find('\n').unwrap()..];
        let chunks: Vec<&str> = copy.split("// ---- (copy continues)").collect();
        assert_eq!(chunks.len(), 3);
        for chunk in chunks {
            assert!(
                sdk.contains(chunk.trim()),
                "benches/matched/src/arena.rs no longer matches guest-sdk/src/alloc.rs: \
                 copy the allocator again\n{}",
                chunk.trim()
            );
        }
    }

    #[test]
    fn bumps_and_resets() {
        let arena = Arena::new();
        let heap = &arena.heap;
        let a = heap.alloc(Layout::from_size_align(100, 8).unwrap());
        assert!(!a.is_null());
        let b = heap.alloc(Layout::from_size_align(100, 8).unwrap());
        assert_eq!(b as usize, a as usize + 104);
        // SAFETY: a and b are not used again.
        unsafe {
            std::ptr::write_bytes(a, 0xff, 100);
            arena.reset();
        }
        assert_eq!(arena.used(), 0);
        let z = heap.alloc_zeroed(Layout::from_size_align(300, 8).unwrap());
        assert_eq!(z, a, "starts at the bottom again");
        // SAFETY: z holds 300 bytes.
        assert!(
            unsafe { std::slice::from_raw_parts(z, 300) }
                .iter()
                .all(|&x| x == 0)
        );
        // Large blocks grow the reservation.
        let big = heap.alloc(Layout::from_size_align(40 << 20, 8).unwrap());
        assert!(!big.is_null());
        assert!(arena.used() >= 40 << 20);
    }

    #[test]
    fn run_frees_to_the_right_allocator() {
        let alloc = ArenaAlloc::new();
        let outside = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: matched alloc/dealloc pairs.
        unsafe {
            let p = alloc.alloc(outside);
            assert!(!alloc.arena.heap.memory.contains(p as usize));
            alloc.active.set(true);
            let q = alloc.alloc(outside);
            assert!(alloc.arena.heap.memory.contains(q as usize));
            // Freed while active: goes back to System by its address.
            alloc.dealloc(p, outside);
            alloc.active.set(false);
            alloc.dealloc(q, outside);
        }
        // `run` bumps inside and resets after.
        let used = alloc.run(
            // SAFETY: the block is never used (the arena is reset).
            || unsafe { alloc.alloc(Layout::from_size_align(1000, 8).unwrap()) } as usize,
            |_| alloc.arena.used(),
        );
        assert!(used >= 1000, "{used}");
        assert_eq!(alloc.arena.used(), 0);
    }
}
