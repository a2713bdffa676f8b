//! Seeded fuzz-style property check shared by the parsers' tests: every
//! byte string of length 0..=2 exhaustively, then random strings of length
//! 0..=N from a fixed-seed RNG, go through the parser, which must return
//! without panicking. A fixed seed keeps failures reproducible.

use rand::{Rng, SeedableRng, rngs::StdRng};

/// Makes half the random cases look more like real frames (a flags byte
/// with only defined bits, a matching size byte), so the fuzzer also walks
/// the optional-field paths rather than stopping at the first check.
pub(crate) type Shape = fn(&mut [u8]);

/// Keeps only `mask`'s bits in the first byte (the flags of most profiles).
pub(crate) fn flags_first<const MASK: u8>(buf: &mut [u8]) {
    if let Some(first) = buf.first_mut() {
        *first &= MASK;
    }
}

/// Runs `parse` on all strings of length ≤ 2 and on `cases` random strings
/// of length 0..=`max_len`. Returns how many parsed successfully, so that a
/// caller can check the fuzzer also reaches the success path.
pub(crate) fn never_panics<T, E>(
    seed: u64,
    max_len: usize,
    cases: usize,
    shape: Shape,
    parse: impl Fn(&[u8]) -> Result<T, E>,
) -> usize {
    let mut ok = 0;
    let mut count = |r: Result<T, E>| {
        if r.is_ok() {
            ok += 1;
        }
    };
    count(parse(&[]));
    for a in 0..=255u8 {
        count(parse(&[a]));
        for b in 0..=255u8 {
            count(parse(&[a, b]));
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = Vec::with_capacity(max_len);
    for _ in 0..cases {
        let len = rng.random_range(0..=max_len);
        buf.clear();
        buf.extend((0..len).map(|_| rng.random::<u8>()));
        if rng.random::<bool>() {
            shape(&mut buf);
        }
        count(parse(&buf));
    }
    ok
}

/// Folds the 7 bytes at `at` (if the buffer has them) into a valid Date
/// Time, so shaped cases get past the time stamp to the fields after it.
pub(crate) fn plausible_date(buf: &mut [u8], at: usize) {
    if let Some(d) = buf.get_mut(at..at + 7) {
        let year = 2000 + u16::from(d[0] % 50);
        d[..2].copy_from_slice(&year.to_le_bytes());
        d[2] %= 13;
        d[3] %= 32;
        d[4] %= 24;
        d[5] %= 60;
        d[6] %= 60;
    }
}
