//! Harnesses of model files: GGUF (header, metadata, tokenizer, template, config, tensors),
//! `tokenizer.json`, Jinja chat templates and PEFT adapter directories. The seeds are a tiny
//! random llama written by the same formats' writers (candle's GGUF writer, the tokenizers
//! crate, safetensors), so the mutator starts from files a real loader takes.

use crate::seeds::Corpus;
use crate::{Error, Harness, Result, Target, Verdict, names_file};
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use thinkfl_candle::adapter::{AdapterConfig, apply_adapter};
use thinkfl_candle::{ChatTemplate, Llama, LlamaConfig, LoadOptions, Tok};
use thinkfl_core::{Message, ToolCall};

/// Byte-level BPE pieces of the tiny tokenizer: printable ASCII and `Ġ` (a space).
fn tiny_tokens() -> Vec<String> {
    let mut t: Vec<String> = (b'!'..=b'~').map(|b| char::from(b).to_string()).collect();
    t.push("Ġ".into());
    t.push("Ċ".into());
    for m in ["ab", "Ġa", "se", "ar", "arc", "arch"] {
        t.push(m.into());
    }
    t.push("<|im_start|>".into());
    t.push("<|im_end|>".into());
    t
}

const TINY_MERGES: &[&str] = &["a b", "Ġ a", "s e", "a r", "ar c", "arc h"];

/// A tool-calling template in the shape of Qwen's and SmolLM2's.
pub const TOOLS_TEMPLATE: &str = "{%- if tools %}{{ '<|im_start|>system\\n' }}{%- for t in tools %}{{ t | tojson }}{%- endfor %}{{ '<|im_end|>\\n' }}{%- endif %}{%- for m in messages %}{%- if m.role == 'assistant' and m.tool_calls %}{{ '<|im_start|>assistant\\n' }}{%- for c in m.tool_calls %}<tool_call>{{ c.function | tojson }}</tool_call>{%- endfor %}{{ '<|im_end|>\\n' }}{%- elif m.role == 'tool' %}{{ '<|im_start|>user\\n<tool_response>' + m.content + '</tool_response><|im_end|>\\n' }}{%- else %}{{ '<|im_start|>' + m.role + '\\n' + m.content | trim + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

fn tiny_config(vocab: usize) -> LlamaConfig {
    let mut cfg = LlamaConfig::tiny(vocab);
    cfg.hidden_size = 16;
    cfg.intermediate_size = 24;
    cfg.max_position_embeddings = 64;
    cfg
}

fn setup(target: &'static str) -> impl Fn(thinkfl_candle::Error) -> Error {
    move |e| Error::setup(target, e)
}

/// The tiny model as GGUF bytes: llama metadata, the byte-level BPE tokenizer, a template.
pub fn tiny_gguf(template: &str) -> std::result::Result<Vec<u8>, String> {
    let tokens = tiny_tokens();
    let model =
        Llama::random(tiny_config(tokens.len()), 3, &Device::Cpu).map_err(|e| e.to_string())?;
    let hf = model.hf_tensors().map_err(|e| e.to_string())?;
    let gguf_name = |name: &str| -> Option<String> {
        let map = [
            ("self_attn.q_proj", "attn_q"),
            ("self_attn.k_proj", "attn_k"),
            ("self_attn.v_proj", "attn_v"),
            ("self_attn.o_proj", "attn_output"),
            ("mlp.gate_proj", "ffn_gate"),
            ("mlp.up_proj", "ffn_up"),
            ("mlp.down_proj", "ffn_down"),
            ("input_layernorm", "attn_norm"),
            ("post_attention_layernorm", "ffn_norm"),
        ];
        match name {
            "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
            "model.norm.weight" => return Some("output_norm.weight".into()),
            "lm_head.weight" => return Some("output.weight".into()),
            _ => {}
        }
        let rest = name.strip_prefix("model.layers.")?;
        let (i, rest) = rest.split_once('.')?;
        let (module, kind) = rest.rsplit_once('.')?;
        let g = map.iter().find(|(h, _)| *h == module)?.1;
        Some(format!("blk.{i}.{g}.{kind}"))
    };
    let mut qt: Vec<(String, QTensor)> = Vec::new();
    let mut names: Vec<&String> = hf.keys().collect();
    names.sort();
    for n in names {
        let g = gguf_name(n).ok_or_else(|| format!("no GGUF name for {n}"))?;
        let q = QTensor::quantize(&hf[n], GgmlDType::F32).map_err(|e| e.to_string())?;
        qt.push((g, q));
    }
    use gguf_file::Value as V;
    let cfg = &model.config;
    let u = |v: usize| V::U32(v as u32);
    let md: Vec<(&str, V)> = vec![
        ("general.architecture", V::String("llama".into())),
        ("general.name", V::String("tiny".into())),
        ("llama.embedding_length", u(cfg.hidden_size)),
        ("llama.feed_forward_length", u(cfg.intermediate_size)),
        ("llama.block_count", u(cfg.num_hidden_layers)),
        ("llama.attention.head_count", u(cfg.num_attention_heads)),
        ("llama.attention.head_count_kv", u(cfg.num_kv_heads())),
        ("llama.context_length", u(cfg.max_position_embeddings)),
        ("llama.rope.freq_base", V::F32(10_000.0)),
        ("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
        ("tokenizer.ggml.model", V::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens",
            V::Array(tokens.iter().map(|t| V::String(t.clone())).collect()),
        ),
        (
            "tokenizer.ggml.merges",
            V::Array(
                TINY_MERGES
                    .iter()
                    .map(|m| V::String(m.to_string()))
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.eos_token_id", u(tokens.len() - 1)),
        ("tokenizer.ggml.bos_token_id", u(tokens.len() - 2)),
        ("tokenizer.chat_template", V::String(template.into())),
    ];
    let md_refs: Vec<(&str, &V)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = qt.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &md_refs, &t_refs).map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

fn conversation() -> Vec<Message> {
    vec![
        Message::system("You localize failures."),
        Message::user("Which pod is the root cause? ab se arch"),
        Message {
            tool_calls: vec![ToolCall {
                name: "search_traces".into(),
                arguments: serde_json::json!({"parent_span_id": "d1b3f238e544e3f0"}),
            }],
            ..Message::assistant("")
        },
        Message::tool("search_traces", "span rows"),
    ]
}

fn tools() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"type": "function", "function": {"name": "search_traces",
        "parameters": {"type": "object", "properties": {"parent_span_id": {"type": "string"}}}}}),
    ]
}

/// What a loaded tokenizer and template must survive: encoding the rendered conversation and
/// decoding it back.
fn exercise(tok: &Tok, template: &ChatTemplate) -> std::result::Result<(), String> {
    let text = template
        .render(&conversation(), &tools(), true)
        .map_err(|e| e.to_string())?;
    let ids = tok.encode(&text).map_err(|e| e.to_string())?;
    tok.decode(&ids, false).map_err(|e| e.to_string())?;
    let _ = tok.encode_with_offsets("ab se\u{1F600}é\n<|im_end|>");
    Ok(())
}

struct GgufHarness {
    path: PathBuf,
}

impl Harness for GgufHarness {
    fn run(&mut self, input: &[u8]) -> Verdict {
        let _ = std::fs::write(&self.path, input);
        match thinkfl_candle::load(&self.path, &LoadOptions::f32_only()) {
            Ok(m) => {
                // A model that loads must run: ids within its vocabulary, one forward.
                let v = m.model.config.vocab_size.min(4) as u32;
                let ids: Vec<u32> = (0..v).collect();
                if !ids.is_empty() {
                    let x = Tensor::new(&ids[..], &Device::Cpu).and_then(|t| t.unsqueeze(0));
                    if let Ok(x) = x
                        && let Err(e) = m.model.forward_logits(&x)
                    {
                        return Verdict::Finding(format!("loaded model fails its forward: {e}"));
                    }
                }
                let _ = exercise(&m.tokenizer, &m.template);
                Verdict::Accepted
            }
            Err(e) => names_file(&e.to_string(), "model.gguf"),
        }
    }
}

/// GGUF files.
pub(crate) fn gguf(corpus: &Corpus) -> Result<Target> {
    let seeds = vec![
        tiny_gguf(TOOLS_TEMPLATE).map_err(|e| Error::setup("gguf", e))?,
        tiny_gguf(thinkfl_candle::template::CHATML_TEMPLATE)
            .map_err(|e| Error::setup("gguf", e))?,
    ];
    let dir = corpus.scratch().join("gguf");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let dict = &[
        "GGUF",
        "general.alignment",
        "llama.",
        "tokenizer.ggml.",
        "\0\0\0\0",
        "\x08\0\0\0",
    ];
    Ok(Target::new(
        "gguf",
        seeds,
        dict,
        GgufHarness {
            path: dir.join("model.gguf"),
        },
    ))
}

/// The tokenizer of the tiny GGUF, for the tokenizer.json and template harnesses.
fn tiny_tok(target: &'static str, scratch: &Path) -> Result<Tok> {
    let bytes = tiny_gguf(thinkfl_candle::template::CHATML_TEMPLATE)
        .map_err(|e| Error::setup(target, e))?;
    let p = scratch.join(format!("{target}-seed.gguf"));
    std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
    let ct = thinkfl_candle::load::read_gguf_content(&p).map_err(setup(target))?;
    Tok::from_gguf(&ct).map_err(setup(target))
}

struct TokenizerHarness {
    path: PathBuf,
    template: String,
}

impl Harness for TokenizerHarness {
    fn run(&mut self, input: &[u8]) -> Verdict {
        let _ = std::fs::write(&self.path, input);
        match Tok::from_file(&self.path) {
            Ok(tok) => {
                let _ = tok.token_bytes();
                if let Ok(t) = ChatTemplate::new(&self.template, &tok) {
                    let _ = exercise(&tok, &t);
                }
                Verdict::Accepted
            }
            Err(e) => names_file(&e.to_string(), "tokenizer.json"),
        }
    }
}

/// `tokenizer.json` files.
pub(crate) fn tokenizer_json(corpus: &Corpus) -> Result<Target> {
    let dir = corpus.scratch().join("tokenizer-json");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let tok = tiny_tok("tokenizer-json", corpus.scratch())?;
    let seed_path = dir.join("seed.json");
    tok.inner
        .save(&seed_path, false)
        .map_err(|e| Error::setup("tokenizer-json", e))?;
    let seeds = vec![std::fs::read(&seed_path).map_err(|e| Error::io(&seed_path, e))?];
    let dict = &[
        "{",
        "}",
        "[",
        "]",
        "\"",
        ":",
        ",",
        "null",
        "\"type\"",
        "\"BPE\"",
        "\"ByteLevel\"",
        "\"Split\"",
        "\"Regex\"",
        "\"pattern\"",
        "\"vocab\"",
        "\"merges\"",
        "\"added_tokens\"",
        "\"special\": true",
        "\"id\": 4294967295",
        "\"normalizer\"",
        "\"Sequence\"",
        "\"pre_tokenizer\"",
        "\"decoder\"",
        "\"post_processor\"",
        "(?=",
        ".*",
        "\\\\p{L}",
    ];
    Ok(Target::new(
        "tokenizer-json",
        seeds,
        dict,
        TokenizerHarness {
            path: dir.join("tokenizer.json"),
            template: thinkfl_candle::template::CHATML_TEMPLATE.into(),
        },
    ))
}

struct TemplateHarness {
    tok: Tok,
}

impl Harness for TemplateHarness {
    fn run(&mut self, input: &[u8]) -> Verdict {
        let src = String::from_utf8_lossy(input);
        match ChatTemplate::new(&src, &self.tok) {
            Ok(t) => match t.render(&conversation(), &tools(), true) {
                Ok(_) => Verdict::Accepted,
                Err(e) if e.to_string().trim().is_empty() => {
                    Verdict::Finding("render error without a message".into())
                }
                Err(_) => Verdict::Rejected,
            },
            Err(e) if e.to_string().trim().is_empty() => {
                Verdict::Finding("template error without a message".into())
            }
            Err(_) => Verdict::Rejected,
        }
    }
}

/// Jinja chat templates (the tiny tools template, ChatML, and the default model's own where it
/// is cached).
pub(crate) fn chat_template(corpus: &Corpus) -> Result<Target> {
    let tok = tiny_tok("chat-template", corpus.scratch())?;
    let mut seeds = vec![
        TOOLS_TEMPLATE.as_bytes().to_vec(),
        thinkfl_candle::template::CHATML_TEMPLATE
            .as_bytes()
            .to_vec(),
    ];
    if let Ok(p) = thinkfl_candle::fetch::resolve_model("default", false)
        && let Ok(ct) = thinkfl_candle::load::read_gguf_content(&p)
        && let Some(Ok(src)) = ct
            .metadata
            .get("tokenizer.chat_template")
            .map(|v| v.to_string())
    {
        seeds.push(src.as_bytes().to_vec());
    }
    let dict = &[
        "{{",
        "}}",
        "{%",
        "%}",
        "{%-",
        "-%}",
        "{# #}",
        "messages",
        "message['content']",
        "m.tool_calls",
        "tools",
        "add_generation_prompt",
        "| tojson",
        "| trim",
        "loop.index",
        "{% for i in range(99999) %}",
        "{% endfor %}",
        "{% if",
        "{% endif %}",
        "{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}",
        "raise_exception('no')",
        "'",
        "\"",
        "~",
        "*",
        "9999999",
        "[0]",
        "[-1]",
        ".split()",
        "{% set x = x ~ x %}",
        "namespace(",
        "{% recursive %}",
    ];
    Ok(Target::new(
        "chat-template",
        seeds,
        dict,
        TemplateHarness { tok },
    ))
}

/// Where the adapter's config ends and its weights begin in one input.
const SPLIT: &[u8] = b"\n--safetensors--\n";

struct AdapterHarness {
    dir: PathBuf,
    model: Llama,
}

impl Harness for AdapterHarness {
    fn run(&mut self, input: &[u8]) -> Verdict {
        let at = input.windows(SPLIT.len()).position(|w| w == SPLIT);
        let (cfg, weights) = match at {
            Some(at) => (&input[..at], &input[at + SPLIT.len()..]),
            None => (input, &[][..]),
        };
        let _ = std::fs::write(self.dir.join("adapter_config.json"), cfg);
        let _ = std::fs::write(self.dir.join("adapter_model.safetensors"), weights);
        let mut model = self.model.clone();
        match apply_adapter(&mut model, &self.dir) {
            Ok(_) => {
                let x = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).expect("a small tensor");
                match model.forward_logits(&x) {
                    Ok(_) => Verdict::Accepted,
                    Err(e) => Verdict::Finding(format!("adapter applied, forward fails: {e}")),
                }
            }
            Err(e) => {
                let m = e.to_string();
                if m.contains("adapter_config.json") || m.contains("adapter_model.safetensors") {
                    Verdict::Rejected
                } else {
                    names_file(&m, "adapter_config.json or adapter_model.safetensors")
                }
            }
        }
    }
}

/// PEFT adapter directories: `adapter_config.json`, then [`SPLIT`], then the safetensors bytes.
pub(crate) fn peft_adapter(corpus: &Corpus) -> Result<Target> {
    let model = Llama::random(tiny_config(tiny_tokens().len()), 3, &Device::Cpu)
        .map_err(setup("peft-adapter"))?;
    let mut seeds = Vec::new();
    for (r, targets) in [
        (2usize, vec!["q_proj", "v_proj"]),
        (4, Llama::PROJECTIONS.to_vec()),
    ] {
        let mut m = model.clone();
        let vars = m
            .add_lora(r, 2.0 * r as f64, &targets, 9)
            .map_err(setup("peft-adapter"))?;
        let tensors: HashMap<String, Tensor> = vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        let cfg = AdapterConfig::lora(
            r,
            2.0 * r as f64,
            targets.iter().map(|s| s.to_string()).collect(),
            Some("tiny".into()),
        );
        let mut seed =
            serde_json::to_vec_pretty(&cfg).map_err(|e| Error::setup("peft-adapter", e))?;
        let p = corpus
            .scratch()
            .join(format!("adapter-seed-{r}.safetensors"));
        candle_core::safetensors::save(&tensors, &p)
            .map_err(|e| Error::setup("peft-adapter", e))?;
        seed.extend_from_slice(SPLIT);
        seed.extend(std::fs::read(&p).map_err(|e| Error::io(&p, e))?);
        seeds.push(seed);
    }
    let dir = corpus.scratch().join("peft-adapter");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let dict = &[
        "\"r\": 0",
        "\"lora_alpha\"",
        "\"target_modules\"",
        "\"peft_type\"",
        "\"LORA\"",
        "\"use_rslora\": true",
        "\"fan_in_fan_out\"",
        "\"dtype\":\"F16\"",
        "\"dtype\":\"BF16\"",
        "\"shape\":[",
        "\"data_offsets\":[",
        "lora_A",
        "lora_B",
        "base_model.model.model.layers.",
        "\"__metadata__\"",
    ];
    Ok(Target::new(
        "peft-adapter",
        seeds,
        dict,
        AdapterHarness { dir, model },
    ))
}
