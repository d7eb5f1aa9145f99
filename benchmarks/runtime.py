"""Runtime figures on the embedded model: load, tokens/s, constraint set-up, adapters, memory.

Usage: python benchmarks/runtime.py [--dtype float32|bfloat16] [--repeats 3]
Prints a markdown table; paste it into benchmarks/RESULTS.md with the command and machine.
Medians of --repeats runs; ratios compare runs made side by side in this one process.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import psutil
import torch

from chorus.runtime import JsonSchema, adapters, load_model
from chorus.runtime.guidance import GrammarCache
from chorus.runtime.local import llguidance_tokenizer
from chorus.runtime.rowwise_lora import supports_rowwise

ADAPTER_NAMES = ["planner", "caller", "summarizer", "verifier"]


def tool_union(tag: str, tools: int = 10) -> dict:
    """A caller-style schema: a union over `tools` tools, each with its own arguments."""
    branches = []
    for index in range(tools):
        branches.append({"type": "object", "required": ["name", "arguments"], "properties": {
            "name": {"const": f"{tag}_tool_{index}"},
            "arguments": {"type": "object", "required": ["query", "limit"], "properties": {
                "query": {"type": "string", "maxLength": 60},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50},
                "mode": {"enum": ["fast", "exact", f"mode_{index}"]}}}}})
    return {"anyOf": branches}


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - started, value


def median(values):
    return statistics.median(list(values))


def load_in_subprocess(home: str, dtype: str) -> list[float]:
    """Seconds for a first and a second `load_model` in one fresh process. The first also
    pays transformers' lazy imports of its model code, which any first load in a process pays."""
    code = ("import json, time; from chorus.runtime import load_model; seconds = []\n"
            "for _ in range(2):\n"
            "    t = time.perf_counter()\n"
            f"    load_model(dtype='{dtype}', show_progress=False)\n"
            "    seconds.append(time.perf_counter() - t)\n"
            "print(json.dumps(seconds))")
    env = dict(os.environ, CHORUS_HOME=home)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_loading(dtype: str, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        cold, _ = load_in_subprocess(home, dtype)
        warm = [load_in_subprocess(home, dtype) for _ in range(repeats)]
    return {"cold load: converts the GGUF, s": cold,
            "warm load, first in a new process, s": median(w[0] for w in warm),
            "warm load, again in the same process, s": median(w[1] for w in warm)}


def bench_tokens(model, repeats: int) -> dict:
    prompt = "Write the numbers from 1 to 40, separated by commas."
    schema = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 999},
              "minItems": 40, "maxItems": 40}
    model.generate(prompt, output=schema, max_new_tokens=200)  # compile + warm up
    constrained, plain = [], []
    for _ in range(repeats):  # interleaved so drift hits both alike
        c = model.generate(prompt, output=schema, max_new_tokens=200)
        p = model.generate(prompt, max_new_tokens=c.new_tokens)
        constrained.append(c.tokens_per_s)
        plain.append(p.tokens_per_s)
    return {"plain tokens/s": median(plain), "constrained tokens/s": median(constrained),
            "constrained / plain": median(constrained) / median(plain),
            "tokens per run": c.new_tokens}


def bench_constraint_setup(model, repeats: int) -> dict:
    # Fresh: nothing compiled yet.
    grammars = GrammarCache(lambda: llguidance_tokenizer(model.backend.tokenizer))
    tokenizer_setup, _ = timed(lambda: grammars.llg_tokenizer)
    new, cached = [], []
    for index in range(max(repeats, 5)):
        constraint = JsonSchema(tool_union(f"set{index}"))
        new.append(timed(grammars.matcher, constraint)[0])
        cached.append(timed(grammars.matcher, JsonSchema(tool_union(f"set{index}")))[0])
    return {"one-time llguidance tokenizer set-up, s": tokenizer_setup,
            "new 10-tool schema set-up, ms": 1000 * median(new),
            "seen schema set-up, ms": 1000 * median(cached)}


def bench_outlines_setup(model) -> dict:
    """The same 10-tool schema through outlines' own back-ends, for the choice of engine."""
    import outlines
    from outlines.backends import LLGuidanceBackend, OutlinesCoreBackend

    wrapped = outlines.from_transformers(model.adapters.module, model.backend.tokenizer)
    figures = {}
    for label, backend_class in [("outlines_core", OutlinesCoreBackend),
                                 ("outlines+llguidance", LLGuidanceBackend)]:
        backend_setup, backend = timed(backend_class, wrapped)
        schema = json.dumps(tool_union(label.replace("+", "_")))
        processor_setup, _ = timed(backend.get_json_schema_logits_processor, schema)
        figures[f"{label}: back-end set-up, s"] = backend_setup
        figures[f"{label}: new 10-tool schema, ms"] = 1000 * processor_setup
    # outlines+llguidance builds its matcher at the first token, and applies masks through
    # torch.compile, so its cost shows up in the first generation, not here.
    return figures


def bench_adapters(model, repeats: int) -> dict:
    prompt = "Name a colour."
    base = [model.generate(prompt, max_new_tokens=1).latency_s for _ in range(repeats * 3)]
    for index, name in enumerate(ADAPTER_NAMES):
        model.adapters.create(name, init="random", seed=index)
    same = [model.generate(prompt, adapter="planner", max_new_tokens=1).latency_s
            for _ in range(repeats * 3)]
    alternating = [model.generate(prompt, adapter=ADAPTER_NAMES[i % 4], max_new_tokens=1).latency_s
                   for i in range(repeats * 3)]
    # The same forward through peft's per-row path, which chorus avoids for one-adapter calls.
    inputs = model.backend.tokenizer([prompt], return_tensors="pt")
    peft_model = model.adapters.module
    peft_model.set_adapter("planner")
    with torch.inference_mode():
        active = [timed(peft_model, **inputs)[0] for _ in range(repeats * 3)]
        per_row = [timed(peft_model, **inputs, adapter_names=["planner"])[0]
                   for _ in range(repeats * 3)]
    return {"1-token call, no adapters loaded, ms": 1000 * median(base),
            "1-token call, same adapter each call, ms": 1000 * median(same),
            "1-token call, adapter changes every call, ms": 1000 * median(alternating),
            "cost of an adapter change, ms": 1000 * (median(alternating) - median(same)),
            "forward, active adapter (chorus), ms": 1000 * median(active),
            "forward, peft adapter_names=[one], ms": 1000 * median(per_row)}


def bench_memory(dtype: str) -> dict:
    code = f"""
import gc, json, psutil
from chorus.runtime import load_model
m = load_model(dtype='{dtype}', show_progress=False)
m.generate('Hi', max_new_tokens=2); gc.collect()
before = psutil.Process().memory_info().rss
for i, name in enumerate({ADAPTER_NAMES!r}):
    m.adapters.create(name, init='random', seed=i)
m.generate('Hi', adapter='planner', max_new_tokens=2); gc.collect()
after = psutil.Process().memory_info().rss
weights = sum(p.numel() * p.element_size() for p in m.adapters.module.parameters())
print(json.dumps([before, after, weights]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, _ = json.loads(out.stdout.strip().splitlines()[-1])
    return {"RSS base alone, MiB": before / 2**20, "RSS base + 4 adapters, MiB": after / 2**20,
            "ratio": after / before}


def bench_batching(model, repeats: int) -> dict:
    prompts = ["Describe the sea.", "Describe a forest.", "Describe a city.", "Describe snow."]
    requests = [dict(messages=p, adapter=a, max_new_tokens=32)
                for p, a in zip(prompts, ADAPTER_NAMES, strict=True)]

    def aggregate(run) -> float:
        seconds, results = timed(run)
        return sum(r.new_tokens for r in results) / seconds

    def with_peft_rows():  # the same batch through peft's adapter_names= path
        adapters.supports_rowwise = lambda *_: False
        try:
            return model.generate_batch(requests)
        finally:
            adapters.supports_rowwise = supports_rowwise

    model.generate_batch(requests)  # warm up
    batched, peft_rows, sequential = [], [], []
    for _ in range(repeats):  # interleaved, so drift hits all three alike
        batched.append(aggregate(lambda: model.generate_batch(requests)))
        peft_rows.append(aggregate(with_peft_rows))
        sequential.append(aggregate(lambda: [model.generate_batch([r])[0] for r in requests]))
    return {"4 adapters batched (chorus rowwise LoRA), aggregate tokens/s": median(batched),
            "4 adapters batched (peft adapter_names), aggregate tokens/s": median(peft_rows),
            "4 adapters one by one, aggregate tokens/s": median(sequential),
            "batched / one by one": median(batched) / median(sequential),
            "batched (peft path) / one by one": median(peft_rows) / median(sequential)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {psutil.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB; dtype {args.dtype}; "
          f"medians of {args.repeats}", flush=True)
    sections = {"loading": lambda: bench_loading(args.dtype, args.repeats),
                "memory": lambda: bench_memory(args.dtype)}
    model = load_model(dtype=args.dtype, show_progress=False)
    sections.update({
        "tokens/s": lambda: bench_tokens(model, args.repeats),
        "constraint set-up": lambda: bench_constraint_setup(model, args.repeats),
        "outlines back-ends (comparison)": lambda: bench_outlines_setup(model),
        "adapter selection": lambda: bench_adapters(model, args.repeats),
        "batching": lambda: bench_batching(model, args.repeats),
    })
    print("\n| section | figure | value |\n| --- | --- | --- |")
    for section, run in sections.items():
        gc.collect()
        for figure, value in run().items():
            shown = f"{value:.3f}" if isinstance(value, float) else value
            print(f"| {section} | {figure} | {shown} |", flush=True)


if __name__ == "__main__":
    main()
