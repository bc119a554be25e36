"""The environment's observation in the model's chat template, for engines (OpenRLHF) that
concatenate raw text: the model's turn ends with its end-of-turn token (which vLLM returns among
the generated token ids but not in the text), then come the tool results and prompts as the
model's own template renders them, then the header of the next assistant turn.

Formats: `qwen2.5` (ChatML; tool results as `<tool_response>` blocks in a user turn, as
Qwen2.5's template renders `tool` messages) and `llama3.2` (header tokens; tool results as
`ipython` turns). Chosen by THINKFL_CHAT_FORMAT or from the model name."""

from __future__ import annotations

import os

FORMATS = ("qwen2.5", "llama3.2")


def resolve(fmt: str | None = None) -> str:
    """A format name from an argument, THINKFL_CHAT_FORMAT, or a model name containing it."""
    f = (fmt or os.environ.get("THINKFL_CHAT_FORMAT") or "qwen2.5").lower()
    if "llama" in f:
        return "llama3.2"
    if "qwen" in f:
        return "qwen2.5"
    raise ValueError(f"chat format {fmt!r}: one of {', '.join(FORMATS)} (or a Qwen/Llama model name)")


def _qwen(messages: list[dict]) -> str:
    out = []
    i = 0
    while i < len(messages):
        m = messages[i]
        if m["role"] == "tool":
            # Consecutive tool results share one user turn, as Qwen2.5's template writes them.
            block = []
            while i < len(messages) and messages[i]["role"] == "tool":
                block.append("<tool_response>\n" + messages[i]["content"] + "\n</tool_response>")
                i += 1
            out.append("<|im_start|>user\n" + "\n".join(block) + "<|im_end|>\n")
            continue
        out.append(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n")
        i += 1
    return "".join(out)


def _llama(messages: list[dict]) -> str:
    out = []
    for m in messages:
        role = "ipython" if m["role"] == "tool" else m["role"]
        out.append(f"<|start_header_id|>{role}<|end_header_id|>\n\n{m['content']}<|eot_id|>")
    return "".join(out)


def render_observation(messages: list[dict], fmt: str | None = None, done: bool = False) -> str:
    """The text after the model's end-of-turn token: the observation, and unless the episode is
    done, the next assistant header."""
    f = resolve(fmt)
    if f == "qwen2.5":
        text = "\n" + _qwen(messages)
        return text if done else text + "<|im_start|>assistant\n"
    text = _llama(messages)
    return text if done else text + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def render_prompt(messages: list[dict], fmt: str | None = None) -> str:
    """A whole prompt with the generation header (what `apply_chat_template` gives for the
    opening messages, minus tokenizer-specific preambles such as Llama's date line)."""
    f = resolve(fmt)
    if f == "qwen2.5":
        return _qwen(messages) + "<|im_start|>assistant\n"
    return "<|begin_of_text|>" + _llama(messages) + "<|start_header_id|>assistant<|end_header_id|>\n\n"
