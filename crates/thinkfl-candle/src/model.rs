//! [`CandleChatModel`]: a local model behind the [`ChatModel`] trait.

use crate::error::Result;
use crate::generate::{Engine, EngineConfig, Generation};
use crate::load::{LoadOptions, LoadedModel, load};
use crate::template::ChatTemplate;
use std::path::Path;
use thinkfl_llm::{ChatModel, ChatRequest, ChatResponse};

/// A local candle model: tokenizer, chat template and generation engine.
///
/// Loading needs a model file, so this example is compiled but not run: `path` is a GGUF file or
/// a Hugging Face directory (`thinkfl model fetch` puts the default one in the cache).
///
/// ```no_run
/// use std::path::Path;
/// use thinkfl_candle::CandleChatModel;
/// use thinkfl_core::Message;
/// use thinkfl_llm::{ChatModel, ChatRequest, SamplingParams};
///
/// let model = CandleChatModel::load(Path::new("SmolLM2-135M-Instruct.Q4_1.gguf"))?;
/// let request = ChatRequest {
///     messages: vec![
///         Message::system("You localize faults in microservice systems."),
///         Message::user("Which service answers GetCart?"),
///     ],
///     tools: vec![],
///     params: SamplingParams::greedy(64),
/// };
/// let response = model.chat(&request)?;
/// println!("{} ({} prompt tokens)", response.text, response.prompt_tokens);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct CandleChatModel {
    name: String,
    /// The generation engine (model, tokenizer, prefix cache).
    pub engine: Engine,
    /// The chat template that renders requests into prompts.
    pub template: ChatTemplate,
}

impl CandleChatModel {
    /// A chat model over a loaded model, its engine built with `config`; named by
    /// [`LoadedModel::name`].
    pub fn from_loaded(loaded: LoadedModel, config: EngineConfig) -> Result<Self> {
        let LoadedModel {
            model,
            tokenizer,
            template,
            name,
            ..
        } = loaded;
        Ok(CandleChatModel {
            name,
            engine: Engine::new(model, tokenizer, config)?,
            template,
        })
    }

    /// Load a GGUF file or Hugging Face directory for inference.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_loaded(
            load(path, &LoadOptions::inference())?,
            EngineConfig::default(),
        )
    }

    /// Renames the model (in reports and [`ChatModel::name`]).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Prompt token ids of a request (the rendered template, ending with the assistant header).
    pub fn prompt_ids(&self, request: &ChatRequest) -> Result<Vec<u32>> {
        let text = self
            .template
            .render(&request.messages, &request.tools, true)?;
        self.engine.tokenizer.encode(&text)
    }

    fn respond(prompt_len: usize, g: Generation) -> ChatResponse {
        ChatResponse {
            text: g.text,
            tool_calls: Vec::new(),
            stop: g.stop,
            prompt_tokens: prompt_len,
            cached_prompt_tokens: g.reused_tokens,
            completion_tokens: g.ids.len(),
            logprobs: Some(g.logprobs),
            token_ids: Some(g.ids),
        }
    }
}

impl ChatModel for CandleChatModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(&self, request: &ChatRequest) -> thinkfl_llm::Result<ChatResponse> {
        let mut out = self.chat_batch(std::slice::from_ref(request))?;
        Ok(out.pop().expect("one response per request"))
    }

    fn chat_batch(&self, requests: &[ChatRequest]) -> thinkfl_llm::Result<Vec<ChatResponse>> {
        let prompts = requests
            .iter()
            .map(|r| self.prompt_ids(r))
            .collect::<Result<Vec<_>>>()?;
        let ctx = self.engine.model.config.max_position_embeddings;
        if let Some(p) = prompts.iter().find(|p| p.len() >= ctx) {
            return Err(thinkfl_llm::Error::ContextOverflow {
                prompt: p.len(),
                context: ctx,
            });
        }
        let params: Vec<_> = requests.iter().map(|r| r.params.clone()).collect();
        let gens = self.engine.generate(&prompts, &params)?;
        Ok(prompts
            .iter()
            .zip(gens)
            .map(|(p, g)| Self::respond(p.len(), g))
            .collect())
    }
}
