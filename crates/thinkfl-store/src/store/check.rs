//! The contents check of a store opened from a snapshot. A snapshot's checksums catch a torn or
//! changed file, but not one written by a broken build, nor bytes changed and then given fresh
//! checksums: such a snapshot would reach the queries, which index without bounds checks of
//! their own and trust that every index is sorted. So a snapshot is used only when its store is
//! exactly what [`super::StoreBuilder`] would have built from the same rows: every symbol and row
//! number in range, every string UTF-8 and cut at character boundaries, every index a
//! permutation in its sort order, parents resolved to the first row of their id. All of it is
//! one pass over each column (in parallel), like the checksums.

use super::{NO_PARENT, ORPHAN, TelemetryStore, index::find_first};
use crate::strings::{Pool, StrColumn};
use rayon::prelude::*;

type Check = std::result::Result<(), String>;

/// UTF-8, and every string's ends on character boundaries (so `StrColumn::get` cannot fail).
fn strings(name: &str, s: &StrColumn) -> Check {
    let text = std::str::from_utf8(&s.bytes)
        .map_err(|e| format!("{name}: not UTF-8 at byte {}", e.valid_up_to()))?;
    let ok = match s.width {
        // `check_shape` tied `len` to a section's length, so this loop is bounded by the file.
        Some(w) => (0..s.len)
            .into_par_iter()
            .all(|i| text.is_char_boundary(i * w)),
        None => {
            s.ends.par_windows(2).all(|p| p[0] <= p[1])
                && s.ends
                    .par_iter()
                    .all(|&e| usize::try_from(e).is_ok_and(|e| text.is_char_boundary(e)))
        }
    };
    ok.then_some(())
        .ok_or_else(|| format!("{name}: string ends out of order or inside a character"))
}

/// Symbols sorted by their strings, strictly (so every string of the pool is distinct).
fn pool(name: &str, p: &Pool) -> Check {
    let n = p.len();
    let ok = p.sorted.par_iter().all(|&s| (s as usize) < n)
        && p.sorted
            .par_windows(2)
            .all(|w| p.strings.get_bytes(w[0] as usize) < p.strings.get_bytes(w[1] as usize));
    ok.then_some(())
        .ok_or_else(|| format!("{name}: lookup order is not the strings' order"))
}

fn below(name: &str, col: &[u32], bound: usize) -> Check {
    match col.par_iter().find_any(|&&v| v as usize >= bound) {
        Some(v) => Err(format!("{name}: value {v} out of range (< {bound})")),
        None => Ok(()),
    }
}

/// `perm` holds `len` row numbers below `rows`, each one `member`, strictly increasing by
/// `key` (whose last part is the row): so it is exactly the member rows, in key order.
fn index<K: Ord>(
    name: &str,
    perm: &[u32],
    rows: usize,
    len: usize,
    member: impl Fn(usize) -> bool + Sync,
    key: impl Fn(usize) -> K + Sync,
) -> Check {
    let ok = perm.len() == len
        && perm
            .par_iter()
            .all(|&r| (r as usize) < rows && member(r as usize))
        && perm
            .par_windows(2)
            .all(|w| key(w[0] as usize) < key(w[1] as usize));
    ok.then_some(())
        .ok_or_else(|| format!("index {name} is not in its sort order"))
}

impl TelemetryStore {
    /// Whether the store is one the builder could have made (see the module documentation);
    /// `Err` says what is not. Runs after `check_shape`, which ties lengths together.
    pub(super) fn check_contents(&self) -> Check {
        for (name, s) in [
            ("names", &self.names.strings),
            ("traces", &self.traces.strings),
            ("span_id", &self.span_id),
            ("log_id", &self.log_id),
            ("l_value", &self.l_value),
        ] {
            strings(name, s)?;
        }
        pool("names", &self.names)?;
        pool("traces", &self.traces)?;
        let names = self.names.len();
        for (name, col) in [
            ("cmdb", &self.cmdb),
            ("kind", &self.kind),
            ("status", &self.status),
            ("op", &self.op),
            ("l_cmdb", &self.l_cmdb),
            ("l_name", &self.l_name),
        ] {
            below(name, col, names)?;
        }
        self.check_spans()?;
        self.check_series()?;
        let logs = self.l_ts.len();
        index(
            "logs_by_cmdb",
            &self.logs_by_cmdb,
            logs,
            logs,
            |_| true,
            |r| (self.l_cmdb[r], self.l_ts[r], r),
        )?;
        if !self
            .faults
            .windows(2)
            .all(|w| w[0].timestamp <= w[1].timestamp)
        {
            return Err("faults are not in time order".into());
        }
        Ok(())
    }

    fn check_spans(&self) -> Check {
        let n = self.ts.len();
        below("trace", &self.trace, self.traces.len())?;
        // Trace symbols are given in order of first appearance, and every trace has a span.
        let mut next = 0usize;
        for &t in self.trace.iter() {
            match (t as usize).cmp(&next) {
                std::cmp::Ordering::Equal => next += 1,
                std::cmp::Ordering::Greater => {
                    return Err("trace symbols are not in order of first appearance".into());
                }
                std::cmp::Ordering::Less => {}
            }
        }
        if next != self.traces.len() {
            return Err(format!(
                "{} trace ids, {next} with spans",
                self.traces.len()
            ));
        }
        let (ts, ids) = (&self.ts, &self.span_id);
        index("time", &self.time, n, n, |_| true, |r| (ts[r], r))?;
        index(
            "by_cmdb",
            &self.by_cmdb,
            n,
            n,
            |_| true,
            |r| (self.cmdb[r], ts[r], r),
        )?;
        index(
            "by_trace",
            &self.by_trace,
            n,
            n,
            |_| true,
            |r| (self.trace[r], ts[r], r),
        )?;
        let mut starts = vec![0u32; self.traces.len() + 1];
        for &t in self.trace.iter() {
            starts[t as usize + 1] += 1;
        }
        for k in 1..starts.len() {
            starts[k] += starts[k - 1];
        }
        if *self.trace_starts != starts[..] {
            return Err("trace_starts do not count the spans of each trace".into());
        }
        index(
            "by_id",
            &self.by_id,
            n,
            n,
            |_| true,
            |r| (ids.get_bytes(r), r),
        )?;
        // The first row of each id, which is what a parent resolves to.
        let mut first = vec![false; n];
        for (k, &r) in self.by_id.iter().enumerate() {
            first[r as usize] =
                k == 0 || ids.get_bytes(self.by_id[k - 1] as usize) != ids.get_bytes(r as usize);
        }
        let bad_parent = (0..n).into_par_iter().find_any(|&i| {
            let p = self.parent[i];
            if p == NO_PARENT {
                false
            } else if p & ORPHAN != 0 {
                // A missing parent's id: interned, not empty, and no span's id (or the build
                // would have resolved it to that span).
                let sym = (p & !ORPHAN) as usize;
                sym >= self.names.len() || {
                    let text = self.names.strings.get_bytes(sym);
                    text.is_empty() || find_first(&self.by_id, ids, text).is_some()
                }
            } else {
                (p as usize) >= n || !first[p as usize]
            }
        });
        if let Some(i) = bad_parent {
            return Err(format!(
                "span row {i}: parent code out of range or unresolved"
            ));
        }
        let parent = &self.parent;
        let has_parent = parent.par_iter().filter(|&&p| p != NO_PARENT).count();
        let is_root = |r: usize| parent[r] == NO_PARENT || parent[r] & ORPHAN != 0;
        let roots = parent
            .par_iter()
            .filter(|&&p| p == NO_PARENT || p & ORPHAN != 0)
            .count();
        index(
            "by_parent",
            &self.by_parent,
            n,
            has_parent,
            |r| parent[r] != NO_PARENT,
            |r| (parent[r], ts[r], r),
        )?;
        index("roots", &self.roots, n, roots, is_root, |r| (ts[r], r))
    }

    fn check_series(&self) -> Check {
        let names = self.names.len();
        let mut at = 0u32;
        for m in &self.series {
            if m.cmdb as usize >= names || m.kpi as usize >= names {
                return Err("a series names a symbol out of range".into());
            }
            if m.start != at || m.end <= m.start {
                return Err("series do not cover the points one after another".into());
            }
            at = m.end;
        }
        if at as usize != self.p_ts.len() {
            return Err(format!("series cover {at} points of {}", self.p_ts.len()));
        }
        let key = |m: &super::SeriesMeta| (self.names.get(m.cmdb), self.names.get(m.kpi), m.source);
        if !self.series.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
            return Err("series are not in (cmdb_id, kpi, source) order".into());
        }
        let unsorted = self.series.par_iter().any(|m| {
            self.p_ts[m.start as usize..m.end as usize]
                .windows(2)
                .any(|w| w[0] > w[1])
        });
        if unsorted {
            return Err("a series' timestamps are not ascending".into());
        }
        Ok(())
    }
}
