//! Loading a model: a GGUF file (weights, tokenizer and chat template in one file), or a Hugging
//! Face directory (`config.json`, `*.safetensors`, `tokenizer.json`, `tokenizer_config.json`).
//!
//! GGUF tensor names follow llama.cpp (`blk.N.attn_q.weight`, ...) and are mapped to the
//! Hugging Face names used by [`crate::llama`]. llama.cpp's converter permutes the rows of the
//! llama q/k projections so that its interleaved rotary kernel applies; we undo that permutation
//! (on f32 rows, or on the raw quantized rows, which are whole blocks) so that one forward in the
//! Hugging Face layout serves both sources.

use crate::config::{Architecture, LlamaConfig};
use crate::error::{Error, Result};
use crate::llama::{Block, Linear, Llama};
use crate::template::ChatTemplate;
use crate::tokenizer::Tok;
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor, gguf_file};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to keep the weights.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Keep f32 copies of quantized projections (needed by [`crate::llama::Mode::Train`]).
    pub keep_f32: bool,
    /// Keep quantized projections as quantized matmuls for inference (GGUF only).
    pub keep_quantized: bool,
    /// Re-quantize every projection to this type for inference (e.g. `Q8_0`), whatever the file
    /// holds; implies quantized matmuls.
    pub requantize: Option<GgmlDType>,
    /// Add packed 8/4-bit copies of the f32 weights for decoding ([`crate::qlinear`]); needs
    /// `keep_f32`.
    pub pack: bool,
    /// After packing, drop the f32 weights of the projections and the head: the inference
    /// forward reads only the packed copies, and the f32 ones were most of the resident memory
    /// (training and merged exports need them: [`LoadOptions::training`] keeps them).
    pub drop_packed_f32: bool,
    /// Where the weights go (packed weights need the CPU).
    pub device: Device,
}

impl Default for LoadOptions {
    /// Inference on packed 8/4-bit copies of the weights ([`crate::qlinear`]), with the f32
    /// weights (dequantized once at load) kept beside them. On the 2-core x86 machine of this
    /// project f32 weights measured 6x (decode) to 17x (prefill) faster than candle's Q4_1
    /// quantized matmuls, which also round activations to 8 bits (that changed SmolLM2's
    /// answers); the packed copies keep f32 activations, reproduce Q4_1/Q8_0 GGUF weights
    /// exactly, and decode several times faster than f32 weights; see `thinkfl bench model
    /// --weights`.
    fn default() -> Self {
        Self::packed()
    }
}

impl LoadOptions {
    /// f32 weights for training and packed copies for fast rollouts (the same as
    /// [`LoadOptions::packed`]: LoRA training never changes the base weights).
    pub fn training() -> Self {
        Self::packed()
    }
    /// f32 only (no quantized matmuls).
    pub fn f32_only() -> Self {
        LoadOptions {
            keep_f32: true,
            keep_quantized: false,
            requantize: None,
            pack: false,
            drop_packed_f32: false,
            device: Device::Cpu,
        }
    }
    /// The file's own quantized matmuls for inference, no f32 copies.
    pub fn quantized() -> Self {
        LoadOptions {
            keep_f32: false,
            keep_quantized: true,
            requantize: None,
            pack: false,
            drop_packed_f32: false,
            device: Device::Cpu,
        }
    }
    /// Projections re-quantized to `dtype` for inference, no f32 copies.
    pub fn requantized(dtype: GgmlDType) -> Self {
        LoadOptions {
            keep_f32: false,
            keep_quantized: true,
            requantize: Some(dtype),
            pack: false,
            drop_packed_f32: false,
            device: Device::Cpu,
        }
    }
    /// f32 weights plus their packed copies, which the inference forward uses (prefill and
    /// decoding, see [`crate::qlinear`]); the f32 ones serve training and merged exports.
    pub fn packed() -> Self {
        LoadOptions {
            pack: true,
            ..Self::f32_only()
        }
    }
    /// Packed copies only, for inference (chat, localize, eval): [`LoadOptions::packed`] without
    /// the f32 projections and head once they are packed. Adapters still apply (they stay
    /// unmerged); training and merged exports need [`LoadOptions::training`].
    pub fn inference() -> Self {
        LoadOptions {
            drop_packed_f32: true,
            ..Self::packed()
        }
    }
    /// Checks that the options fit together: something is kept, packing has f32 weights to pack
    /// and runs on the CPU, and only packed weights are dropped.
    pub fn validate(&self) -> Result<()> {
        if self.drop_packed_f32 && !self.pack {
            return Err(Error::Options(
                "LoadOptions drops packed f32 weights but packs none: set pack".into(),
            ));
        }
        if !self.keep_f32 && !self.keep_quantized {
            return Err(Error::Options(
                "LoadOptions keeps neither f32 nor quantized weights".into(),
            ));
        }
        if self.pack && !self.keep_f32 {
            return Err(Error::Options(
                "LoadOptions packs weights from f32 ones: set keep_f32".into(),
            ));
        }
        if self.pack && !self.device.is_cpu() {
            return Err(Error::Options("packed weights are CPU only".into()));
        }
        Ok(())
    }
}

/// A model with everything needed to chat with it.
#[derive(Debug)]
pub struct LoadedModel {
    /// Which forward the model uses.
    pub architecture: Architecture,
    /// The weights.
    pub model: Llama,
    /// The tokenizer (from the GGUF, or `tokenizer.json`).
    pub tokenizer: Tok,
    /// The chat template (the model's own, or ChatML).
    pub template: ChatTemplate,
    /// The file or directory loaded.
    pub source: PathBuf,
    /// Short name for reports (file stem, or `general.name`).
    pub name: String,
}

/// Load a GGUF file or a Hugging Face model directory.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<LoadedModel> {
    opts.validate()?;
    let mut loaded = if path.is_dir() {
        load_hf_dir(path, opts)?
    } else {
        load_gguf(path, opts)?
    };
    if opts.pack {
        loaded.model.pack_for_inference()?;
    }
    if opts.drop_packed_f32 {
        loaded.model.drop_packed_f32();
    }
    Ok(loaded)
}

/// Read only the GGUF header (metadata and tensor table).
pub fn read_gguf_content(path: &Path) -> Result<gguf_file::Content> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    gguf_file::Content::read(&mut f)
        .map_err(|e| Error::model(path, format!("not a readable GGUF file: {e}")))
}

fn gguf_name(hf: &str) -> String {
    let map = [
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
    ];
    for (h, g) in map {
        if hf == h {
            return g.to_string();
        }
    }
    hf.to_string()
}

/// Undo llama.cpp's q/k row permutation: GGUF row `h*hd + 2i + j` is HF row `h*hd + j*hd/2 + i`.
fn unpermute_rows(rows: usize, n_head: usize) -> Vec<usize> {
    let hd = rows / n_head;
    let mut src = vec![0; rows];
    for h in 0..n_head {
        for i in 0..hd / 2 {
            for j in 0..2 {
                src[h * hd + j * hd / 2 + i] = h * hd + 2 * i + j;
            }
        }
    }
    src
}

fn permute_qtensor(q: &QTensor, src_rows: &[usize], device: &Device) -> Result<QTensor> {
    let (rows, cols) = q.shape().dims2()?;
    let dtype = q.dtype();
    let row_bytes = cols / dtype.block_size() * dtype.type_size();
    let data = q.data()?;
    if data.len() != rows * row_bytes {
        return Err(Error::Shape(format!(
            "quantized tensor of {} bytes for {rows}x{cols} {dtype:?}",
            data.len()
        )));
    }
    let mut out = Vec::with_capacity(data.len());
    for &r in src_rows {
        out.extend_from_slice(&data[r * row_bytes..(r + 1) * row_bytes]);
    }
    let storage = QStorage::from_data(std::borrow::Cow::Owned(out), device, dtype)?;
    Ok(QTensor::new(storage, (rows, cols))?)
}

/// A projection from a GGUF tensor, kept as f32, as the file's quantized type, or re-quantized,
/// as `opts` asks.
fn requant_linear(q: QTensor, bias: Option<Tensor>, opts: &LoadOptions) -> Result<Linear> {
    let dev = &opts.device;
    let (o, n) = q.shape().dims2()?;
    let is_float = matches!(q.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
    let dense = || -> Result<Tensor> { Ok(q.dequantize(dev)?.to_dtype(DType::F32)?) };
    let (weight, quantized) = match opts.requantize {
        Some(dt) => {
            let w = dense()?;
            let qm = QMatMul::from_arc(Arc::new(QTensor::quantize(&w, dt)?))?;
            (opts.keep_f32.then_some(w), Some(qm))
        }
        None if opts.keep_quantized && !is_float => {
            let w = if opts.keep_f32 { Some(dense()?) } else { None };
            (w, Some(QMatMul::from_arc(Arc::new(q))?))
        }
        None => (Some(dense()?), None),
    };
    pack_now(Linear::new(weight, bias, quantized, (o, n)), opts)
}

/// Under [`LoadOptions::drop_packed_f32`], `lin` packed and without its f32 weight at once, so
/// that the f32 copies of the whole model never sit in memory together (the peak resident set
/// of a load is what a small machine feels); otherwise as it is ([`load`] packs at the end).
fn pack_now(mut lin: Linear, opts: &LoadOptions) -> Result<Linear> {
    if opts.pack && opts.drop_packed_f32 && lin.pack()? {
        lin.weight = None;
    }
    Ok(lin)
}

/// Refuses a tensor whose shape claims more bytes than the whole file holds, counted without
/// overflow: candle multiplies the dimensions in `usize`, so dimensions whose product passes
/// 2^64 wrap around (to 0 for 2^32 x 2^32) and slip past its own size check into a tensor of
/// an impossible shape over no data.
fn check_tensor_size(
    info: &gguf_file::TensorInfo,
    file_len: u64,
) -> std::result::Result<(), String> {
    let dims = info.shape.dims();
    let bytes = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .map(|n| n / info.ggml_dtype.block_size() as u64)
        .and_then(|blocks| blocks.checked_mul(info.ggml_dtype.type_size() as u64));
    match bytes {
        // candle views a tensor's bytes as its element type, and the buffer of an empty
        // tensor has no alignment, so it panics (found by `thinkfl fuzz --target gguf`); no
        // weight of a model is empty.
        Some(0) => Err(format!("shape {dims:?} holds no bytes")),
        Some(b) if b <= file_len => Ok(()),
        Some(b) => Err(format!(
            "shape {dims:?} needs {b} bytes, more than the whole file ({file_len} bytes)"
        )),
        None => Err(format!("shape {dims:?} has more than 2^64 elements")),
    }
}

fn load_gguf(path: &Path, opts: &LoadOptions) -> Result<LoadedModel> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let ct = gguf_file::Content::read(&mut f)
        .map_err(|e| Error::model(path, format!("not a readable GGUF file: {e}")))?;
    let (arch, cfg) = LlamaConfig::from_gguf(&ct).map_err(|e| Error::model(path, e.to_string()))?;
    let dev = &opts.device;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut read = |name: &str| -> Result<QTensor> {
        if let Some(info) = ct.tensor_infos.get(name) {
            check_tensor_size(info, file_len)
                .map_err(|m| Error::model(path, format!("tensor {name}: {m}")))?;
        }
        ct.tensor(&mut f, name, dev)
            .map_err(|e| Error::model(path, format!("tensor {name}: {e}")))
    };
    let dense = |q: &QTensor| -> Result<Tensor> { Ok(q.dequantize(dev)?.to_dtype(DType::F32)?) };
    let linear =
        |q: QTensor, bias: Option<Tensor>, permute_heads: Option<usize>| -> Result<Linear> {
            let (o, _) = q.shape().dims2()?;
            let q = match permute_heads {
                Some(nh) => permute_qtensor(&q, &unpermute_rows(o, nh), dev)?,
                None => q,
            };
            requant_linear(q, bias, opts)
        };
    let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
    let permute = arch == Architecture::Llama;
    for i in 0..cfg.num_hidden_layers {
        let mut proj = |hf: &str, heads: Option<usize>| -> Result<Linear> {
            let g = gguf_name(hf);
            let w = read(&format!("blk.{i}.{g}.weight"))?;
            let bias_name = format!("blk.{i}.{g}.bias");
            let bias = if ct.tensor_infos.contains_key(&bias_name) {
                let b = read(&bias_name)?.dequantize(dev)?;
                // A bias is permuted like the rows of its weight.
                Some(match heads {
                    Some(nh) => {
                        let idx: Vec<u32> = unpermute_rows(b.dim(0)?, nh)
                            .into_iter()
                            .map(|r| r as u32)
                            .collect();
                        b.index_select(&Tensor::new(idx, dev)?, 0)?
                    }
                    None => b,
                })
            } else {
                None
            };
            linear(w, bias, heads)
        };
        let qh = permute.then_some(cfg.num_attention_heads);
        let kh = permute.then_some(cfg.num_kv_heads());
        let q_proj = proj("self_attn.q_proj", qh)?;
        let k_proj = proj("self_attn.k_proj", kh)?;
        let v_proj = proj("self_attn.v_proj", None)?;
        let o_proj = proj("self_attn.o_proj", None)?;
        let gate_proj = proj("mlp.gate_proj", None)?;
        let up_proj = proj("mlp.up_proj", None)?;
        let down_proj = proj("mlp.down_proj", None)?;
        layers.push(Block {
            input_layernorm: dense(&read(&format!("blk.{i}.attn_norm.weight"))?)?,
            q_proj,
            k_proj,
            v_proj,
            o_proj,
            post_attention_layernorm: dense(&read(&format!("blk.{i}.ffn_norm.weight"))?)?,
            gate_proj,
            up_proj,
            down_proj,
        });
    }
    let norm = dense(&read("output_norm.weight")?)?;
    let embd_q = read("token_embd.weight")?;
    let embed = dense(&embd_q)?;
    let lm_head = if cfg.tie_word_embeddings {
        let mut head = requant_linear(embd_q, None, opts)?;
        // The same dequantized values as the embedding: share its storage rather than hold a
        // second f32 copy of the largest matrix (49,152 x 576 for SmolLM2, 113 MB).
        if head.weight.is_some() {
            head.weight = Some(embed.clone());
        }
        head
    } else {
        linear(read("output.weight")?, None, None)?
    };
    let model = Llama::new(cfg, embed, layers, norm, lm_head, dev)
        .map_err(|e| Error::model(path, e.to_string()))?;
    let tokenizer = Tok::from_gguf(&ct).map_err(|e| Error::model(path, e.to_string()))?;
    let template =
        ChatTemplate::from_gguf(&ct, &tokenizer).map_err(|e| Error::model(path, e.to_string()))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gguf".into());
    Ok(LoadedModel {
        architecture: arch,
        model,
        tokenizer,
        template,
        source: path.to_path_buf(),
        name,
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&s).map_err(|e| Error::model(path, format!("invalid JSON: {e}")))
}

fn load_hf_dir(dir: &Path, opts: &LoadOptions) -> Result<LoadedModel> {
    let cfg_path = dir.join("config.json");
    let raw = read_json(&cfg_path)?;
    let arch_name = raw
        .get("model_type")
        .and_then(|v| v.as_str())
        .or_else(|| {
            raw.get("architectures")
                .and_then(|a| a.get(0))
                .and_then(|v| v.as_str())
        })
        .ok_or_else(|| Error::model(&cfg_path, "no model_type or architectures field"))?;
    let arch =
        Architecture::parse(arch_name).map_err(|e| Error::model(&cfg_path, e.to_string()))?;
    let mut cfg: LlamaConfig = serde_json::from_value(raw.clone())
        .map_err(|e| Error::model(&cfg_path, format!("field error: {e}")))?;
    if arch == Architecture::Qwen2 {
        cfg.attention_bias = true;
    }
    cfg.validate()
        .map_err(|e| Error::model(&cfg_path, e.to_string()))?;
    let dev = &opts.device;
    // One file or shards listed in model.safetensors.index.json.
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<PathBuf> = if index.exists() {
        let idx = read_json(&index)?;
        let mut v: Vec<String> = idx
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::model(&index, "no weight_map"))?
            .values()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        v.sort();
        v.dedup();
        v.into_iter().map(|f| dir.join(f)).collect()
    } else {
        vec![dir.join("model.safetensors")]
    };
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for f in &files {
        let t = candle_core::safetensors::load(f, dev)
            .map_err(|e| Error::model(f, format!("safetensors: {e}")))?;
        tensors.extend(t);
    }
    let mut take = |name: &str| -> Result<Tensor> {
        let t = tensors
            .remove(name)
            .ok_or_else(|| Error::model(dir, format!("missing tensor {name}")))?;
        Ok(t.to_dtype(DType::F32)?)
    };
    let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let mut lin = |n: &str, bias: bool| -> Result<Linear> {
            let w = take(&format!("{p}.{n}.weight"))?;
            let b = if bias {
                Some(take(&format!("{p}.{n}.bias"))?)
            } else {
                None
            };
            let (o, i) = w.dims2()?;
            pack_now(Linear::new(Some(w), b, None, (o, i)), opts)
        };
        let ab = cfg.attention_bias;
        let q_proj = lin("self_attn.q_proj", ab)?;
        let k_proj = lin("self_attn.k_proj", ab)?;
        let v_proj = lin("self_attn.v_proj", ab)?;
        let o_proj = lin("self_attn.o_proj", false)?;
        let gate_proj = lin("mlp.gate_proj", false)?;
        let up_proj = lin("mlp.up_proj", false)?;
        let down_proj = lin("mlp.down_proj", false)?;
        layers.push(Block {
            input_layernorm: take(&format!("{p}.input_layernorm.weight"))?,
            q_proj,
            k_proj,
            v_proj,
            o_proj,
            post_attention_layernorm: take(&format!("{p}.post_attention_layernorm.weight"))?,
            gate_proj,
            up_proj,
            down_proj,
        });
    }
    let embed = take("model.embed_tokens.weight")?;
    let norm = take("model.norm.weight")?;
    let head = if cfg.tie_word_embeddings {
        embed.clone()
    } else {
        take("lm_head.weight")?
    };
    let (o, n) = head.dims2()?;
    let lm_head = pack_now(Linear::new(Some(head), None, None, (o, n)), opts)?;
    let model = Llama::new(cfg, embed, layers, norm, lm_head, dev)
        .map_err(|e| Error::model(dir, e.to_string()))?;
    let tok_path = dir.join("tokenizer.json");
    let tokenizer = Tok::from_file(&tok_path)?;
    let tc_path = dir.join("tokenizer_config.json");
    let template = if tc_path.exists() {
        ChatTemplate::from_tokenizer_config(&read_json(&tc_path)?, &tokenizer)
            .map_err(|e| Error::model(&tc_path, e.to_string()))?
    } else {
        ChatTemplate::chatml(&tokenizer)
    };
    let name = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    Ok(LoadedModel {
        architecture: arch,
        model,
        tokenizer,
        template,
        source: dir.to_path_buf(),
        name,
    })
}
