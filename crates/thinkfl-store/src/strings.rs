//! String storage of the store: one byte arena per column instead of one heap `String` per row.
//!
//! [`StrColumn`] keeps the strings of a column back to back; when every string has the same
//! length (span ids are 16 hex digits, trace ids 32) it stores no offsets at all. [`Pool`] interns
//! low-cardinality strings (pod names, operations, kinds, status codes, kpi names) to `u32`
//! symbols and finds a symbol again by binary search over a sorted permutation.

use crate::col::Col;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative hasher in the style of rustc's FxHash: the keys are short byte strings and
/// integers from our own files, so DoS resistance buys nothing and SipHash costs a lot.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;
pub(crate) type FxHashMap<K, V> = HashMap<K, V, FxBuild>;

/// Strings stored back to back. Fixed width while every pushed string has the length of the
/// first one; switches to an offset table on the first string of another length.
#[derive(Debug, Clone, Default)]
pub struct StrColumn {
    pub(crate) bytes: Col<u8>,
    /// Byte end of each string; empty while the column is fixed-width.
    pub(crate) ends: Col<u64>,
    /// Width of every string while fixed-width.
    pub(crate) width: Option<usize>,
    pub(crate) len: usize,
}

impl StrColumn {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends a string; `s` must be UTF-8 (callers check before).
    pub fn push(&mut self, s: &[u8]) {
        match self.width {
            Some(w) if w == s.len() => {}
            None if self.len == 0 => self.width = Some(s.len()),
            Some(w) => {
                // Leave fixed-width mode: materialize the offsets of what we have.
                self.ends = Col::Owned((1..=self.len as u64).map(|i| i * w as u64).collect());
                self.width = None;
            }
            None => {}
        }
        let bytes = self.bytes.to_mut();
        bytes.extend_from_slice(s);
        if self.width.is_none() {
            let end = bytes.len() as u64;
            self.ends.to_mut().push(end);
        }
        self.len += 1;
    }

    #[inline]
    pub fn get_bytes(&self, i: usize) -> &[u8] {
        match self.width {
            Some(w) => &self.bytes[i * w..(i + 1) * w],
            None => {
                let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
                &self.bytes[start..self.ends[i] as usize]
            }
        }
    }

    #[inline]
    pub fn get(&self, i: usize) -> &str {
        // Every push came from a `&str` or from bytes checked as UTF-8 by the reader; a
        // failure here is a bug of this crate, not bad input.
        std::str::from_utf8(self.get_bytes(i)).expect("StrColumn holds UTF-8 only")
    }

    /// Appends every string of `other`, moving it when `self` is empty.
    pub fn append_owned(&mut self, other: StrColumn) {
        if self.len == 0 {
            *self = other;
        } else {
            self.extend_from(&other);
        }
    }

    /// Appends every string of `other`.
    pub fn extend_from(&mut self, other: &StrColumn) {
        if self.len == 0 {
            *self = other.clone();
            return;
        }
        if let (Some(a), Some(b)) = (self.width, other.width)
            && (a == b || other.len == 0)
        {
            self.bytes.to_mut().extend_from_slice(&other.bytes);
            self.len += other.len;
            return;
        }
        for i in 0..other.len {
            self.push(other.get_bytes(i));
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.heap_bytes() + self.ends.heap_bytes()
    }

    pub fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

/// Interned strings: symbol `i` is the `i`-th distinct string pushed.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    pub(crate) strings: StrColumn,
    /// Symbols sorted by their string, for lookups after the build.
    pub(crate) sorted: Col<u32>,
}

impl Pool {
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    #[inline]
    pub fn get(&self, sym: u32) -> &str {
        self.strings.get(sym as usize)
    }

    /// The symbol of `s`, if interned.
    pub fn lookup(&self, s: &str) -> Option<u32> {
        let s = s.as_bytes();
        self.sorted
            .binary_search_by(|&sym| self.strings.get_bytes(sym as usize).cmp(s))
            .ok()
            .map(|i| self.sorted[i])
    }

    pub fn heap_bytes(&self) -> usize {
        self.strings.heap_bytes() + self.sorted.heap_bytes()
    }
}

/// Builds a [`Pool`]: a hash map from string to symbol while rows stream in.
#[derive(Debug, Default, Clone)]
pub struct PoolBuilder {
    strings: StrColumn,
    map: FxHashMap<Box<[u8]>, u32>,
}

impl PoolBuilder {
    #[inline]
    pub fn intern(&mut self, s: &[u8]) -> u32 {
        if let Some(&sym) = self.map.get(s) {
            return sym;
        }
        let sym = self.strings.len() as u32;
        self.strings.push(s);
        self.map.insert(s.into(), sym);
        sym
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn get_bytes(&self, sym: u32) -> &[u8] {
        self.strings.get_bytes(sym as usize)
    }

    pub fn finish(self) -> Pool {
        let mut strings = self.strings;
        strings.shrink_to_fit();
        let mut sorted: Vec<u32> = (0..strings.len() as u32).collect();
        sorted.sort_unstable_by(|&a, &b| {
            strings
                .get_bytes(a as usize)
                .cmp(strings.get_bytes(b as usize))
        });
        Pool {
            strings,
            sorted: sorted.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_switches_from_fixed_to_variable_width() {
        let mut c = StrColumn::default();
        c.push(b"ab");
        c.push(b"cd");
        assert!(c.ends.is_empty());
        c.push(b"efg");
        c.push(b"");
        assert_eq!(
            (0..4).map(|i| c.get(i)).collect::<Vec<_>>(),
            ["ab", "cd", "efg", ""]
        );
        let mut d = StrColumn::default();
        d.push(b"xy");
        d.extend_from(&c);
        assert_eq!(d.get(0), "xy");
        assert_eq!(d.get(3), "efg");
        assert_eq!(d.len(), 5);
    }

    #[test]
    fn pool_interns_and_finds() {
        let mut b = PoolBuilder::default();
        let x = b.intern(b"frontend-2");
        let y = b.intern(b"adservice-0");
        assert_eq!(b.intern(b"frontend-2"), x);
        let p = b.finish();
        assert_eq!(p.lookup("frontend-2"), Some(x));
        assert_eq!(p.lookup("adservice-0"), Some(y));
        assert_eq!(p.lookup("nope"), None);
        assert_eq!(p.get(y), "adservice-0");
    }
}
