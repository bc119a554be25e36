//! Cached prefixes of earlier calls (the KV cache of a finished row, padding removed), so that a
//! later prompt starting with the same tokens prefills only its new tail.

use crate::llama::KvCache;

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) tokens: Vec<u32>,
    pub(super) cache: KvCache,
    pub(super) last_used: u64,
}

/// Cached prefixes, least recently used evicted first.
#[derive(Debug, Default)]
pub struct PrefixStore {
    pub(super) entries: Vec<Entry>,
    pub(super) clock: u64,
}

pub(super) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl PrefixStore {
    /// Best entry for `prompt`: (index, reusable length), leaving at least one token to prefill.
    pub(super) fn best(&self, prompt: &[u32], min: usize) -> Option<(usize, usize)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                (
                    i,
                    common_prefix(&e.tokens, prompt)
                        .min(prompt.len().saturating_sub(1))
                        .min(e.cache.len()),
                )
            })
            .filter(|&(_, n)| n >= min.max(1))
            .max_by_key(|&(_, n)| n)
    }

    pub(super) fn insert(&mut self, tokens: Vec<u32>, cache: KvCache, cap: usize) {
        if cap == 0 {
            return;
        }
        self.clock += 1;
        // An entry that is a prefix of the new one is superseded.
        self.entries
            .retain(|e| !(e.tokens.len() <= tokens.len() && tokens.starts_with(&e.tokens)));
        while self.entries.len() >= cap {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
                .expect("non-empty");
            self.entries.swap_remove(oldest);
        }
        self.entries.push(Entry {
            tokens,
            cache,
            last_used: self.clock,
        });
    }

    /// Prefixes cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether no prefix is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Drops every cached prefix.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
