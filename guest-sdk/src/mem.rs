//! A faster `memcmp` (and `bcmp`) for wasm32 modules.
//!
//! On `wasm32-unknown-unknown` there is no C library: `memcmp` comes from
//! Rust's `compiler_builtins`, which compares one byte at a time. Parsers
//! call it constantly (every `BTreeMap<String, _>` key comparison in a
//! `serde_json::Value`, every XML end tag checked against its start tag),
//! so the SDK links this version, which compares eight bytes at a time: a
//! full JSON parse and walk of a 600 KB document runs about 5 % faster in
//! the sandbox (`docs/benchmarks.md`). `compiler_builtins` defines its
//! `memcmp` as a weak symbol, so this one takes its place at link time.
//!
//! Off wasm32 the same comparison is compiled for the unit tests only.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

/// Compares `n` bytes at `a` and `b` like C's `memcmp`: negative, zero or
/// positive as the first differing byte (unsigned) of `a` is less than,
/// equal to or greater than that of `b`.
///
/// # Safety
///
/// `a` and `b` must be valid for reads of `n` bytes.
#[inline]
unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, so both 8-byte reads are in bounds;
        // `read_unaligned` has no alignment requirement.
        let (x, y) = unsafe {
            (
                a.add(i).cast::<[u8; 8]>().read_unaligned(),
                b.add(i).cast::<[u8; 8]>().read_unaligned(),
            )
        };
        if x != y {
            // Read big-endian, the first differing byte is the most
            // significant one, so the integers compare like the bytes.
            return if u64::from_be_bytes(x) < u64::from_be_bytes(y) {
                -1
            } else {
                1
            };
        }
        i += 8;
    }
    while i < n {
        // SAFETY: `i < n`.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// C's `memcmp`, replacing `compiler_builtins`' byte-at-a-time version.
///
/// # Safety
///
/// `a` and `b` must be valid for reads of `n` bytes.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { compare(a, b, n) }
}

/// C's `bcmp` (zero if and only if the bytes are equal), which LLVM emits
/// for equality-only comparisons.
///
/// # Safety
///
/// `a` and `b` must be valid for reads of `n` bytes.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { compare(a, b, n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &[u8], b: &[u8]) -> i32 {
        assert_eq!(a.len(), b.len());
        unsafe { compare(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    #[test]
    fn agrees_with_slice_ordering() {
        let samples: &[&[u8]] = &[
            b"",
            b"a",
            b"b",
            b"\xff",
            b"abcdefgh",
            b"abcdefgi",
            b"abcdefghi",
            b"abcdefgha",
            b"zbcdefgha",
            b"\x00\x00\x00\x00\x00\x00\x00\x01",
            b"\x01\x00\x00\x00\x00\x00\x00\x00",
            b"followers_count",
            b"followers_countX",
            b"screen_name_and_more_text_past_16",
            b"screen_name_and_more_text_past_17",
        ];
        for a in samples {
            for b in samples {
                let n = a.len().min(b.len());
                let got = cmp(&a[..n], &b[..n]).signum();
                let want = a[..n].cmp(&b[..n]) as i32;
                assert_eq!(got, want, "{a:?} vs {b:?} over {n} bytes");
            }
        }
    }

    #[test]
    fn every_position_of_a_difference() {
        for len in 0..40 {
            let a: Vec<u8> = (0..len as u8).collect();
            assert_eq!(cmp(&a, &a), 0);
            for at in 0..len {
                for (x, y) in [(0u8, 1u8), (0x7f, 0x80), (0xfe, 0xff)] {
                    let (mut p, mut q) = (a.clone(), a.clone());
                    p[at] = x;
                    q[at] = y;
                    assert!(cmp(&p, &q) < 0, "len {len} at {at}");
                    assert!(cmp(&q, &p) > 0, "len {len} at {at}");
                }
            }
        }
    }
}
