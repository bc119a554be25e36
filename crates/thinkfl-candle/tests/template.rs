//! Chat templates: SmolLM2's own template, the ChatML tool format for templates without tools,
//! and the assistant-token mask for training.

mod common;

use std::sync::OnceLock;
use thinkfl_candle::{ChatTemplate, Tok};
use thinkfl_llm::{Message, ToolCall};

fn tok_tpl() -> &'static (Tok, ChatTemplate) {
    static T: OnceLock<(Tok, ChatTemplate)> = OnceLock::new();
    T.get_or_init(|| {
        let ct = thinkfl_candle::load::read_gguf_content(&common::smollm2_path()).unwrap();
        let tok = Tok::from_gguf(&ct).unwrap();
        let tpl = ChatTemplate::from_gguf(&ct, &tok).unwrap();
        (tok, tpl)
    })
}

#[test]
fn smollm2_template_renders_chatml_with_its_default_system() {
    let (_, tpl) = tok_tpl();
    assert!(!tpl.supports_tools);
    let s = tpl.render(&[Message::user("Hi")], &[], true).unwrap();
    assert_eq!(
        s,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn tools_go_into_the_system_message_and_results_into_user_turns() {
    let (_, tpl) = tok_tpl();
    let tools = vec![
        serde_json::json!({"type": "function", "function": {"name": "search_traces", "parameters": {"type": "object", "properties": {"parent_span_id": {"type": "string"}}}}}),
    ];
    let mut call = Message::assistant("");
    call.tool_calls.push(ToolCall {
        name: "search_traces".into(),
        arguments: serde_json::json!({"parent_span_id": "abc"}),
    });
    let msgs = vec![
        Message::system("You localize failures."),
        Message::user("Start at span abc."),
        call,
        Message::tool("search_traces", "no child spans"),
    ];
    let s = tpl.render(&msgs, &tools, true).unwrap();
    assert!(s.starts_with("<|im_start|>system\nYou localize failures.\n\n# Tools\n"));
    assert!(s.contains("<tools>\n{\"function\":{\"name\":\"search_traces\""));
    assert!(s.contains("<|im_start|>assistant\n<tool_call>\n{\"arguments\":{\"parent_span_id\":\"abc\"},\"name\":\"search_traces\"}\n</tool_call><|im_end|>"));
    assert!(
        s.contains("<|im_start|>user\n<tool_response>\nno child spans\n</tool_response><|im_end|>")
    );
    assert!(s.ends_with("<|im_start|>assistant\n"));
}

#[test]
fn mask_marks_exactly_the_assistant_tokens() {
    let (tok, tpl) = tok_tpl();
    let msgs = vec![
        Message::user("First question"),
        Message::assistant("First answer."),
        Message::user("Second question"),
        Message::assistant("Second answer, longer."),
    ];
    let (ids, mask) = tpl.render_with_mask(tok, &msgs, &[]).unwrap();
    assert_eq!(ids.len(), mask.len());
    let masked: Vec<u32> = ids
        .iter()
        .zip(&mask)
        .filter(|(_, m)| **m)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(
        tok.decode(&masked, false).unwrap(),
        "First answer.<|im_end|>Second answer, longer.<|im_end|>"
    );
    // The prompt part equals the inference prompt of the first turn.
    let first_prompt = tok
        .encode(&tpl.render(&msgs[..1], &[], true).unwrap())
        .unwrap();
    assert_eq!(&ids[..first_prompt.len()], first_prompt.as_slice());
    assert!(!mask[..first_prompt.len()].iter().any(|m| *m));
}
