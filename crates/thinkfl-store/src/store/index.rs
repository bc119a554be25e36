//! The sorts and searches behind the store's indexes: counting sorts into (key, timestamp,
//! row) order, span ids as integers, and parents resolved to rows.

use super::{NO_PARENT, ORPHAN};
use crate::strings::{FxHashMap, PoolBuilder, StrColumn};
use rayon::prelude::*;

/// Every span id as a `u64` when all of them are 16 lowercase hex digits (the data's ids); the
/// keys' order is then the ids' byte order.
pub(super) fn hex_keys(ids: &StrColumn) -> Option<Vec<u64>> {
    (0..ids.len())
        .into_par_iter()
        .map(|i| hex16(ids.get_bytes(i)))
        .collect()
}

/// Rows grouped by trace: `rows[starts[t]..starts[t + 1]]` are the rows of trace `t`, and
/// `of[row]` is the trace of a row.
#[derive(Clone, Copy)]
pub(super) struct Groups<'a> {
    pub(super) rows: &'a [u32],
    pub(super) starts: &'a [u32],
    pub(super) of: &'a [u32],
}

/// Traces longer than this resolve parents by binary search rather than by scanning the trace.
const SCAN_LIMIT: usize = 64;

/// [`resolve_generic`] for hex ids, using that a parent is nearly always in its child's trace:
/// one parallel sort of (id, row) for `by_id`, then each span looks for its parent among the
/// spans of its own trace, and only the rest search the whole sorted id list.
pub(super) fn resolve_hex(
    keys: &[u64],
    parent_text: &StrColumn,
    groups: Groups<'_>,
    names: &mut PoolBuilder,
) -> (Vec<u32>, Vec<u32>) {
    let n = keys.len();
    let mut ids: Vec<(u64, u32)> = keys.par_iter().copied().zip(0..n as u32).collect();
    ids.par_sort_unstable();
    // Ids that occur more than once: their first row, which a trace-local match may not be.
    let mut first_of_dup: FxHashMap<u64, u32> = FxHashMap::default();
    for w in ids.windows(2) {
        if w[0].0 == w[1].0 {
            first_of_dup.entry(w[0].0).or_insert(w[0].1);
        }
    }
    let global = |key: u64| -> Option<u32> {
        let k = ids.partition_point(|&(x, _)| x < key);
        ids.get(k).filter(|&&(x, _)| x == key).map(|&(_, r)| r)
    };
    // Resolved parent per position of `groups.rows`; NO_PARENT for a root, ORPHAN for "look
    // up the text later".
    let local: Vec<u32> = groups
        .rows
        .par_iter()
        .map(|&r| {
            let text = parent_text.get_bytes(r as usize);
            if text.is_empty() {
                return NO_PARENT;
            }
            let Some(pk) = hex16(text) else {
                return ORPHAN; // not an id of the data
            };
            let t = groups.of[r as usize] as usize;
            let members = &groups.rows[groups.starts[t] as usize..groups.starts[t + 1] as usize];
            let found = if members.len() <= SCAN_LIMIT {
                members
                    .iter()
                    .copied()
                    .filter(|&q| keys[q as usize] == pk)
                    .min()
                    .or_else(|| global(pk))
            } else {
                global(pk)
            };
            match found {
                Some(q) if first_of_dup.is_empty() => q,
                Some(q) => first_of_dup.get(&pk).copied().unwrap_or(q),
                None => ORPHAN,
            }
        })
        .collect();
    let mut parent = vec![NO_PARENT; n];
    for (&r, &code) in groups.rows.iter().zip(&local) {
        parent[r as usize] = if code == ORPHAN {
            ORPHAN | names.intern(parent_text.get_bytes(r as usize))
        } else {
            code
        };
    }
    (ids.into_iter().map(|(_, i)| i).collect(), parent)
}

/// Rows sorted by (span id bytes, row), and each row's parent code: the first row carrying the
/// parent's id, [`NO_PARENT`], or [`ORPHAN`] | the interned parent id.
pub(super) fn resolve_generic(
    span_id: &StrColumn,
    parent_text: &StrColumn,
    names: &mut PoolBuilder,
) -> (Vec<u32>, Vec<u32>) {
    let n = span_id.len();
    let mut by_id: Vec<u32> = (0..n as u32).collect();
    // A stable sort: equal ids stay in row order.
    by_id.par_sort_by(|&a, &b| {
        span_id
            .get_bytes(a as usize)
            .cmp(span_id.get_bytes(b as usize))
    });
    let resolved: Vec<Option<u32>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let p = parent_text.get_bytes(i);
            if p.is_empty() {
                Some(NO_PARENT)
            } else {
                find_first(&by_id, span_id, p)
            }
        })
        .collect();
    let parent = resolved
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| ORPHAN | names.intern(parent_text.get_bytes(i))))
        .collect();
    (by_id, parent)
}

/// Value of each byte as a lowercase hex digit, 0xff for anything else.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Parses exactly 16 lowercase hex digits. Branch-free over the digits: this runs twice per
/// span in a load.
#[inline]
pub(crate) fn hex16(b: &[u8]) -> Option<u64> {
    let b: &[u8; 16] = b.try_into().ok()?;
    let mut v = 0u64;
    let mut bad = 0u8;
    for &c in b {
        let d = HEX[c as usize];
        bad |= d;
        v = (v << 4) | (d & 0x0f) as u64;
    }
    (bad & 0xf0 == 0).then_some(v)
}

/// First row (lowest row number) whose id is `id`.
pub(super) fn find_first(by_id: &[u32], ids: &StrColumn, id: &[u8]) -> Option<u32> {
    let k = by_id.partition_point(|&r| ids.get_bytes(r as usize) < id);
    by_id
        .get(k)
        .copied()
        .filter(|&r| ids.get_bytes(r as usize) == id)
}

/// Stable counting sort of `rows` by `key[row]` in `0..buckets`.
pub(super) fn counting_sort(rows: &[u32], key: &[u32], buckets: usize) -> Vec<u32> {
    let mut starts = vec![0u32; buckets + 1];
    for &r in rows {
        starts[key[r as usize] as usize + 1] += 1;
    }
    for k in 1..starts.len() {
        starts[k] += starts[k - 1];
    }
    let mut out = vec![0u32; rows.len()];
    for &r in rows {
        let slot = &mut starts[key[r as usize] as usize];
        out[*slot as usize] = r;
        *slot += 1;
    }
    out
}

/// The range of `perm` (sorted by (key, timestamp, row)) with `key == k` and timestamp in
/// `[from, to)`.
pub(super) fn key_time_range(
    perm: &[u32],
    key: &[u32],
    ts: &[i64],
    k: u32,
    from: i64,
    to: i64,
) -> (usize, usize) {
    let lo = perm.partition_point(|&i| (key[i as usize], ts[i as usize]) < (k, from));
    let hi = perm.partition_point(|&i| (key[i as usize], ts[i as usize]) < (k, to));
    (lo, hi.max(lo))
}

#[cfg(test)]
mod hex_tests {
    #[test]
    fn hex16_takes_exactly_16_lowercase_hex_digits() {
        assert_eq!(
            super::hex16(b"d1b3f238e544e3f0"),
            Some(0xd1b3_f238_e544_e3f0)
        );
        assert_eq!(super::hex16(b"0000000000000000"), Some(0));
        assert_eq!(super::hex16(b"ffffffffffffffff"), Some(u64::MAX));
        for bad in [
            &b"D1b3f238e544e3f0"[..],
            b"d1b3f238e544e3f",
            b"d1b3f238e544e3f0a",
            b"g1b3f238e544e3f0",
            b"",
        ] {
            assert_eq!(super::hex16(bad), None, "{bad:?}");
        }
    }
}
