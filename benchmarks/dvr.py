"""Divide–Verify–Refine on the embedded model: constraint adherence per constraint count.

Usage: python benchmarks/dvr.py [--dtype float32] [--per-count N] [--rounds 4]
       [--divide-sample N] [--out benchmarks/dvr_results.json]
Data: benchmarks/data/dvr_eval.jsonl (30 instructions per constraint count 1..6) and
benchmarks/data/dvr_train.jsonl (other topics; warms the repository), constraints labelled.

Configurations, all from the same first answers and scored against the LABELLED constraints:
(a) plain generation; (b) DVR without a repository; (c) DVR with a repository warmed by a DVR
pass over the training split (frozen during the evaluation). DVR refines the constraints its
divider read from the text (rules), so division errors count against it.
Division accuracy is measured per strategy (rules on all; the model on a sample).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from chorus.agents.dividing import divide, merge
from chorus.agents.dvr import DivideVerifyRefine, answer_request
from chorus.checks import check_all, parse_constraint
from chorus.memory import RefinementRepository
from chorus.runtime import load_model

HERE = Path(__file__).parent
DATA = HERE / "data"


def load(name: str) -> list[dict]:
    with open(DATA / name) as lines:
        return [json.loads(line) for line in lines if line.strip()]


def sample(rows: list[dict], per_count: int | None) -> list[dict]:
    if per_count is None:
        return rows
    kept: dict[int, list] = defaultdict(list)
    for row in rows:
        if len(kept[len(row["constraints"])]) < per_count:
            kept[len(row["constraints"])].append(row)
    return [row for count in sorted(kept) for row in kept[count]]


def canonical(constraint) -> str:
    return json.dumps(constraint.model_dump(), sort_keys=True).lower()


def division_scores(rows: list[dict], divided: list[list]) -> dict:
    exact = hits = predicted = gold_total = 0
    for row, found in zip(rows, divided, strict=True):
        gold = {canonical(parse_constraint(c)) for c in row["constraints"]}
        got = {canonical(c) for c in found}
        exact += gold == got
        hits += len(gold & got)
        predicted += len(got)
        gold_total += len(gold)
    return {"n": len(rows), "exact_set": exact / len(rows),
            "precision": hits / max(predicted, 1), "recall": hits / max(gold_total, 1)}


def adherence(rows: list[dict], responses: list[str]) -> dict[int, dict]:
    """Per constraint count: fraction of labelled constraints met, of instructions all met."""
    per_count: dict[int, list[list[bool]]] = defaultdict(list)
    for row, response in zip(rows, responses, strict=True):
        gold = [parse_constraint(c) for c in row["constraints"]]
        per_count[len(gold)].append([r.passed for r in check_all(response, gold)])
    table = {}
    for count, passes in sorted(per_count.items()):
        flat = [p for row in passes for p in row]
        table[count] = {"constraints": sum(flat) / len(flat),
                        "all": sum(all(row) for row in passes) / len(passes), "n": len(passes)}
    return table


def progress(phase: str, done: int, total: int) -> None:
    print(f"\r  {phase}: {done}/{total}", end="\n" if done == total else "", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--backend", default="transformers",
                        choices=["transformers", "llamacpp"],
                        help="transformers (default): the backend the recorded figures used")
    parser.add_argument("--per-count", type=int, help="first N eval instructions per count")
    parser.add_argument("--train-limit", type=int, help="first N training instructions only")
    parser.add_argument("--candidates", type=int, default=2, help="samples per refinement")
    parser.add_argument("--rounds", type=int, default=4, help="refinement rounds at most")
    parser.add_argument("--examples", type=int, default=2, help="retrieved examples (c)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--divide-sample", type=int, default=12,
                        help="eval instructions the model divider is measured on")
    parser.add_argument("--out", type=Path, default=HERE / "dvr_results.json")
    parser.add_argument("--plot", type=Path, default=HERE / "dvr.png")
    args = parser.parse_args()

    eval_rows, train_rows = sample(load("dvr_eval.jsonl"), args.per_count), \
        load("dvr_train.jsonl")[:args.train_limit]
    model = load_model(dtype=args.dtype, backend=args.backend, show_progress=False)
    started = time.perf_counter()
    report: dict = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
                    "dtype": args.dtype, "rounds": args.rounds, "examples": args.examples,
                    "candidates": args.candidates, "eval": len(eval_rows),
                    "train": len(train_rows)}

    print("divide (rules, all eval instructions)")
    ruled = [divide(row["instruction"]) for row in eval_rows]
    report["divide"] = {"rules": division_scores(eval_rows, [d.constraints for d in ruled])}
    if args.divide_sample:
        picked = eval_rows[::max(1, len(eval_rows) // args.divide_sample)][:args.divide_sample]
        ruled_sample = [divide(row["instruction"]).constraints for row in picked]
        modelled = [divide(row["instruction"], model, strategy="model").constraints
                    for row in picked]
        report["divide"]["rules_on_sample"] = division_scores(picked, ruled_sample)
        report["divide"]["model"] = division_scores(picked, modelled)
        report["divide"]["hybrid"] = division_scores(
            picked, [merge(r, m) for r, m in zip(ruled_sample, modelled, strict=True)])
    print(json.dumps(report["divide"], indent=1))

    options = {"max_refinements": args.rounds, "candidates": args.candidates,
               "batch_size": args.batch}
    loop = DivideVerifyRefine(model, **options)
    timings = {}
    print("(a) plain answers")
    tick = time.perf_counter()
    first = [result.text.strip() for result in loop.generate(
        [answer_request(row["instruction"]) for row in eval_rows], "answer", progress)]
    timings["plain_s"] = time.perf_counter() - tick
    results = {"plain": adherence(eval_rows, first)}

    print("(b) DVR, no repository")
    tick = time.perf_counter()
    outcomes = loop.run_batch([r["instruction"] for r in eval_rows], progress,
                              responses=first, divisions=ruled)
    timings["dvr_s"] = time.perf_counter() - tick
    results["dvr"] = adherence(eval_rows, [o.response for o in outcomes])
    report["dvr_iterations_mean"] = statistics.mean(o.iterations for o in outcomes)

    with tempfile.TemporaryDirectory() as folder:
        repository = RefinementRepository(Path(folder) / "refinements.db")
        print("(c) warm the repository on the training split")
        tick = time.perf_counter()
        warm = DivideVerifyRefine(model, repository, examples=args.examples, **options)
        warm.run_batch([row["instruction"] for row in train_rows], progress)
        timings["warm_s"] = time.perf_counter() - tick
        report["repository_records"] = len(repository)
        print(f"  {len(repository)} refinements stored")
        print("(c) DVR with the warmed repository (frozen)")
        tick = time.perf_counter()
        recall = DivideVerifyRefine(model, repository, examples=args.examples, learn=False,
                                    **options)
        outcomes = recall.run_batch([r["instruction"] for r in eval_rows], progress,
                                    responses=first, divisions=ruled)
        timings["dvr_repository_s"] = time.perf_counter() - tick
        results["dvr_repository"] = adherence(eval_rows, [o.response for o in outcomes])
        report["repository_hits_mean"] = statistics.mean(o.repository_hits for o in outcomes)

    report["results"] = results
    report["timings_s"] = timings
    report["total_s"] = time.perf_counter() - started
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print_table(results)
    plot(results, args.plot)
    print(f"wrote {args.out} and {args.plot} in {report['total_s']:.0f} s")


def print_table(results: dict) -> None:
    names = {"plain": "(a) plain", "dvr": "(b) DVR", "dvr_repository": "(c) DVR + repository"}
    print("| constraints | " + " | ".join(f"{n}: met / all met" for n in names.values()) + " |")
    print("|---" * (len(names) + 1) + "|")
    for count in results["plain"]:
        cells = [f"{results[key][count]['constraints']:.1%} / {results[key][count]['all']:.1%}"
                 for key in names]
        print(f"| {count} | " + " | ".join(cells) + " |")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    labels = {"plain": "(a) plain", "dvr": "(b) DVR", "dvr_repository": "(c) DVR + repository"}
    for key, label in labels.items():
        counts = list(results[key])
        axes[0].plot(counts, [results[key][c]["constraints"] for c in counts], marker="o",
                     label=label)
        axes[1].plot(counts, [results[key][c]["all"] for c in counts], marker="o", label=label)
    for axis, title in zip(axes, ("constraints met", "instructions with all met"), strict=True):
        axis.set_title(title)
        axis.set_xlabel("constraints in the instruction")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle("Divide-Verify-Refine on SmolLM2-135M-Instruct")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
