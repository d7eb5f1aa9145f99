"""Role adapters: accuracy on unseen tools, memory, adapter switch, batched agents, training.

Usage: python -u benchmarks/adapters.py [--limit N] [--sections accuracy,roles,memory,switch,
                                          parallel,training,steps]
Needs the shipped adapters (chorus/role_adapters, `make adapters`) and the one-adapter
baseline (benchmarks/adapters/generalist). Data: data/roles (its eval split holds tools no
adapter saw in training). Results: printed as markdown and written to
benchmarks/adapters_results.json.

Accuracy is end to end, as in the tool_use graph's first steps: the planner decides, and the
caller writes the calls after reading the planner's thought. (a) is the plain base model
with constrained decoding, (b) one adapter trained on all roles for both agents, (c) the
planner and caller role adapters. Each is also run caller-only (no planner), as
`chorus call` does. Per-role scores use the stored prompts with the gold trajectory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path

import psutil
import torch

import chorus
from chorus.agents import get_role
from chorus.agents.calling import choose_calls_batch
from chorus.agents.scoring import same_calls, same_names
from chorus.runtime import GenerationRequest
from chorus.runtime.library import SHIPPED
from chorus.runtime.manifest import read_manifest
from chorus.tools import ToolRegistry
from chorus.training.evaluation import evaluate_role, read_episodes, read_tools, spread
from chorus.training.trainer import completion_loss

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "roles"
GENERALIST = ROOT / "benchmarks" / "adapters" / "generalist"
ROLES = ("planner", "caller", "summarizer", "verifier")
RESULTS = Path(__file__).with_name("adapters_results.json")


def load() -> chorus.Model:
    model = chorus.load_model(dtype="float32", backend="transformers", show_progress=False)
    for role in ROLES:
        model.adapters.load(SHIPPED / role, name=role)
    model.adapters.load(GENERALIST, name="generalist")
    return model


def team_calls(model: chorus.Model, episodes: list[dict], tools: dict, *, planner: str | None,
               caller: str | None, gated: bool = True) -> list[list[dict]]:
    """The calls `chorus call` makes for each episode (planned: the tool_use graph's first
    steps); a failed constrained output counts as no call."""
    requests = [(e["task"], ToolRegistry([tools[name] for name in e["tools"]]))
                for e in episodes]
    found = choose_calls_batch(model, requests, strategy="planned" if gated else "direct",
                               adapters={"planner": planner, "caller": caller})
    return [calls or [] for calls in found]


def accuracy(model: chorus.Model, limit: int | None) -> list[dict]:
    episodes = read_episodes(DATA)
    calling = spread([e for e in episodes if e["calls"]], limit)
    silent = [e for e in episodes if not e["calls"]]
    tools = read_tools(DATA)
    setups = [("(a) base model, constrained", None, None, False),
              ("(a) base model, constrained", None, None, True),
              ("(b) one adapter for all roles", "generalist", "generalist", True),
              ("(c) planner + caller role adapters", "planner", "caller", True)]
    rows = []
    for label, planner, caller, gated in setups:
        started = time.perf_counter()
        predicted = team_calls(model, calling, tools, planner=planner, caller=caller,
                               gated=gated)
        seconds = time.perf_counter() - started
        pipeline = "planner -> caller" if gated else "caller (may answer [])"
        row = {"setup": label, "pipeline": pipeline,
               "requests": len(calling), "seconds": round(seconds, 1)}
        for kind in ("single", "double", None):
            pairs = [(p, e) for p, e in zip(predicted, calling, strict=True)
                     if kind is None or e["kind"] == kind]
            key = kind or "all"
            row[f"{key}_names"] = _share(same_names(p, e["calls"]) for p, e in pairs)
            row[f"{key}_arguments"] = _share(same_calls(p, e["calls"]) for p, e in pairs)
            row[f"{key}_n"] = len(pairs)
        if gated:  # requests that need no tool: right when the planner makes no call
            quiet = team_calls(model, silent, tools, planner=planner, caller=caller)
            row["no_call_right"] = _share(not calls for calls in quiet)
            row["no_call_n"] = len(silent)
        rows.append(row)
        print(f"  {label}, {row['pipeline']}: names {row['all_names']:.1%}, arguments "
              f"{row['all_arguments']:.1%} ({seconds:.0f} s)", flush=True)
    return rows


def _share(values) -> float:
    values = list(values)
    return sum(map(float, values)) / len(values) if values else float("nan")


def role_scores(model: chorus.Model, limit: int | None) -> list[dict]:
    rows = []
    for role in ROLES:
        for label, adapter in (("base", None), ("generalist", "generalist"), (role, role)):
            scores = evaluate_role(model, role, DATA, adapter=adapter, limit=limit)
            rows.append({"role": role, "adapter": label, **scores})
            print(f"  {role} / {label}: {scores}", flush=True)
    return rows


def memory() -> dict:
    process = psutil.Process()
    before = process.memory_info().rss
    model = chorus.load_model(dtype="float32", backend="transformers", show_progress=False)
    model.generate("Hi", max_new_tokens=1)  # weights are mapped lazily: touch them all
    with_base = process.memory_info().rss
    for role in ROLES:
        model.adapters.load(SHIPPED / role, name=role)
        model.generate("Hi", adapter=role, max_new_tokens=1)
    with_adapters = process.memory_info().rss
    base_bytes = sum(p.numel() * p.element_size()
                     for name, p in model.adapters.module.named_parameters() if "lora_" not in name)
    adapter_bytes = sum(info.size_bytes for info in model.adapters.list())
    one_copy = with_base - before
    return {"base_rss_mb": one_copy / 2**20,
            "four_adapters_rss_mb": (with_adapters - with_base) / 2**20,
            "base_plus_four_adapters_mb": (with_adapters - before) / 2**20,
            "four_copies_mb": 4 * one_copy / 2**20,
            "base_parameter_mb": base_bytes / 2**20,
            "four_adapter_parameter_mb": adapter_bytes / 2**20}


def switch_latency(model: chorus.Model, repeats: int = 15) -> dict:
    """One-token generations, each on the same adapter as the last or on another one."""
    def once(adapter: str) -> float:
        started = time.perf_counter()
        model.generate("Hi", adapter=adapter, max_new_tokens=1)
        return time.perf_counter() - started

    once("planner")
    same = [once("planner") for _ in range(repeats)]
    cycle = ["caller", "summarizer", "verifier", "planner"]
    changed = [once(cycle[i % 4]) for i in range(repeats)]
    registry = model.adapters
    activations = []
    for index in range(repeats * 4):
        started = time.perf_counter()
        with registry.applied([cycle[index % 4]]):
            pass
        activations.append(time.perf_counter() - started)
    return {"same_adapter_ms": 1000 * statistics.median(same),
            "changed_adapter_ms": 1000 * statistics.median(changed),
            "activation_only_ms": 1000 * statistics.median(activations)}


def parallel(model: chorus.Model, rounds: int = 3, tokens: int = 48) -> dict:
    """Four agents (one per role adapter) calling the model at the same moment, from four
    threads as parallel graph branches do: coalesced into one batch vs one by one."""
    prompts = ["Describe a calm lake.", "List three uses of a brick.",
               "Explain what a verifier does.", "Write a short note to a friend."]

    def requests():
        return [GenerationRequest(messages=[{"role": "user", "content": prompt}],
                                  adapter=role, max_new_tokens=tokens)
                for prompt, role in zip(prompts, ROLES, strict=True)]

    def threaded() -> tuple[float, int]:
        results = [None] * 4
        barrier = threading.Barrier(4)

        def work(index, request):
            barrier.wait()
            results[index] = model.complete(request)

        threads = [threading.Thread(target=work, args=item) for item in enumerate(requests())]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started, sum(r.new_tokens for r in results)

    def sequential() -> tuple[float, int]:
        started = time.perf_counter()
        results = [model.backend.generate_batch([request])[0] for request in requests()]
        return time.perf_counter() - started, sum(r.new_tokens for r in results)

    batched_rates, alone_rates = [], []
    batches_before = model.coalescer.batches
    for _ in range(rounds):
        seconds, count = threaded()
        batched_rates.append(count / seconds)
        seconds, count = sequential()
        alone_rates.append(count / seconds)
    return {"batched_tokens_per_s": statistics.median(batched_rates),
            "sequential_tokens_per_s": statistics.median(alone_rates),
            "ratio": statistics.median(batched_rates) / statistics.median(alone_rates),
            "batches_per_round": (model.coalescer.batches - batches_before) / rounds}


def step_time(repeats: int = 3) -> dict:
    """One LoRA training step (batch 4 of 256 random tokens, 48 of them the completion),
    with the full logits or only the completion's, in fp32 or under bf16 autocast."""
    model = chorus.load_model(dtype="float32", backend="transformers", show_progress=False)
    model.adapters.create("probe", seed=0)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 40000, (4, 256), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
             "spans": torch.tensor([(208, 256)] * 4)}
    timings = {}
    with model.adapters.trainable("probe") as (module, parameters):
        optimizer = torch.optim.AdamW(parameters, lr=1e-4)
        for label, precision, full in (("fp32, full logits", "float32", True),
                                       ("fp32, completion logits", "float32", False),
                                       ("bf16, full logits", "bfloat16", True),
                                       ("bf16, completion logits", "bfloat16", False)):
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                if full:
                    with torch.autocast("cpu", dtype=torch.bfloat16,
                                        enabled=precision == "bfloat16"):
                        loss = module(input_ids=ids, labels=ids).loss
                else:
                    loss = completion_loss(module, batch, precision)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                seconds.append(time.perf_counter() - started)
            timings[label] = statistics.median(seconds)
            print(f"  step, {label}: {timings[label]:.2f} s", flush=True)
    return timings


def training() -> list[dict]:
    rows = []
    for path in [SHIPPED / "backbone", *(SHIPPED / r for r in ROLES), GENERALIST]:
        manifest = read_manifest(path)
        if manifest is None or manifest.training is None:
            continue
        record = manifest.training
        rows.append({"adapter": manifest.name, "roles": record.roles, "steps": record.steps,
                     "from": Path(record.from_adapter).name if record.from_adapter else None,
                     "seconds": record.seconds, "seconds_per_step": record.seconds / record.steps,
                     "final_loss": record.final_loss, "command": manifest.command})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None,
                        help="requests per accuracy run / examples per role (default: all)")
    parser.add_argument("--sections",
                        default="accuracy,roles,memory,switch,parallel,training,steps")
    args = parser.parse_args()
    torch.manual_seed(0)
    sections = args.sections.split(",")
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["machine"] = {"cpu": platform.processor() or platform.machine(),
                          "cores": os.cpu_count(), "torch": torch.__version__,
                          "threads": torch.get_num_threads()}
    if "memory" in sections:  # first: before anything else is loaded in this process
        results["memory"] = memory()
        print("memory", results["memory"], flush=True)
    model = load() if set(sections) - {"memory", "training", "steps"} else None
    if "accuracy" in sections:
        results["accuracy"] = accuracy(model, args.limit)
    if "roles" in sections:
        results["roles"] = role_scores(model, args.limit)
    if "switch" in sections:
        results["switch"] = switch_latency(model)
        print("switch", results["switch"], flush=True)
    if "parallel" in sections:
        results["parallel"] = parallel(model)
        print("parallel", results["parallel"], flush=True)
    if "training" in sections:
        results["training"] = training()
    if "steps" in sections:
        results["steps"] = step_time()
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print_markdown(results)


def print_markdown(results: dict) -> None:
    if "accuracy" in results:
        print("\n| setup | pipeline | all: names / arguments | one call | two calls | "
              "no call: right | seconds |\n| --- | --- | --- | --- | --- | --- | --- |")
        for row in results["accuracy"]:
            quiet = f"{row['no_call_right']:.1%}" if "no_call_right" in row else "-"
            print(f"| {row['setup']} | {row['pipeline']} | {row['all_names']:.1%} / "
                  f"{row['all_arguments']:.1%} | {row['single_names']:.1%} / "
                  f"{row['single_arguments']:.1%} | {row['double_names']:.1%} / "
                  f"{row['double_arguments']:.1%} | {quiet} | {row['seconds']} |")
    if "roles" in results:
        print("\n| role | adapter | n | scores |\n| --- | --- | --- | --- |")
        for row in results["roles"]:
            scores = ", ".join(f"{name} {row[name]:.1%}" for name in get_role(row["role"]).metrics)
            print(f"| {row['role']} | {row['adapter']} | {row['examples']} | {scores} |")
    for key in ("memory", "switch", "parallel", "steps"):
        if key in results:
            print(f"\n{key}: " + ", ".join(f"{k} {v:.2f}" for k, v in results[key].items()))
    for row in results.get("training", []):
        print(f"training {row['adapter']}: {row['steps']} steps, {row['seconds']:.0f} s, "
              f"{row['seconds_per_step']:.2f} s/step, final loss {row['final_loss']}")


if __name__ == "__main__":
    main()
