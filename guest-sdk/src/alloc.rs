//! [`BumpAllocator`]: a memory allocator for Code blocks that parse a
//! response and exit.
//!
//! Every run of a Code block gets a fresh instance whose memory is thrown
//! away when the run ends, so an allocator never needs to give memory back.
//! A bump allocator hands out memory by moving one pointer forward; freeing
//! does nothing (except for the most recent allocation, which is rolled
//! back), and growing the most recent allocation happens in place. That is
//! what parsers do all the time: a `Vec` or `String` being filled is almost
//! always the last allocation. Compared with the default allocator (Rust's
//! `dlmalloc` port) it runs less code per allocation and touches less
//! memory, which matters in a fresh instance where every new page is a page
//! fault.
//!
//! The cost: memory freed in the middle of a run is not reused. A block's
//! peak memory becomes the **total** it allocates during the run. That is
//! right for "parse the response, set a few properties" blocks and wrong for
//! a block that loops over many large temporary values (pages of an API, a
//! big string rebuilt many times): such a block may hit the operator's
//! memory limit with this allocator where the default one would not. Like
//! any allocation failure, hitting the limit ends the run with the memory
//! limit error (`RunError::MemoryLimit`); nothing is corrupted.
//!
//! [`code_block!`](crate::code_block) makes it the module's global allocator
//! unless told otherwise (`code_block!(run, allocator = std)` keeps Rust's
//! standard allocator). A crate can also declare it itself:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: chatflow_sdk::alloc::BumpAllocator = chatflow_sdk::alloc::BumpAllocator::new();
//! # fn main() {}
//! ```
//!
//! Off wasm32 (`cargo test`), [`BumpAllocator`] forwards to the system
//! allocator, so the same declaration works in native tests (which
//! therefore do not show the memory it would use in the sandbox: run the
//! block with `chatflow code` or `chatflow bench` for that).
//!
//! `docs/benchmarks.md` has the measured effect (JSON parse throughput in
//! the sandbox and the cost of a small block's run).

// Off wasm32 the allocator proper is compiled only for its unit tests.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

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

/// The global allocator for Code blocks that allocate, parse and exit; see
/// the [module documentation](self) for when to use it.
///
/// On wasm32 it is single-threaded (as Code blocks are: the ABI has no
/// threads); off wasm32 it forwards to [`std::alloc::System`].
pub struct BumpAllocator {
    #[cfg(target_arch = "wasm32")]
    heap: Bump<WasmMemory>,
}

impl BumpAllocator {
    /// A new allocator; use it in a `#[global_allocator]` static.
    pub const fn new() -> Self {
        BumpAllocator {
            #[cfg(target_arch = "wasm32")]
            heap: Bump::new(WasmMemory),
        }
    }
}

impl Default for BumpAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for BumpAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BumpAllocator").finish_non_exhaustive()
    }
}

// SAFETY: wasm32 Code blocks are single-threaded (no shared memory, no
// threads: the engine refuses the threads proposal), so the `Cell`s inside
// are never accessed concurrently. With the `atomics` target feature (a
// threaded build) this impl does not exist and the static fails to compile.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for BumpAllocator {}

#[cfg(target_arch = "wasm32")]
// SAFETY: `Bump` returns blocks of at least the requested size and
// alignment, inside memory it obtained with `memory.grow` and never handed
// out twice while live (see `Bump`).
unsafe impl GlobalAlloc for BumpAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.heap.alloc(layout)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.heap.alloc_zeroed(layout)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.heap.dealloc(ptr as usize, layout)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract: `ptr` was allocated by us with
        // `layout`, and `new_size` rounded up to the alignment fits isize.
        unsafe { self.heap.realloc(ptr, layout, new_size) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
// SAFETY: forwards to the system allocator.
unsafe impl GlobalAlloc for BumpAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

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

#[cfg(target_arch = "wasm32")]
struct WasmMemory;

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// Defined by the linker (wasm-ld): the first address after the static
    /// data and the stack, where the heap may start.
    static __heap_base: u8;
}

#[cfg(target_arch = "wasm32")]
impl Memory for WasmMemory {
    fn initial(&self) -> (usize, usize) {
        // Taking a raw pointer to an extern static is safe (nothing is
        // read); only its address is used.
        let base = &raw const __heap_base as usize;
        let end = core::arch::wasm32::memory_size(0) * PAGE;
        (base, end.max(base))
    }

    #[inline]
    fn grow(&self, pages: usize) -> Option<usize> {
        let old = core::arch::wasm32::memory_grow(0, pages);
        (old != usize::MAX).then(|| old * PAGE)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake linear memory: `pages` of `PAGE` bytes starting at `base`,
    /// growing up to `max_pages`, backed by a real buffer so the tests can
    /// write to what they allocate.
    struct FakeMemory {
        buf: Vec<u8>,
        pages: Cell<usize>,
        max_pages: usize,
        grows: Cell<usize>,
    }

    impl FakeMemory {
        fn new(max_pages: usize) -> Self {
            // One page of "data segment" before the heap, like a real module.
            FakeMemory {
                buf: vec![0; (max_pages + 1) * PAGE + PAGE],
                pages: Cell::new(1),
                max_pages,
                grows: Cell::new(0),
            }
        }

        /// Base address, aligned to a page like wasm address 0.
        fn base(&self) -> usize {
            align_up(self.buf.as_ptr() as usize, PAGE)
        }
    }

    impl Memory for &FakeMemory {
        fn initial(&self) -> (usize, usize) {
            // Static data ends 1000 bytes into the first page.
            (self.base() + 1000, self.base() + PAGE)
        }

        fn grow(&self, pages: usize) -> Option<usize> {
            let old = self.pages.get();
            if old + pages > self.max_pages {
                return None;
            }
            self.grows.set(self.grows.get() + 1);
            self.pages.set(old + pages);
            Some(self.base() + old * PAGE)
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn allocations_are_aligned_and_disjoint() {
        let mem = FakeMemory::new(64);
        let heap = Bump::new(&mem);
        let mut blocks = Vec::new();
        for (i, (size, align)) in [(1, 1), (7, 8), (24, 4), (100, 16), (3, 64), (PAGE, 8)]
            .into_iter()
            .enumerate()
        {
            let ptr = heap.alloc(layout(size, align));
            assert!(!ptr.is_null());
            assert_eq!(ptr as usize % align, 0);
            unsafe { std::ptr::write_bytes(ptr, i as u8 + 1, size) };
            blocks.push((ptr as usize, size, i as u8 + 1));
        }
        for &(ptr, size, fill) in &blocks {
            let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, size) };
            assert!(bytes.iter().all(|&b| b == fill), "block overwritten");
        }
        blocks.sort();
        for pair in blocks.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "blocks overlap");
        }
    }

    #[test]
    fn last_allocation_grows_and_is_freed_in_place() {
        let mem = FakeMemory::new(64);
        let heap = Bump::new(&mem);
        let a = heap.alloc(layout(16, 8));
        let b = heap.alloc(layout(16, 8));
        unsafe { std::ptr::write_bytes(b, 7, 16) };
        // Growing the last block keeps its address and contents.
        let b2 = unsafe { heap.realloc(b, layout(16, 8), 4 * PAGE) };
        assert_eq!(b2, b);
        assert_eq!(unsafe { *b2.add(15) }, 7);
        // Growing an older block moves it and copies.
        unsafe { std::ptr::write_bytes(a, 3, 16) };
        let a2 = unsafe { heap.realloc(a, layout(16, 8), 32) };
        assert_ne!(a2, a);
        assert!(a2 as usize >= b as usize + 4 * PAGE);
        assert_eq!(unsafe { std::slice::from_raw_parts(a2, 16) }, &[3; 16]);
        // Freeing the last block gives its memory back.
        heap.dealloc(a2 as usize, layout(32, 8));
        let c = heap.alloc(layout(32, 8));
        assert_eq!(c, a2);
        // Freeing an older block does nothing (and does not break anything).
        heap.dealloc(b as usize, layout(4 * PAGE, 8));
        let d = heap.alloc(layout(8, 8));
        assert!(d as usize >= c as usize + 32);
    }

    #[test]
    fn shrinking_keeps_the_block() {
        let mem = FakeMemory::new(8);
        let heap = Bump::new(&mem);
        let a = heap.alloc(layout(100, 4));
        let _b = heap.alloc(layout(100, 4));
        assert_eq!(unsafe { heap.realloc(a, layout(100, 4), 10) }, a);
    }

    #[test]
    fn zeroed_memory_is_zero_after_reuse() {
        let mem = FakeMemory::new(8);
        let heap = Bump::new(&mem);
        let a = heap.alloc(layout(64, 8));
        unsafe { std::ptr::write_bytes(a, 0xff, 64) };
        heap.dealloc(a as usize, layout(64, 8));
        let z = heap.alloc_zeroed(layout(128, 8));
        assert_eq!(z, a, "reuses the rolled-back block");
        let bytes = unsafe { std::slice::from_raw_parts(z, 128) };
        assert!(bytes.iter().all(|&b| b == 0));
        // Realloc in place past dirty memory, then free and zero-alloc again.
        let grown = unsafe { heap.realloc(z, layout(128, 8), 256) };
        unsafe { std::ptr::write_bytes(grown, 0xee, 256) };
        heap.dealloc(grown as usize, layout(256, 8));
        let z2 = heap.alloc_zeroed(layout(512, 8));
        let bytes = unsafe { std::slice::from_raw_parts(z2, 512) };
        assert!(bytes.iter().all(|&b| b == 0));
    }

    #[test]
    fn growth_doubles_and_stops_at_the_limit() {
        let mem = FakeMemory::new(40);
        let heap = Bump::new(&mem);
        let mut total = 0;
        while !heap.alloc(layout(1000, 8)).is_null() {
            total += 1000;
        }
        // Nearly all of the memory was used: the last growth fell back to
        // exactly what was needed when a doubling step did not fit.
        assert!(total > 38 * PAGE, "{total}");
        // Doubling steps (16, 16, then 32 does not fit), then what each
        // allocation needs once a step no longer fits.
        assert!(mem.grows.get() <= 10, "{} grows", mem.grows.get());
        // Still failing cleanly, for any size.
        assert!(heap.alloc(layout(PAGE, 8)).is_null());
        assert!(heap.alloc(layout(isize::MAX as usize - 64, 8)).is_null());
        assert!(heap.alloc(layout(41 * PAGE, 8)).is_null());
        let last = heap.next.get();
        let p = unsafe { heap.realloc((last - 8) as *mut u8, layout(8, 8), 50 * PAGE) };
        assert!(p.is_null());
        assert_eq!(
            heap.next.get(),
            last,
            "a failed realloc leaves the heap as it was"
        );
    }

    #[test]
    fn a_foreign_grow_starts_a_new_region() {
        let mem = FakeMemory::new(64);
        let heap = Bump::new(&mem);
        let a = heap.alloc(layout(PAGE / 2, 8)) as usize;
        // Someone else grows memory: our region no longer ends at the top.
        (&mem).grow(1).unwrap();
        let big = heap.alloc(layout(2 * PAGE, 8)) as usize;
        assert!(big >= a + PAGE / 2 + PAGE, "not inside the foreign page");
        assert_eq!(big % 8, 0);
    }
}
