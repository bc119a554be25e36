"""Contract tests of the shims: a scripted policy (the expert's replies, with malformed ones mixed
in) drives full episodes through each engine's own code where it loads without a GPU and the real
`thinkfl serve env`; the reward the engine sees equals `thinkfl grade` (the in-process actor and
grader) on the same replies; `done` comes on the final `print_results`; malformed text gets an
error observation, never a crash."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import types

import numpy as np
import pytest

from thinkfl_rl import ENGINES
from thinkfl_rl.client import EnvClient, EnvError
from thinkfl_rl.templates import render_prompt
from thinkfl_rl.tests import harness

MALFORMED = '<tool_call>{"name": "search_traces", "arguments": {"parent_span_id": '


def rows(export, engine="openrlhf"):
    path = export / engine / "train.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- fakes of what OpenRLHF hands the executor: a tokenizer, sampling params, a vLLM engine ---


class Tokenizer:
    """Bytes as tokens: enough for the executor's bookkeeping, and decodable exactly."""

    def __call__(self, text, add_special_tokens=False, return_tensors=None):
        return {"input_ids": np.array([list(text.encode())])}

    def decode(self, ids, skip_special_tokens=False):
        return bytes(ids).decode(errors="replace")


class Params:
    def __init__(self):
        self.max_tokens = 1024
        self.logprobs = None


class Engine:
    """A scripted policy in vLLM's shape: replies in order, each ending its turn with EOS."""

    def __init__(self, texts):
        self.texts = list(texts)
        self.calls = 0
        self.prompts = []

    async def generate(self, prompt_ids, params, multi_modal_data=None):
        self.prompts.append(bytes(prompt_ids).decode(errors="replace"))
        text = self.texts[min(self.calls, len(self.texts) - 1)]
        self.calls += 1
        out = types.SimpleNamespace(token_ids=list(text.encode()), text=text, finish_reason="stop", logprobs=None)
        return types.SimpleNamespace(outputs=[out])


def load_agent_module():
    """As OpenRLHF's `_load_agent_executor` does: the file by path, `AgentExecutor` checked."""
    agent = harness.load_openrlhf()
    m = harness.load_file("agent_module", harness.PKG / "openrlhf_agent.py")
    assert issubclass(m.AgentExecutor, agent.AgentExecutorBase)
    assert issubclass(m.AgentExecutor, agent.MultiTurnAgentExecutor)
    return m


@pytest.mark.parametrize("reward", ["1", "3", "mrr"])
def test_openrlhf_multi_turn_reward_equals_thinkfl_grade(reward, data, export, env_url, monkeypatch, tmp_path):
    monkeypatch.setenv("THINKFL_REWARD", reward)
    monkeypatch.setenv("THINKFL_CHAT_FORMAT", "qwen2.5")
    mod = load_agent_module()
    got, replays = [], []
    for row in rows(export):
        label = json.loads(row["label"])
        # A malformed reply first, then the expert's: the episode must go on and count it.
        texts = [MALFORMED, *harness.expert_texts(data, label["case"])]
        engine = Engine(texts)
        out = asyncio.run(
            mod.AgentExecutor().execute(render_prompt(row["prompt"]), row["label"], Params(), 1 << 20, Tokenizer(), engine)
        )
        assert engine.calls == len(texts), "done on the final print_results, not before nor after"
        obs = engine.prompts[1]
        assert "<|im_start|>user\n<tool_response>\nError" in obs, obs[-400:]
        assert obs.endswith("<|im_start|>assistant\n")
        assert len(out["action_ranges"]) == len(texts)
        got.append(out["reward"])
        replays.append({"dataset": "sim-s3", "case": label["case"], "query_span": label["query_span"], "texts": texts})
    assert got, "the export has questions"
    assert got == harness.reference_reward(data, tmp_path, replays, reward)


def test_openrlhf_llama_template_and_endless_garbage(data, export, env_url, monkeypatch, tmp_path):
    monkeypatch.setenv("THINKFL_CHAT_FORMAT", "llama3.2")
    monkeypatch.setenv("THINKFL_REWARD", "3")
    mod = load_agent_module()
    row = rows(export)[0]
    label = json.loads(row["label"])
    engine = Engine(["I think it is the database.", "}}{{<tool_call>", "\x00\xff" * 50])
    out = asyncio.run(
        mod.AgentExecutor().execute(render_prompt(row["prompt"], "llama3.2"), row["label"], Params(), 1 << 20, Tokenizer(), engine)
    )
    # d_max (10) rounds of garbage, then the forced final review: one more reply ends it.
    assert engine.calls == 11
    assert "<|start_header_id|>" in engine.prompts[1] and engine.prompts[1].endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    texts = [engine.texts[min(i, 2)] for i in range(engine.calls)]
    ref = harness.reference_reward(
        data, tmp_path, [{"case": label["case"], "query_span": label["query_span"], "texts": texts}], "3"
    )
    assert out["reward"] == ref[0]


def test_openrlhf_single_turn_remote_reward(data, export, server, tmp_path):
    agent = harness.load_openrlhf()
    row = rows(export)[0]
    label = json.loads(row["label"])
    answer = harness.expert_texts(data, label["case"])[-1]
    prompt = render_prompt(row["prompt"])
    ex = agent.SingleTurnAgentExecutor(remote_rm_url=server.url + "/get_reward")
    out = asyncio.run(ex.execute(prompt, row["label"], Params(), 1 << 20, Tokenizer(), Engine([answer])))
    assert out["reward"] is not None, "the remote reward was fetched"
    # One reply with the final answer: MRR and stage 3 depend on the answer and the path only.
    direct = EnvClient(url=server.url).get_reward([prompt + answer], [prompt], [row["label"]], reward="mrr")
    ref = harness.reference_reward(
        data, tmp_path, [{"case": label["case"], "query_span": label["query_span"], "texts": [answer]}], "mrr"
    )
    assert direct["rewards"][0] == ref[0]
    ref3 = harness.reference_reward(
        data, tmp_path, [{"case": label["case"], "query_span": label["query_span"], "texts": [answer]}], "3"
    )
    assert out["reward"] == [ref3[0]]


def test_trl_environment(data, export, env_url, monkeypatch, tmp_path):
    monkeypatch.setenv("THINKFL_REWARD", "3")
    from thinkfl_rl.trl_env import ThinkflEnv

    env = ThinkflEnv()
    # What GRPOTrainer does with an environment: public functions of the class are the tools.
    members = [n for n, _ in inspect.getmembers(type(env), predicate=inspect.isfunction)]
    assert "reset" in members and "get_reward" in members
    tools = [n for n in members if n not in ("reset", "get_reward") and not n.startswith("_")]
    assert sorted(tools) == sorted(t["function"]["name"] for t in EnvClient().tools())
    for name in tools:
        fn = getattr(type(env), name)
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        doc = inspect.getdoc(fn)
        assert doc and "Args:" in doc, name
        for p in params:
            assert p in fn.__annotations__, f"{name}({p}) has no type"
            assert re.search(rf"^\s*{p}:", doc, re.M), f"{name}: {p} is not documented"
    got, replays = [], []
    for row in rows(export, "trl"):
        env = ThinkflEnv()
        assert env.reset(**row) is None
        texts = list(harness.expert_texts(data, row["case"]))
        for t in texts:
            name, args = harness.parse_call(t)
            obs = getattr(env, name)(**args)
            assert isinstance(obs, str) and obs
        got.append(env.get_reward())
        replays.append({"case": row["case"], "query_span": row["query_span"], "texts": texts})
    assert got == harness.reference_reward(data, tmp_path, replays, "3")


def test_verl_tool_episode_and_unfinished_rollout(data, export, env_url, monkeypatch, tmp_path):
    import pyarrow.parquet as pq

    monkeypatch.setenv("THINKFL_REWARD", "3")
    harness.load_verl()
    from verl.tools.base_tool import BaseTool
    from verl.tools.schemas import OpenAIFunctionToolSchema

    from thinkfl_rl.verl_tool import ThinkflTool, episode_state, finish_episode

    schemas = EnvClient().tools()
    yaml_names = re.findall(r"^\s+name: (\w+)$", (harness.PKG / "verl_tools.yaml").read_text(), re.M)
    assert sorted(yaml_names) == sorted(s["function"]["name"] for s in schemas)
    tools = {s["function"]["name"]: ThinkflTool({}, OpenAIFunctionToolSchema(**s)) for s in schemas}
    assert all(isinstance(t, BaseTool) for t in tools.values())
    table = pq.read_table(export / "verl" / "train.parquet").to_pylist()
    assert table and all(r["agent_name"] == "thinkfl_agent" for r in table)

    async def rollout(row, texts):
        # What verl's ToolAgentLoop._call_tool does per call: create, execute, release.
        agent_data = types.SimpleNamespace(tools_kwargs=row["extra_info"]["tools_kwargs"], extra_fields={})
        for t in texts:
            name, args = harness.parse_call(t)
            tool = tools[name]
            iid, _ = await tool.create(create_kwargs=row["extra_info"]["tools_kwargs"][name]["create_kwargs"])
            resp, _, metrics = await tool.execute(iid, args, agent_data=agent_data)
            await tool.release(iid)
            assert resp.text
            assert metrics["valid"]
        return agent_data

    got, replays = [], []
    for row in table:
        label = json.loads(row["reward_model"]["ground_truth"])
        texts = list(harness.expert_texts(data, label["case"]))
        agent_data = asyncio.run(rollout(row, texts))
        assert episode_state(agent_data)["done"], "done on the final print_results"
        got.append(asyncio.run(finish_episode(agent_data)))
        replays.append({**label, "texts": texts})
        # A rollout the model stops early (no more calls) is graded as it stands.
        short = texts[:1]
        agent_data = asyncio.run(rollout(row, short))
        assert not episode_state(agent_data)["done"]
        got.append(asyncio.run(finish_episode(agent_data)))
        replays.append({**label, "texts": short})
    assert got == harness.reference_reward(data, tmp_path, replays, "3")


def test_verl_compute_score_fallback(data, export, env_url, tmp_path):
    from thinkfl_rl.verl_reward import compute_score

    row = rows(export)[0]
    label = json.loads(row["label"])
    answer = harness.expert_texts(data, label["case"])[-1]
    s = compute_score("thinkfl", answer, row["label"])
    ref = harness.reference_reward(data, tmp_path, [{**label, "texts": [answer]}], "3")
    assert s["score"] == ref[0]
    assert set(s) >= {"score", "recall", "format"}


def test_bad_labels_and_expired_episodes_are_clear_errors(env_url):
    c = EnvClient()
    with pytest.raises(EnvError) as e:
        c.create({"dataset": "sim-s3", "case": 999})
    assert e.value.status == 422 and "case" in e.value.message
    with pytest.raises(EnvError) as e:
        c.step("ep-123456789", "x")
    assert e.value.status == 404


def test_pins_match_what_was_unpacked():
    d = harness.engines_dir()
    for name, version in ENGINES.items():
        assert list(d.glob(f"{name}/{name}-{version}.dist-info")), f"{name} {version} not unpacked in {d}"
