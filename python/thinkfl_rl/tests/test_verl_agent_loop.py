"""verl's real `ToolAgentLoop` (0.9.1) running our `ThinkflToolAgentLoop` end to end: verl's own
tool loading from `verl_tools.yaml`, hydra instantiation from `verl_agent_loop.yaml`, its hermes
parser and token bookkeeping, with a scripted policy in place of the vLLM server and the real
`thinkfl serve env`. Checks the two overrides: the rollout ends on the final `print_results` (or at
`d_max`), not one generation later, and `reward_score` is the grader's, equal to `thinkfl grade` on
the same replies.

Needs what verl's agent loop imports (torch, ray, hydra, tensordict, transformers < 5.11), so the
CI's venv skips it. Run it alone in a venv of `verl_loop_requirements.txt` (the versions it passed
with), e.g.

    THINKFL_RL_ENGINES=~/.cache/thinkfl/peers/rl-python-<key>/engines \\
      PYTHONPATH=$THINKFL_RL_ENGINES/verl python -m pytest python/thinkfl_rl/tests/test_verl_agent_loop.py

The tokenizer: THINKFL_HF_TOKENIZER (a Hugging Face tokenizer directory), else SmolLM2-135M's from
its GGUF (`thinkfl model path`), rendered with a small ChatML template that shows tool calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

for _m in ("torch", "ray", "hydra", "tensordict", "transformers"):
    pytest.importorskip(_m, reason="verl's agent loop needs it (not in the CI venv)")

if "verl.utils.ray_utils" in sys.modules and not hasattr(sys.modules["verl.utils.ray_utils"], "auto_await"):
    pytest.skip("the contract tests stood in for verl's ray_utils: run this file alone", allow_module_level=True)

from thinkfl_rl.tests import harness  # noqa: E402

# ChatML with tools, as Qwen2.5-style models render them (tool calls as <tool_call>{json}</tool_call>,
# tool results as <tool_response>); written here, so no model's template has to be downloaded.
CHATML_TOOLS = (
    "{%- for m in messages %}"
    "{%- if m.role == 'system' %}<|im_start|>system\n{{ m.content }}"
    "{%- if tools %}\n\n# Tools\n<tools>{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n</tools>{% endif %}"
    "<|im_end|>\n"
    "{%- elif m.role == 'assistant' %}<|im_start|>assistant\n{{ m.content }}"
    "{%- for c in m.tool_calls or [] %}<tool_call>\n{{ c.function | tojson }}\n</tool_call>{% endfor %}"
    "<|im_end|>\n"
    "{%- elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    path = os.environ.get("THINKFL_HF_TOKENIZER")
    if path:
        tok = AutoTokenizer.from_pretrained(path)
    else:
        gguf = Path(harness.run_cli("model", "path", "smollm2-135m").strip())
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.chat_template = CHATML_TOOLS
    return tok


class ScriptedServer:
    """verl's LLM server client in shape: `generate` answers the scripted replies in order, as token
    ids ending with the end-of-turn token, then plain text (no call) if asked again."""

    def __init__(self, tokenizer, texts):
        self.tok = tokenizer
        self.texts = list(texts)
        self.calls = 0

    async def generate(self, request_id, prompt_ids, sampling_params, **kw):
        from verl.workers.rollout.replica import TokenOutput

        text = self.texts[self.calls] if self.calls < len(self.texts) else "I have nothing more to add."
        self.calls += 1
        ids = self.tok.encode(text, add_special_tokens=False) + [self.tok.convert_tokens_to_ids("<|im_end|>")]
        return TokenOutput(token_ids=ids, stop_reason="completed")


def agent_loop(tokenizer, server):
    import hydra
    import yaml
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap
    from verl.tools.tool_registry import load_all_tools
    from verl.utils.dataset.rl_dataset import RLHFDataset

    tools = load_all_tools(tool_config_path=str(harness.PKG / "verl_tools.yaml"), function_tool_path=None)
    [entry] = yaml.safe_load((harness.PKG / "verl_agent_loop.yaml").read_text())
    assert entry["name"] == "thinkfl_agent"
    config = OmegaConf.create(
        {
            "actor_rollout_ref": {
                "rollout": {
                    "multi_turn": {
                        "max_user_turns": 32,
                        "max_assistant_turns": 32,
                        "max_parallel_calls": 1,
                        "max_tool_response_length": 1_000_000,
                        "tool_response_truncate_side": "middle",
                        "format": "hermes",
                    },
                    "prompt_length": 16384,
                    "response_length": 1_000_000,
                    "full_determinism": False,
                }
            },
            "data": {},
        }
    )
    return hydra.utils.instantiate(
        config={"_target_": entry["_target_"]},
        trainer_config=DictConfigWrap(config=config),
        server_manager=server,
        tokenizer=tokenizer,
        processor=None,
        dataset_cls=RLHFDataset,
        data_config=DictConfigWrap(config.data),
        tools=ToolListWrap(tools),
    )


def rollout(tokenizer, row, texts):
    from thinkfl_rl.verl_agent import ThinkflToolAgentLoop

    server = ScriptedServer(tokenizer, texts)
    extra = row["extra_info"]

    async def go():
        # As verl does: the loop is built inside the running event loop (it keeps that loop).
        loop = agent_loop(tokenizer, server)
        assert isinstance(loop, ThinkflToolAgentLoop)
        return await loop.run(
            {"temperature": 1.0},
            raw_prompt=list(row["prompt"]),
            tools_kwargs=extra["tools_kwargs"],
            extra_info=extra,
            agent_name=row["agent_name"],
        )

    out = asyncio.run(go())
    return out, server.calls


def test_verl_tool_agent_loop_ends_on_print_results_with_the_graders_reward(data, export, env_url, monkeypatch, tokenizer, tmp_path):
    import pyarrow.parquet as pq

    monkeypatch.setenv("THINKFL_REWARD", "3")
    table = pq.read_table(export / "verl" / "train.parquet").to_pylist()
    assert table
    got, replays = [], []
    for row in table:
        label = json.loads(row["reward_model"]["ground_truth"])
        texts = list(harness.expert_texts(data, label["case"]))
        out, calls = rollout(tokenizer, row, texts)
        # Without the override verl would generate once more after the final print_results.
        assert calls == len(texts), "the rollout ends on the final print_results"
        assert out.reward_score is not None
        assert set(out.extra_fields["thinkfl_factors"]) >= {"recall", "format"}
        assert sum(out.response_mask) > 0 and len(out.response_mask) == len(out.response_ids)
        got.append(out.reward_score)
        replays.append({**label, "texts": texts})
        # The model stops calling tools after one call: verl ends the rollout, the episode is
        # graded as it stands.
        out, calls = rollout(tokenizer, row, texts[:1])
        assert calls == 2
        got.append(out.reward_score)
        replays.append({**label, "texts": texts[:1]})
    assert got == harness.reference_reward(data, tmp_path, replays, "3")


def test_verl_tool_agent_loop_d_max_and_malformed(data, export, env_url, monkeypatch, tokenizer, tmp_path):
    import pyarrow.parquet as pq

    monkeypatch.setenv("THINKFL_REWARD", "3")
    row = pq.read_table(export / "verl" / "train.parquet").to_pylist()[0]
    label = json.loads(row["reward_model"]["ground_truth"])
    ts = harness.expert_texts(data, label["case"])[0]
    same = ts  # the expert's first call, repeated: the episode is cut at d_max (10) + the forced final
    out, calls = rollout(tokenizer, row, [same] * 30)
    assert calls < 30, "the rollout ends when the server says done"
    ref = harness.reference_reward(data, tmp_path, [{**label, "texts": [same] * calls}], "3")
    assert out.reward_score == ref[0]
    # A truncated call is no call to verl's hermes parser: the rollout ends with no episode, and
    # the reward is left to the compute_score fallback.
    out, calls = rollout(tokenizer, row, ['<tool_call>{"name": "search_traces", "arguments": {"parent'])
    assert calls == 1 and out.reward_score is None
