//! SmolLM2's tokenizer rebuilt from GGUF metadata: round trips, and ids equal to an
//! independent implementation (tiktoken's BPE over the same merges, `data/make_reference_ids.py`).

mod common;

use proptest::prelude::*;
use std::sync::OnceLock;
use thinkfl_candle::Tok;

fn tok() -> &'static Tok {
    static T: OnceLock<Tok> = OnceLock::new();
    T.get_or_init(|| {
        let ct = thinkfl_candle::load::read_gguf_content(&common::smollm2_path()).unwrap();
        Tok::from_gguf(&ct).unwrap()
    })
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn ids_agree_with_independent_reference() {
    let cases: Vec<Case> =
        serde_json::from_str(include_str!("data/smollm2_reference_ids.json")).unwrap();
    assert!(cases.len() >= 10);
    for c in &cases {
        let ids = tok().encode(&c.text).unwrap();
        assert_eq!(ids, c.ids, "ids of {:?}", c.text);
        assert_eq!(
            tok().decode(&ids, false).unwrap(),
            c.text,
            "round trip of {:?}",
            c.text
        );
    }
}

#[test]
fn chat_markup_is_one_token_each() {
    let t = tok();
    assert_eq!(t.encode("<|im_start|>").unwrap(), vec![1]);
    assert_eq!(t.encode("<|im_end|>").unwrap(), vec![2]);
    assert!(
        t.is_eos(2) && t.is_eos(0),
        "<|im_end|> and <|endoftext|> end a turn"
    );
    assert!(!t.is_eos(1));
    assert_eq!(t.vocab_size(), 49152);
}

#[test]
fn digits_are_split_one_by_one() {
    let t = tok();
    let ids = t.encode("12345").unwrap();
    assert_eq!(ids.len(), 5);
    for (d, id) in "12345".chars().zip(&ids) {
        assert_eq!(t.encode(&d.to_string()).unwrap(), vec![*id]);
    }
}

fn token_bytes() -> &'static [Option<Vec<u8>>] {
    static B: OnceLock<Vec<Option<Vec<u8>>>> = OnceLock::new();
    B.get_or_init(|| tok().token_bytes())
}

#[test]
fn token_bytes_leave_out_special_tokens() {
    let bytes = token_bytes();
    assert_eq!(bytes.len(), tok().vocab_size());
    for special in ["<|im_start|>", "<|im_end|>", "<|endoftext|>"] {
        let id = tok().token_to_id(special).unwrap();
        assert_eq!(bytes[id as usize], None, "{special}");
    }
    let id = tok().encode(" the").unwrap();
    assert_eq!(bytes[id[0] as usize].as_deref(), Some(&b" the"[..]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn decode_encode_round_trip(s in "\\PC{0,40}|[ \\n\\ta-z0-9{}\":,.]{0,60}") {
        let ids = tok().encode(&s).unwrap();
        prop_assert_eq!(tok().decode(&ids, false).unwrap(), s);
    }

    /// The bytes of a text's tokens, concatenated, are the text: what constrained decoding
    /// matches is what the model wrote.
    #[test]
    fn token_bytes_concatenate_to_the_text(s in "\\PC{0,40}|[ \\n\\ta-z0-9{}\":,.]{0,60}") {
        let ids = tok().encode(&s).unwrap();
        let mut joined = Vec::new();
        for id in ids {
            joined.extend(token_bytes()[id as usize].clone().unwrap());
        }
        prop_assert_eq!(joined, s.as_bytes().to_vec());
    }
}
