"""Runtime figures on the embedded model: both backends side by side, then the transformers
backend's own (load, tokens/s, constraint set-up, adapters, memory, batching).

Usage: python benchmarks/runtime.py [--model smollm2-135m] [--dtype float32|bfloat16]
           [--repeats 3] [--sections backends,adapter-memory,transformers] [--calls 24]
Prints markdown tables; paste them into benchmarks/RESULTS.md with the command and machine.
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
import uuid

import psutil
import torch

import chorus
from chorus.agents.calling import choose_calls_batch, role_adapters
from chorus.graphs import GraphRunner, resolve_graph
from chorus.runtime import GenerationRequest, JsonSchema, load_model
from chorus.runtime.guidance import GrammarCache
from chorus.runtime.local import llguidance_tokenizer
from chorus.tools import ToolRegistry

ADAPTER_NAMES = ["planner", "caller", "summarizer", "verifier"]
SHIPPED_FOLDERS = ["planner-v1", "caller-v1", "summarizer", "verifier"]  # chorus/role_adapters
# The model measured: the one the shipped role adapters were trained on (--model).
MODEL = "smollm2-135m"
BACKENDS = ["llamacpp", "transformers"]
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
LIST_SCHEMA = {"type": "array", "maxItems": 60, "items": {
    "type": "object", "required": ["name", "n"],
    "properties": {"name": {"type": "string", "maxLength": 12}, "n": {"type": "integer"}}}}


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
            f"    load_model({MODEL!r}, dtype='{dtype}', backend='transformers',"
            " show_progress=False)\n"
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
m = load_model({MODEL!r}, dtype='{dtype}', backend='transformers', show_progress=False)
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
        model.backend.adapters.rowwise = False
        try:
            return model.generate_batch(requests)
        finally:
            model.backend.adapters.rowwise = True

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


def bench_backends(repeats: int, calls: int) -> list[tuple[str, dict]]:
    """The same figures on both backends, measured side by side (interleaved)."""
    models = {name: load_model(MODEL, backend=name, show_progress=False) for name in BACKENDS}
    rows: dict[str, dict] = {name: {} for name in BACKENDS}
    story = GenerationRequest(messages="Write a long story about a cat.", max_new_tokens=200)
    listed = GenerationRequest(messages="List many cats with numbers as JSON.",
                               output=LIST_SCHEMA, max_new_tokens=200)
    decode: dict[str, list] = {name: [] for name in BACKENDS}
    constrained: dict[str, list] = {name: [] for name in BACKENDS}
    first: dict[str, list] = {name: [] for name in BACKENDS}
    again: dict[str, list] = {name: [] for name in BACKENDS}
    run = uuid.uuid4().hex[:8]
    for model in models.values():
        model.generate("Hi", max_new_tokens=2)  # warm up
        model.generate("Hi", output=["yes", "no"])  # grammar tokenizer built
    for index in range(repeats):
        for name, model in models.items():
            [plain] = model.generate_batch([story])
            decode[name].append(plain.tokens_per_s)
            [shaped] = model.generate_batch([listed])
            constrained[name].append(shaped.tokens_per_s)
            # A system prompt never seen before (500 tokens), then the same with a new question.
            # The run's own id opens it: kept prompt states (on disk, in CHORUS_HOME) of an
            # earlier run would otherwise make the "new" prompt a known one.
            system = (f"Session {run}-{index}-{name}. "
                      + "You are a helpful assistant with tools. " * 60)
            ask = [{"role": "system", "content": system}]
            seconds, _ = timed(model.generate, ask + [{"role": "user", "content": "Hi"}],
                               max_new_tokens=1)
            first[name].append(seconds)
            seconds, _ = timed(model.generate, ask + [{"role": "user", "content": "Hello"}],
                               max_new_tokens=1)
            again[name].append(seconds)
    for name in BACKENDS:
        rows[name]["decode, tokens/s (200 tokens)"] = median(decode[name])
        rows[name]["constrained JSON, tokens/s"] = median(constrained[name])
        rows[name]["constrained / plain"] = median(constrained[name]) / median(decode[name])
        rows[name]["time to first token, new 500-token prompt, s"] = median(first[name])
        rows[name]["time to first token, same system prompt again, s"] = median(again[name])
        rows[name]["first / repeated"] = median(first[name]) / median(again[name])
    for name in BACKENDS:
        rows[name].update(_memory_with_adapters(name))
        rows[name]["chorus call, 5 tools, warm, median wall s"] = _chorus_call_wall(name, repeats)
        rows[name]["tool_use graph turn (12 * 12), s"] = _graph_turn(models[name])
    agreement = _agreement(models, calls)
    return [(name, rows[name]) for name in BACKENDS] + [("both", agreement)]


def _memory_with_adapters(backend: str) -> dict:
    code = f"""
import gc, json, psutil
from chorus.runtime import load_model
from chorus.runtime.library import SHIPPED
m = load_model({MODEL!r}, backend={backend!r}, show_progress=False)
m.generate('Hi', max_new_tokens=2); gc.collect()
before = psutil.Process().memory_info().rss
for name, folder in zip({ADAPTER_NAMES!r}, {SHIPPED_FOLDERS!r}):
    m.adapters.load(SHIPPED / folder, name=name)
    m.generate('Hi', adapter=name, max_new_tokens=2)
gc.collect()
print(json.dumps([before, psutil.Process().memory_info().rss]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    return {"RSS base alone, MiB": before / 2**20,
            "RSS base + 4 role adapters, MiB": after / 2**20,
            "with adapters / alone": after / before}


def _chorus_call_wall(backend: str, repeats: int) -> float:
    command = [os.path.join(os.path.dirname(sys.executable), "chorus"), "call", "--tools",
               os.path.join(DATA, "five_tools.json"), "Convert 250 euros to US dollars",
               "--backend", backend, "--model", MODEL]
    subprocess.run(command, capture_output=True, check=True)  # warm: caches filled once
    walls = [timed(subprocess.run, command, capture_output=True, check=True)[0]
             for _ in range(repeats)]
    return median(walls)


def _graph_turn(model) -> float:
    with tempfile.TemporaryDirectory() as store:
        runner = GraphRunner(resolve_graph("tool_use"), model, store=store)
        runner.run("What is 12 * 12?")  # warm: adapters loaded, prompts cached
        return timed(runner.run, "What is 12 * 12?")[0]


def _agreement(models: dict, limit: int) -> dict:
    """Greedy tool calls of `chorus call` (planner and caller adapters) on both backends."""
    tools = ToolRegistry.from_openai_file(os.path.join(DATA, "tools.json"))
    with open(os.path.join(DATA, "tool_calls.jsonl")) as lines:
        examples = [json.loads(line) for line in lines if line.strip()]
    step = max(1, len(examples) // limit)
    chosen = examples[::step][:limit]
    found = {name: choose_calls_batch(model, [(e["request"], tools) for e in chosen],
                                      adapters=role_adapters(model))
             for name, model in models.items()}
    same = sum(a == b for a, b in zip(*found.values(), strict=True))
    return {f"identical greedy tool calls (of {len(chosen)} requests, 36 tools)":
            f"{same}/{len(chosen)} ({same / len(chosen):.0%})"}


def main() -> None:
    global MODEL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL, help="embedded model name or path (default: "
                        "the model the shipped role adapters fit)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sections", default="backends,transformers")
    parser.add_argument("--calls", type=int, default=24,
                        help="tool-calling requests compared across backends")
    args = parser.parse_args()
    MODEL = args.model

    print(f"machine: {platform.machine()}, {psutil.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB; chorus {chorus.__version__}; "
          f"medians of {args.repeats}", flush=True)
    wanted = args.sections.split(",")
    if "backends" in wanted:
        print("\n| backend | figure | value |\n| --- | --- | --- |")
        for backend, figures in bench_backends(args.repeats, args.calls):
            for figure, value in figures.items():
                shown = f"{value:.3f}" if isinstance(value, float) else value
                print(f"| {backend} | {figure} | {shown} |", flush=True)
    if "adapter-memory" in wanted:  # the memory rows of `backends` alone
        print("\n| backend | figure | value |\n| --- | --- | --- |")
        for backend in BACKENDS:
            for figure, value in _memory_with_adapters(backend).items():
                print(f"| {backend} | {figure} | {value:.3f} |", flush=True)
    if "transformers" in wanted:
        transformers_figures(args)


def transformers_figures(args) -> None:
    print(f"\ntransformers backend, dtype {args.dtype}", flush=True)
    sections = {"loading": lambda: bench_loading(args.dtype, args.repeats),
                "memory": lambda: bench_memory(args.dtype)}
    model = load_model(MODEL, dtype=args.dtype, backend="transformers", show_progress=False)
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
