//! The guest's allocator: power-of-two size classes with free lists, for the
//! small, short-lived allocations of an evaluation (the argument area the host
//! asks for, strings in the snapshot, the decision's reason). Those cost a few
//! instructions here instead of a general-purpose allocator's hundred or so,
//! and every instruction is fuel. Blocks above 4 KiB go to the system
//! allocator. Policies are single-threaded, so no locking is needed.
#![allow(unsafe_code, reason = "the guest allocator")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

const MIN_SHIFT: usize = 3; // 8-byte blocks
const CLASSES: usize = 10; // 8 B ..= 4 KiB
const CHUNK: usize = 16 * 1024;

/// Size-class allocator, installed as the guest's global allocator.
pub struct SizeClassAlloc {
    state: UnsafeCell<State>,
}

struct State {
    free: [*mut u8; CLASSES],
    bump: usize,
    end: usize,
}

// SAFETY: wasm32 policies run on one thread (no threads or atomics are enabled).
unsafe impl Sync for SizeClassAlloc {}

impl SizeClassAlloc {
    pub const fn new() -> Self {
        SizeClassAlloc {
            state: UnsafeCell::new(State {
                free: [std::ptr::null_mut(); CLASSES],
                bump: 0,
                end: 0,
            }),
        }
    }
}

impl Default for SizeClassAlloc {
    fn default() -> Self {
        Self::new()
    }
}

/// The size class of a layout, or None when it is too large for the classes.
fn class(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    if size > (1 << (MIN_SHIFT + CLASSES - 1)) {
        return None;
    }
    let ceil_log2 = (usize::BITS - (size - 1).leading_zeros()) as usize;
    Some(ceil_log2 - MIN_SHIFT)
}

// SAFETY: blocks of class c are 8 << c bytes, aligned to their size (blocks are
// carved at multiples of their size, and a 16 KiB chunk holds at least one
// aligned 4 KiB block), which covers
// the layout's size and alignment. A freed block stores the free-list link in
// its first word, which every block (>= 8 bytes) has room for.
unsafe impl GlobalAlloc for SizeClassAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            return unsafe { System.alloc(layout) };
        };
        let st = unsafe { &mut *self.state.get() };
        let head = st.free[c];
        if !head.is_null() {
            st.free[c] = unsafe { *(head as *mut *mut u8) };
            return head;
        }
        let size = 1usize << (c + MIN_SHIFT);
        let mut at = (st.bump + size - 1) & !(size - 1);
        if st.bump == 0 || at + size > st.end {
            // SAFETY: CHUNK and 16 form a valid layout.
            let chunk = unsafe { System.alloc(Layout::from_size_align_unchecked(CHUNK, 16)) };
            if chunk.is_null() {
                return chunk;
            }
            // A block is aligned to its size; CHUNK leaves room for the largest.
            at = (chunk as usize + size - 1) & !(size - 1);
            st.end = chunk as usize + CHUNK;
        }
        st.bump = at + size;
        at as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            return unsafe { System.dealloc(ptr, layout) };
        };
        let st = unsafe { &mut *self.state.get() };
        unsafe { *(ptr as *mut *mut u8) = st.free[c] };
        st.free[c] = ptr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_size_and_alignment() {
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        assert_eq!(class(l(1, 1)), Some(0));
        assert_eq!(class(l(8, 8)), Some(0));
        assert_eq!(class(l(9, 1)), Some(1));
        assert_eq!(class(l(3, 64)), Some(3));
        assert_eq!(class(l(4096, 8)), Some(9));
        assert_eq!(class(l(4097, 8)), None);
    }

    #[test]
    fn allocates_reuses_and_keeps_blocks_apart() {
        let a = SizeClassAlloc::new();
        let layout = Layout::from_size_align(24, 8).unwrap();
        unsafe {
            let p = a.alloc(layout);
            let q = a.alloc(layout);
            assert!(!p.is_null() && !q.is_null() && p != q);
            assert_eq!(p as usize % 32, 0);
            std::ptr::write_bytes(p, 0xAB, 24);
            a.dealloc(p, layout);
            assert_eq!(a.alloc(layout), p, "freed block is reused");
            let big = Layout::from_size_align(10_000, 8).unwrap();
            let b = a.alloc(big);
            assert!(!b.is_null());
            a.dealloc(b, big);
        }
    }
}
