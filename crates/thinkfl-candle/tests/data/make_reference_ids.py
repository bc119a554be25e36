"""Reference token ids for SmolLM2 from an implementation independent of Hugging Face
`tokenizers`: the GGUF's vocabulary and merges read with the `gguf` package, pre-tokenized with
the `regex` module (digits one by one, then the GPT-2 pattern, as SmolLM2's tokenizer.json and
llama.cpp's `smollm` pre-tokenizer do), and byte-pair encoded by OpenAI's `tiktoken` with ranks
taken from the merge order.

    pip install gguf tiktoken regex
    python3 make_reference_ids.py PATH/SmolLM2-135M-Instruct.Q4_1.gguf > smollm2_reference_ids.json

The ids were also checked against llama.cpp's `llama-tokenize` (llama-cpp-python 0.3.36 sources,
scripts/llama-peer.sh) on the same GGUF: 11 of 11 texts equal.
"""

import json
import sys

import regex
import tiktoken
from gguf import GGUFReader

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

TEXTS = [
    "Hello world",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "line one\nline two\n\n\nindented:\n    four spaces\n\ttab\r\nwindows",
    "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
    '{"name": "search_traces", "arguments": {"parent_span_id": "a1b2c3", "timestamp": 1647705600000}}',
    "<tool_call>\n{\"name\": \"print_results\", \"arguments\": {\"root_causes\": [{\"service\": \"paymentservice\"}]}}\n</tool_call>",
    "Unicode: café, naïve, Ærøskøbing, 東京, Привет, 🚀🔥 emoji, ümlaut — dash…",
    "Numbers 1234567 and 3.14159, 1e-5, 0x1F, 2026-11-28T21:31:01Z",
    "  leading and trailing spaces   ",
    "pod checkoutservice-2 on node-6: cpu 97.5%, memory 1.2GiB, latency p99 3400ms",
    "it's they're we've I'm you'll he'd DON'T",
]


def byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def main(path):
    r = GGUFReader(path)
    tokens = [str(bytes(r.fields["tokenizer.ggml.tokens"].parts[i]), "utf-8") for i in r.fields["tokenizer.ggml.tokens"].data]
    merges = [str(bytes(r.fields["tokenizer.ggml.merges"].parts[i]), "utf-8") for i in r.fields["tokenizer.ggml.merges"].data]
    types = [int(r.fields["tokenizer.ggml.token_type"].parts[i][0]) for i in r.fields["tokenizer.ggml.token_type"].data]
    dec = byte_decoder()
    to_bytes = lambda s: bytes(dec[c] for c in s)
    specials = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty in (3, 4)}
    ranks = {bytes([b]): b for b in range(256)}
    for i, m in enumerate(merges):
        a, b = m.split(" ")
        ranks.setdefault(to_bytes(a) + to_bytes(b), 256 + i)
    id_of = {}
    for i, t in enumerate(tokens):
        if t not in specials:
            id_of.setdefault(to_bytes(t), i)
    enc = tiktoken.Encoding(name="smollm2-ref", pat_str=r"(?s).+", mergeable_ranks=ranks, special_tokens={})
    rank_to_bytes = {v: k for k, v in ranks.items()}
    special_re = regex.compile("(" + "|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")")
    out = []
    for text in TEXTS:
        ids = []
        for part in special_re.split(text):
            if part == "":
                continue
            if part in specials:
                ids.append(specials[part])
                continue
            for chunk in regex.split(r"(\p{N})", part):
                if chunk == "":
                    continue
                for piece in regex.findall(GPT2, chunk):
                    for rank in enc.encode_ordinary(piece):
                        ids.append(id_of[rank_to_bytes[rank]])
        out.append({"text": text, "ids": ids})
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
