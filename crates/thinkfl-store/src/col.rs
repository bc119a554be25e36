//! [`Col`]: a column of plain numbers that is either owned (a store built from rows) or a view
//! into a memory-mapped snapshot (a store opened from disk), so that opening a snapshot copies
//! nothing.

use std::ops::Deref;
use std::sync::Arc;

/// Element types a column may hold: fixed size, no padding, every bit pattern a valid value,
/// so that bytes read from a file can be viewed as them.
pub(crate) trait Pod: Copy + Send + Sync + std::fmt::Debug + 'static {}
impl Pod for u8 {}
impl Pod for u32 {}
impl Pod for u64 {}
impl Pod for i64 {}
impl Pod for f64 {}

/// An owned or mapped column.
#[derive(Debug)]
pub(crate) enum Col<T: Pod> {
    Owned(Vec<T>),
    /// `len` values at byte `start` of `map`; `start` is a multiple of `T`'s alignment
    /// (checked by [`Col::mapped`]).
    Mapped {
        map: Arc<memmap2::Mmap>,
        start: usize,
        len: usize,
    },
}

impl<T: Pod> Col<T> {
    /// A view of `len` values at byte `start` of `map`; `None` when that range is out of the
    /// map or misaligned for `T`.
    pub(crate) fn mapped(map: &Arc<memmap2::Mmap>, start: usize, len: usize) -> Option<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        let end = start.checked_add(bytes)?;
        let aligned = (map.as_ptr() as usize + start).is_multiple_of(std::mem::align_of::<T>());
        (end <= map.len() && aligned).then(|| Col::Mapped {
            map: Arc::clone(map),
            start,
            len,
        })
    }

    /// The values as a vector to push to, copying a mapped column first.
    pub(crate) fn to_mut(&mut self) -> &mut Vec<T> {
        if let Col::Mapped { .. } = self {
            *self = Col::Owned(self.to_vec());
        }
        match self {
            Col::Owned(v) => v,
            Col::Mapped { .. } => unreachable!("made owned above"),
        }
    }

    /// Heap bytes held (a mapped column holds none: its pages belong to the file).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Col::Owned(v) => v.capacity() * std::mem::size_of::<T>(),
            Col::Mapped { .. } => 0,
        }
    }

    /// The values' bytes, as written to a snapshot (little-endian machines only, checked by
    /// the snapshot code).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        let s: &[T] = self;
        // SAFETY: `T: Pod` has no padding, so every byte of the slice is initialized; the
        // length is the slice's size in bytes and u8 has alignment 1.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        if let Col::Owned(v) = self {
            v.shrink_to_fit();
        }
    }
}

impl<T: Pod> Deref for Col<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        match self {
            Col::Owned(v) => v,
            // SAFETY: `Col::mapped` checked that the range lies inside the map and is aligned
            // for `T`; `T: Pod` makes any bytes a valid `T`; the map is read only and lives as
            // long as `self` holds its `Arc`. The file is replaced by rename, never rewritten in
            // place, so the mapped pages do not change under us.
            Col::Mapped { map, start, len } => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(*start).cast::<T>(), *len)
            },
        }
    }
}

impl<'a, T: Pod> IntoIterator for &'a Col<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Pod> Default for Col<T> {
    fn default() -> Self {
        Col::Owned(Vec::new())
    }
}

impl<T: Pod> Clone for Col<T> {
    fn clone(&self) -> Self {
        match self {
            Col::Owned(v) => Col::Owned(v.clone()),
            Col::Mapped { map, start, len } => Col::Mapped {
                map: Arc::clone(map),
                start: *start,
                len: *len,
            },
        }
    }
}

impl<T: Pod> From<Vec<T>> for Col<T> {
    fn from(v: Vec<T>) -> Self {
        Col::Owned(v)
    }
}
