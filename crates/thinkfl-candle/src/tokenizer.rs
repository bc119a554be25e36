//! Tokenizers: from `tokenizer.json`, or rebuilt from GGUF metadata (`tokenizer.ggml.*`).
//!
//! GGUF stores a byte-level BPE as its token strings, merges, and the *name* of its
//! pre-tokenizer (`tokenizer.ggml.pre`); llama.cpp maps that name to split regexes in
//! `llama-vocab.cpp`. We rebuild the equivalent Hugging Face pipeline per name:
//!
//! * `smollm` (and the other StarCoder-style vocabularies): digits split one by one, then the
//!   GPT-2 byte-level regex — SmolLM2's own `tokenizer.json` is `Digits(individual)` +
//!   `ByteLevel(use_regex)`;
//! * `qwen2`: NFC, the Qwen2 split regex (single digits), byte-level without regex;
//! * `llama-bpe` / `llama3` / `smaug-bpe`: the Llama 3 split regex (digits in groups of three);
//! * anything else of model `gpt2`: the GPT-2 byte-level pre-tokenizer.
//!
//! Tokens of type control (3) or user-defined (4) become added special tokens, so that chat
//! markup such as `<|im_start|>` is one token when it appears in a rendered template.

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file;
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

const REGEX_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const REGEX_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Strings that end an assistant turn in the chat formats we know.
pub const END_OF_TURN_TOKENS: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "</s>",
];

/// The text of [`Tok::filler_ids`].
const FILLER: &str = "The checkout service calls the payment service, which calls the currency service; \
when the payment pod runs out of memory, requests to checkout slow down and errors appear in the \
frontend logs. Traces show long spans under PaymentService/Charge, and the node metrics show high \
memory usage on the host of the payment pod. ";

/// The bytes `start..end` of a text that a token covers.
pub type ByteRange = (usize, usize);

/// A tokenizer with the special ids generation needs.
#[derive(Debug, Clone)]
pub struct Tok {
    /// The Hugging Face tokenizer.
    pub inner: Tokenizer,
    /// Ids that end generation.
    pub eos_ids: Vec<u32>,
    /// Beginning-of-sequence id, when the model has one.
    pub bos_id: Option<u32>,
    /// Text of the main end-of-sequence token (for templates' `eos_token`).
    pub eos_token: Option<String>,
    /// Text of the beginning-of-sequence token (for templates' `bos_token`).
    pub bos_token: Option<String>,
}

fn tk_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

fn split(regex: &str) -> Result<PreTokenizerWrapper> {
    Ok(Split::new(
        SplitPattern::Regex(regex.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(tk_err)?
    .into())
}

impl Tok {
    /// Rebuild the tokenizer of a GGUF file from its metadata.
    pub fn from_gguf(ct: &gguf_file::Content) -> Result<Self> {
        let md = |k: &str| ct.metadata.get(k);
        let model = md("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "tokenizer.ggml.model `{model}` is not supported (only byte-level BPE, `gpt2`)"
            )));
        }
        let strings = |k: &str| -> Result<Vec<String>> {
            md(k)
                .and_then(|v| v.to_vec().ok())
                .ok_or_else(|| Error::Tokenizer(format!("GGUF metadata {k} is missing")))?
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.to_string()
                        .cloned()
                        .map_err(|_| Error::Tokenizer(format!("{k}[{i}] is not a string")))
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges: Vec<(String, String)> = strings("tokenizer.ggml.merges")?
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| {
                        Error::Tokenizer(format!("tokenizer.ggml.merges[{i}] `{m}` has no space"))
                    })
            })
            .collect::<Result<_>>()?;
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(tk_err)?;
        let mut tk = Tokenizer::new(bpe);
        let pre = md("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| "default".into());
        match pre.as_str() {
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => {
                tk.with_pre_tokenizer(Some(Sequence::new(vec![
                    Digits::new(true).into(),
                    ByteLevel::new(false, true, true).into(),
                ])));
            }
            "qwen2" | "deepseek-r1-qwen" => {
                tk.with_normalizer(Some(NFC)).map_err(tk_err)?;
                tk.with_pre_tokenizer(Some(Sequence::new(vec![
                    split(REGEX_QWEN2)?,
                    ByteLevel::new(false, false, false).into(),
                ])));
            }
            "llama-bpe" | "llama3" | "smaug-bpe" => {
                tk.with_pre_tokenizer(Some(Sequence::new(vec![
                    split(REGEX_LLAMA3)?,
                    ByteLevel::new(false, true, false).into(),
                ])));
            }
            "default" | "gpt2" | "gpt-2" => {
                tk.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
            }
            other => {
                return Err(Error::Tokenizer(format!(
                    "tokenizer.ggml.pre `{other}` is not supported (smollm, qwen2, llama-bpe, gpt2)"
                )));
            }
        }
        tk.with_decoder(Some(ByteLevelDecoder::default()));
        if let Some(types) = md("tokenizer.ggml.token_type").and_then(|v| v.to_vec().ok()) {
            let specials: Vec<AddedToken> = types
                .iter()
                .enumerate()
                .filter(|(_, t)| {
                    matches!(
                        t.to_i32()
                            .ok()
                            .or_else(|| t.to_u32().ok().map(|v| v as i32)),
                        Some(3 | 4)
                    )
                })
                .filter_map(|(i, _)| tokens.get(i))
                .map(|s| AddedToken::from(s.clone(), true))
                .collect();
            tk.add_special_tokens(specials).map_err(tk_err)?;
        }
        let id = |k: &str| md(k).and_then(|v| v.to_u32().ok());
        let bos_id = id("tokenizer.ggml.bos_token_id");
        let eos_id = id("tokenizer.ggml.eos_token_id");
        Ok(Self::finish(tk, bos_id, eos_id))
    }

    /// A Hugging Face `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        // The tokenizers crate panics ("Helper") when the `decoder` object cannot be read as
        // JSON values instead of returning its error (found by `thinkfl fuzz --target
        // tokenizer-json`): a syntax error, and also bytes that are not UTF-8 or a lone
        // surrogate escape inside a string. Decoding the whole file into values first turns
        // every such file into an error here; a syntax check alone (`IgnoredAny`) skips over
        // strings without decoding them, and let the latter two through.
        let value = serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| {
            Error::model(
                path,
                format!(
                    "tokenizer: not valid JSON: line {}, column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        check_bpe_merges(&value).map_err(|m| Error::model(path, format!("tokenizer: {m}")))?;
        let tk = Tokenizer::from_bytes(&bytes)
            .map_err(|e| Error::model(path, format!("tokenizer: {e}")))?;
        Ok(Self::finish(tk, None, None))
    }

    fn finish(tk: Tokenizer, bos_id: Option<u32>, eos_id: Option<u32>) -> Self {
        let mut eos_ids: Vec<u32> = eos_id.into_iter().collect();
        for s in END_OF_TURN_TOKENS {
            if let Some(i) = tk.token_to_id(s) {
                // Only when the string is a special (added) token, not an ordinary piece.
                if tk.get_added_vocabulary().is_special_token(s) && !eos_ids.contains(&i) {
                    eos_ids.push(i);
                }
            }
        }
        let eos_token = eos_ids.first().and_then(|&i| tk.id_to_token(i));
        let bos_token = bos_id.and_then(|i| tk.id_to_token(i));
        Tok {
            inner: tk,
            eos_ids,
            bos_id,
            eos_token,
            bos_token,
        }
    }

    /// Token ids of `text`; special tokens written in the text (`<|im_start|>`) are recognised.
    /// No BOS/EOS is added: chat templates write them.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(tk_err)?
            .get_ids()
            .to_vec())
    }

    /// `n` token ids of English text about an incident, repeated as needed and cut at `n`; each
    /// `variant` starts differently, so that prompts of one batch share no prefix. Benchmarks
    /// and tests use it for prompts of exact lengths.
    pub fn filler_ids(&self, n: usize, variant: usize) -> Result<Vec<u32>> {
        let mut text = format!("Case {variant}. ");
        let mut ids = self.encode(&text)?;
        while ids.len() < n {
            text.push_str(FILLER);
            ids = self.encode(&text)?;
        }
        ids.truncate(n);
        Ok(ids)
    }

    /// Ids with the byte offsets of each token in `text`.
    pub fn encode_with_offsets(&self, text: &str) -> Result<(Vec<u32>, Vec<ByteRange>)> {
        let e = self.inner.encode(text, false).map_err(tk_err)?;
        Ok((e.get_ids().to_vec(), e.get_offsets().to_vec()))
    }

    /// The text of `ids`; `skip_special` leaves out special tokens (chat markup, EOS).
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(tk_err)
    }

    /// Tokens of the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of token `s` (a vocabulary entry, not text to encode).
    pub fn token_to_id(&self, s: &str) -> Option<u32> {
        self.inner.token_to_id(s)
    }

    /// Whether `id` ends generation (one of [`Tok::eos_ids`]).
    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }

    /// The bytes each token id stands for, `None` for special tokens (chat markup, EOS) and for
    /// pieces that are not whole bytes. Constrained decoding matches these against a grammar.
    ///
    /// Byte-level vocabularies store byte `b` as a printable stand-in character (GPT-2's
    /// `bytes_to_unicode`); other vocabularies are read through the decoder, one token at a time.
    pub fn token_bytes(&self) -> Vec<Option<Vec<u8>>> {
        let unicode_to_byte = gpt2_unicode_to_byte();
        let byte_level = matches!(
            self.inner.get_decoder(),
            Some(tokenizers::DecoderWrapper::ByteLevel(_))
        );
        let vocab = self.inner.get_vocab_size(true);
        (0..vocab as u32)
            .map(|id| {
                let added = self.inner.get_added_vocabulary();
                let piece = self.inner.id_to_token(id)?;
                if added.is_special_token(&piece) || self.is_eos(id) {
                    return None;
                }
                if byte_level {
                    piece
                        .chars()
                        .map(|c| unicode_to_byte.get(&c).copied())
                        .collect::<Option<Vec<u8>>>()
                } else if let Some(hex) =
                    piece.strip_prefix("<0x").and_then(|h| h.strip_suffix('>'))
                {
                    // SentencePiece byte fallback: `<0x0A>` is the byte 0x0A.
                    u8::from_str_radix(hex, 16).ok().map(|b| vec![b])
                } else {
                    // SentencePiece marks a space as U+2581; decoding one token alone would
                    // drop a leading one.
                    Some(piece.replace('\u{2581}', " ").into_bytes())
                }
            })
            .collect()
    }
}

/// The inverse of GPT-2's `bytes_to_unicode`: printable bytes stand for themselves, the others
/// (controls, space, 127-160, 173) for the characters from U+0100 on, in byte order.
fn gpt2_unicode_to_byte() -> std::collections::HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            let c = if printable(b) {
                char::from(b)
            } else {
                next += 1;
                char::from_u32(next - 1).expect("U+0100..U+0143 are chars")
            };
            (c, b)
        })
        .collect()
}

/// The BPE merges of a `tokenizer.json`, checked before the tokenizers crate (0.23.2) builds
/// its model: for each merge it copies `a` and `b` less the continuing-subword prefix into a
/// buffer as long as the longest vocabulary entry, and only then looks the merged token up, so a
/// merge whose result is not in the vocabulary (longer than any entry) or whose `b` is shorter
/// than the prefix panics there (found by `thinkfl fuzz --target tokenizer-json`, seed 19), and
/// a `b` that does not start with the prefix is cut inside a character before an unchecked
/// UTF-8 conversion. Shapes the crate refuses with an error of its own are left to it.
fn check_bpe_merges(v: &serde_json::Value) -> std::result::Result<(), String> {
    let Some(model) = v.get("model") else {
        return Ok(());
    };
    let vocab = model.get("vocab").and_then(|x| x.as_object());
    let merges = model.get("merges").and_then(|x| x.as_array());
    let (Some(vocab), Some(merges)) = (vocab, merges) else {
        return Ok(());
    };
    let prefix = model
        .get("continuing_subword_prefix")
        .and_then(|p| p.as_str())
        .unwrap_or("");
    let lines = merges
        .iter()
        .filter(|m| !m.as_str().is_some_and(|s| s.starts_with("#version")));
    for (rank, m) in lines.enumerate() {
        let (a, b) = match m {
            serde_json::Value::String(s) => match s.split(' ').collect::<Vec<_>>()[..] {
                [a, b] => (a, b),
                _ => continue,
            },
            serde_json::Value::Array(p) => match (p.first(), p.get(1), p.len()) {
                (Some(a), Some(b), 2) => match (a.as_str(), b.as_str()) {
                    (Some(a), Some(b)) => (a, b),
                    _ => continue,
                },
                _ => continue,
            },
            _ => continue,
        };
        if !vocab.contains_key(a) || !vocab.contains_key(b) {
            continue; // the crate's own "out of vocabulary" error, before it slices
        }
        let Some(rest) = b.strip_prefix(prefix) else {
            return Err(format!(
                "merge {} ({a:?}, {b:?}): the second part does not start with the \
                 continuing-subword prefix {prefix:?}",
                rank + 1
            ));
        };
        let merged = format!("{a}{rest}");
        if !vocab.contains_key(&merged) {
            return Err(format!(
                "merge {} ({a:?}, {b:?}): {merged:?} is not in the vocabulary",
                rank + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Tok;

    /// Regression (`thinkfl fuzz --target tokenizer-json`): a JSON syntax error inside the
    /// `decoder` object made the tokenizers crate panic; it is an error naming the file.
    #[test]
    fn broken_json_in_the_decoder_is_an_error_naming_the_file() {
        // The last two cases: a key with bytes that are not UTF-8 (the input of `thinkfl fuzz
        // --target tokenizer-json --seed 18 --from 25 --iterations 1`) and a lone surrogate.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        let good = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}"#;
        std::fs::write(&p, good).unwrap();
        let tok = Tok::from_file(&p).unwrap();
        assert_eq!(tok.encode("ab").unwrap(), vec![2]);
        let not_utf8: Vec<u8> = good
            .replace("\"trim_offsets\"", "\"trim#offsets\"")
            .bytes()
            .flat_map(|b| if b == b'#' { vec![0xfe, 0xff] } else { vec![b] })
            .collect();
        for bad in [
            good.replace("\"add_prefix_space\":true", "\"add_prefix_space%:true")
                .into_bytes(),
            good.replace("\"trim_offsets\":true,", "\"trim_offsets\":tr")
                .into_bytes(),
            good.replace("{\"type\":\"ByteLevel\",", "{\"type\":\"ByteLevel\",1:")
                .into_bytes(),
            not_utf8,
            good.replace("\"trim_offsets\"", "\"trim\\udc00\"")
                .into_bytes(),
        ] {
            std::fs::write(&p, &bad).unwrap();
            let e = Tok::from_file(&p).unwrap_err().to_string();
            assert!(e.contains("tokenizer.json") && e.contains("line 1"), "{e}");
        }
        // Merges the tokenizers crate panicked on (`thinkfl fuzz --target tokenizer-json
        // --seed 19`, iterations 2304 and 8670): a result longer than any vocabulary entry,
        // and a second part shorter than the continuing-subword prefix.
        for bad in [
            good.replace("\"merges\":[\"a b\"]", "\"merges\":[\"a b\",\"ab b\"]"),
            good.replace(
                "\"continuing_subword_prefix\":null",
                "\"continuing_subword_prefix\":\"##\"",
            ),
        ] {
            assert_ne!(bad, good);
            std::fs::write(&p, &bad).unwrap();
            let e = Tok::from_file(&p).unwrap_err().to_string();
            assert!(e.contains("tokenizer.json") && e.contains("merge "), "{e}");
        }
    }
}
