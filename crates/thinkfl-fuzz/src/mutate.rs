//! The structured mutator: stacked byte-, line- and token-level edits of a seed input (AFL's
//! "havoc" idea, written for text formats and binary headers alike), and raw random bytes.
//!
//! Every input is a pure function of `(run seed, iteration)`, so a crash is reproduced from
//! those two numbers alone, whatever the harness did before it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Numbers that sit at the edges of the parsers' integer and float handling.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "-0",
    "255",
    "256",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "1152921504606846976",
    "1e308",
    "1e309",
    "-1e309",
    "NaN",
    "inf",
    "-inf",
    "1.5",
    "0.0000001",
    "",
    "00000000000000000000000001",
];

/// Bytes that delimit something in at least one of the formats.
const SPECIAL: &[u8] = b",\"\n\r{}[]:\\\t '<>/=|%#\0.-";

/// Integers that overwrite a little-endian field of a binary header.
const WIDE: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    8,
    0xff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    1 << 60,
    (1 << 62) + 1,
    u64::MAX,
    u64::MAX - 1,
    i64::MAX as u64,
];

/// The largest input the mutator writes: bigger inputs only slow a run down (hostile sizes have
/// their own tests).
pub const MAX_INPUT: usize = 256 << 10;

/// The rng of one iteration of a run: a SplitMix-style hash of both numbers, so neighbouring
/// iterations and seeds share no stream.
pub fn iteration_rng(seed: u64, iteration: u64) -> ChaCha8Rng {
    let mut z = seed ^ iteration.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

/// Writes one input into `out`: mostly a seed under 1 to 8 stacked mutations, sometimes raw
/// random bytes (1 in 16), printable or not.
pub fn generate(rng: &mut ChaCha8Rng, seeds: &[Vec<u8>], dict: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    if seeds.is_empty() || rng.random_range(0..16) == 0 {
        let len = rng.random_range(0..1024);
        if rng.random_bool(0.5) {
            out.extend((0..len).map(|_| rng.random::<u8>()));
        } else {
            out.extend((0..len).map(|_| rng.random_range(0x20u8..0x7f)));
        }
        return;
    }
    out.extend_from_slice(&seeds[rng.random_range(0..seeds.len())]);
    let n = 1 << rng.random_range(0..4);
    for _ in 0..n {
        mutate_once(rng, seeds, dict, out);
    }
    out.truncate(MAX_INPUT);
}

fn pos(rng: &mut ChaCha8Rng, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        rng.random_range(0..=len)
    }
}

/// A range `[a, b)` of at most a quarter of the input (at least one byte where there is one).
fn range(rng: &mut ChaCha8Rng, len: usize) -> (usize, usize) {
    if len == 0 {
        return (0, 0);
    }
    let a = rng.random_range(0..len);
    let max = (len / 4).max(1).min(len - a);
    (a, a + rng.random_range(1..=max))
}

fn mutate_once(rng: &mut ChaCha8Rng, seeds: &[Vec<u8>], dict: &[Vec<u8>], out: &mut Vec<u8>) {
    let len = out.len();
    match rng.random_range(0..14) {
        0 if len > 0 => {
            let i = rng.random_range(0..len);
            out[i] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let i = rng.random_range(0..len);
            out[i] = SPECIAL[rng.random_range(0..SPECIAL.len())];
        }
        2 => {
            let (a, b) = range(rng, len);
            out.drain(a..b);
        }
        3 => {
            let (a, b) = range(rng, len);
            let piece = out[a..b].to_vec();
            let at = pos(rng, out.len());
            out.splice(at..at, piece);
        }
        4 if !dict.is_empty() => {
            let tok = &dict[rng.random_range(0..dict.len())];
            let at = pos(rng, len);
            out.splice(at..at, tok.iter().copied());
        }
        5 => replace_number(rng, out),
        6 => {
            let at = pos(rng, len);
            out.truncate(at);
        }
        7 => {
            // Splice: this input's head, another seed's tail.
            let other = &seeds[rng.random_range(0..seeds.len())];
            let at = pos(rng, len);
            let from = pos(rng, other.len());
            out.truncate(at);
            out.extend_from_slice(&other[from..]);
        }
        8 => line_edit(rng, out),
        9 => {
            let at = pos(rng, len);
            let n = rng.random_range(1..=32);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            out.splice(at..at, bytes);
        }
        10 if len >= 4 => {
            // A little-endian integer over a header field (GGUF counts, lengths, dims).
            let v = WIDE[rng.random_range(0..WIDE.len())];
            let width = if rng.random_bool(0.5) { 4 } else { 8 }.min(len);
            let at = rng.random_range(0..=len - width);
            out[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
        }
        11 if len > 0 => {
            // A repeated byte run: long fields, deep nesting.
            let b = if rng.random_bool(0.5) {
                SPECIAL[rng.random_range(0..SPECIAL.len())]
            } else {
                out[rng.random_range(0..len)]
            };
            let n = 1 << rng.random_range(1..12);
            let at = pos(rng, len);
            out.splice(at..at, std::iter::repeat_n(b, n));
        }
        12 => {
            // A multi-byte UTF-8 character, whole or cut, where byte offsets meet char bounds.
            let s = ["é", "€", "😀", "\u{feff}", "中", "\u{2028}"][rng.random_range(0..6)];
            let bytes = s.as_bytes();
            let take = if rng.random_bool(0.7) {
                bytes.len()
            } else {
                rng.random_range(1..=bytes.len())
            };
            let at = pos(rng, len);
            out.splice(at..at, bytes[..take].iter().copied());
        }
        _ => {
            let (a, b) = range(rng, len);
            out[a..b].reverse();
        }
    }
}

/// Replaces a run of digits (or inserts at random where there is none) by an edge number.
fn replace_number(rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
    let num = NUMBERS[rng.random_range(0..NUMBERS.len())].as_bytes();
    let starts: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].is_ascii_digit() && (i == 0 || !out[i - 1].is_ascii_digit()))
        .collect();
    if starts.is_empty() {
        let at = pos(rng, out.len());
        out.splice(at..at, num.iter().copied());
        return;
    }
    let a = starts[rng.random_range(0..starts.len())];
    let mut b = a;
    while b < out.len() && out[b].is_ascii_digit() {
        b += 1;
    }
    out.splice(a..b, num.iter().copied());
}

/// Duplicates, deletes or swaps whole lines (rows of a CSV, lines of a template).
fn line_edit(rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
    let mut starts = vec![0];
    starts.extend((0..out.len()).filter(|&i| out[i] == b'\n').map(|i| i + 1));
    starts.retain(|&s| s <= out.len());
    let line = |i: usize, starts: &[usize], len: usize| {
        (starts[i], starts.get(i + 1).copied().unwrap_or(len))
    };
    let n = starts.len();
    let (a, b) = line(rng.random_range(0..n), &starts, out.len());
    match rng.random_range(0..3) {
        0 => {
            let piece = out[a..b].to_vec();
            let times = 1 << rng.random_range(0..6);
            for _ in 0..times {
                out.splice(b..b, piece.iter().copied());
            }
        }
        1 => {
            out.drain(a..b);
        }
        _ => {
            let (c, d) = line(rng.random_range(0..n), &starts, out.len());
            if b <= c {
                let second = out[c..d].to_vec();
                let first = out[a..b].to_vec();
                out.splice(c..d, first);
                out.splice(a..b, second);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_a_function_of_seed_and_iteration() {
        let seeds = vec![b"timestamp,cmdb_id\n1647747340693,frontend-2\n".to_vec()];
        let dict = vec![b"\"".to_vec()];
        let gen_at = |s, i| {
            let mut out = Vec::new();
            generate(&mut iteration_rng(s, i), &seeds, &dict, &mut out);
            out
        };
        let a: Vec<_> = (0..200).map(|i| gen_at(7, i)).collect();
        let b: Vec<_> = (0..200).rev().map(|i| gen_at(7, i)).rev().collect();
        assert_eq!(a, b, "order of generation does not matter");
        let c: Vec<_> = (0..200).map(|i| gen_at(8, i)).collect();
        assert_ne!(a, c, "another seed, other inputs");
        let distinct: std::collections::HashSet<_> = a.iter().collect();
        assert!(distinct.len() > 150, "mutations vary: {}", distinct.len());
        assert!(a.iter().all(|x| x.len() <= MAX_INPUT));
    }
}
