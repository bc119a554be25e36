//! The tokens of a trajectory that carry the model's decisions.
//!
//! Under constrained decoding the turn's grammar forces most bytes of a tool call: its skeleton,
//! the only timestamp, a pod's node and service once the pod is named, the closing brackets. The
//! model chooses only where the grammar branches (which tool, which span, which pod, how many
//! items) and inside free text (reasons). Trained on every assistant token, a primed model spends
//! most of its loss on bytes it can never get wrong at inference and learns the teacher's
//! marginal answer from a handful of decision tokens. [`keep_free_tokens`] drops the forced ones
//! from a sequence's targets, so the loss (and GRPO's policy gradient) weighs the decisions.

use crate::loss::Sequence;
use thinkfl_llm::grammar::Grammar;

/// Clears the mask of every assistant token its turn's grammar forced: a token whose bytes all
/// follow from the grammar at that point (only one byte may come next, byte after byte), and an
/// end-of-turn token after a complete call that nothing may continue.
///
/// `grammars[k]` is the grammar of the `k`-th assistant message, whose tokens are the `k`-th
/// contiguous run of masked tokens of `seq` (as `ChatTemplate::render_with_mask` marks them);
/// `None` (a free turn) keeps the run. A token the grammar does not admit (a reply decoded
/// without it) ends the check of its run: the rest of the run is kept. Returns how many targets
/// were dropped.
pub fn keep_free_tokens(
    seq: &mut Sequence,
    grammars: &[Option<Grammar>],
    token_bytes: &[Option<Vec<u8>>],
) -> usize {
    let mut dropped = 0;
    let mut run = 0;
    let mut j = 0;
    while j < seq.ids.len() {
        if !seq.mask[j] {
            j += 1;
            continue;
        }
        let end = (j..seq.ids.len())
            .find(|&k| !seq.mask[k])
            .unwrap_or(seq.ids.len());
        let grammar = grammars.get(run).and_then(|g| g.as_ref());
        run += 1;
        let Some(mut m) = grammar.and_then(|g| g.compile().ok()).map(|n| n.matcher()) else {
            j = end;
            continue;
        };
        for k in j..end {
            let forced = match token_bytes
                .get(seq.ids[k] as usize)
                .and_then(|b| b.as_deref())
            {
                // A special token: the end of the turn, forced once the call is whole.
                None => m.is_complete() && !m.can_continue(),
                Some([]) => false,
                Some(b) => {
                    let fb = m.forced_bytes();
                    let forced = fb.len() >= b.len() && &fb[..b.len()] == b;
                    if !m.advance(b) {
                        break;
                    }
                    forced
                }
            };
            if forced {
                seq.mask[k] = false;
                dropped += 1;
            }
        }
        j = end;
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens of one byte each, so that the runs map to text directly.
    fn bytes_vocab() -> Vec<Option<Vec<u8>>> {
        let mut v: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
        v.push(None); // 256: end of turn
        v
    }

    fn seq_of(parts: &[(&str, bool)], eos_after_each: bool) -> Sequence {
        let mut ids = vec![];
        let mut mask = vec![];
        for (text, asst) in parts {
            ids.extend(text.bytes().map(u32::from));
            mask.extend(std::iter::repeat_n(*asst, text.len()));
            if *asst && eos_after_each {
                ids.push(256);
                mask.push(true);
            }
        }
        Sequence { ids, mask }
    }

    #[test]
    fn forced_bytes_are_dropped_and_choices_kept() {
        // The model picks "a" or "bc" after a forced "x=", then "!" is forced.
        let g = Grammar::seq([
            Grammar::lit("x="),
            Grammar::choice([Grammar::lit("a"), Grammar::lit("bc")]),
            Grammar::lit("!"),
        ]);
        let mut s = seq_of(&[("prompt", false), ("x=bc!", true), ("tool", false)], true);
        let n = keep_free_tokens(&mut s, &[Some(g)], &bytes_vocab());
        let kept: String = s
            .ids
            .iter()
            .zip(&s.mask)
            .filter(|(_, m)| **m)
            .map(|(id, _)| char::from(*id as u8))
            .collect();
        // "x", "=" forced; "b" a choice; "c" forced after "b"; "!" forced; end of turn forced.
        assert_eq!(kept, "b");
        assert_eq!(n, 5);
    }

    #[test]
    fn free_turns_and_unadmitted_replies_keep_their_tokens() {
        let g = Grammar::lit("ok");
        // Second turn free (None), third decoded without the grammar.
        let mut s = seq_of(
            &[
                ("p", false),
                ("ok", true),
                ("q", false),
                ("hm", true),
                ("r", false),
                ("no", true),
            ],
            false,
        );
        let before = s.num_targets();
        let n = keep_free_tokens(&mut s, &[Some(g.clone()), None, Some(g)], &bytes_vocab());
        assert_eq!(n, 2, "only the first turn's two forced bytes");
        assert_eq!(s.num_targets(), before - 2);
        // A reason of free text stays whole.
        let g = Grammar::seq([Grammar::lit("r:"), Grammar::json_string(1, 8)]);
        let mut s = seq_of(&[("p", false), ("r:\"why\"", true)], false);
        keep_free_tokens(&mut s, &[Some(g)], &bytes_vocab());
        let kept: Vec<bool> = s.mask[1..].to_vec();
        // `r`, `:`, the opening quote forced; `why` and the closing quote chosen.
        assert_eq!(kept, vec![false, false, false, true, true, true, true]);
    }
}
