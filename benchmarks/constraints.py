"""Constraints met by construction: DVR decoding under the compiled grammar against DVR on free
text, from the same instructions, on the embedded default model.

Usage: python benchmarks/constraints.py [--per-count N] [--types T,...] [--rounds 1] [--out FILE]
Data: benchmarks/data/dvr_eval.jsonl (labelled constraints; 30 instructions per count 1..6).

Both configurations divide with the rules and refine with the same settings; only
`construct` differs. Scored against the LABELLED constraints. Also measured: how each
constraint was met (construction / first answer / refinement / not met), grammar compile time
per instruction, decoding speed of the first answers with and without the grammar, wall time
per instruction, and a quality guard on the final answers (non-empty, length, the
instruction's topic words present, degenerate repetition).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

from dvr import load, sample  # the DVR benchmark's data and sampling, the same split

from chorus.agents.dividing import divide
from chorus.agents.dvr import DivideVerifyRefine
from chorus.checks import check_all
from chorus.checks.compiling import compile_constraints
from chorus.runtime import GenerationRequest, load_model

HERE = Path(__file__).parent
_STOP = set("""a an the and or but of to in on for with at by from as is are be it this that
these those your you my me i we our their them his her its into about than then so do does
write give make use using include includes including answer response explain describe short
brief note words word sentences sentence paragraph paragraphs least most exactly only no not
without each every one two three four five six seven eight nine ten under over more fewer end
start title p.s. bullet points markdown lowercase letters capital json format""".split())


def topic_words(instruction: str) -> set[str]:
    quoted = set(re.findall(r"'([^']+)'", instruction.lower()))
    words = {w for w in re.findall(r"[a-z]{4,}", instruction.lower()) if w not in _STOP}
    return words - {w for q in quoted for w in q.split()}


def degenerate(text: str) -> bool:
    """A 4-word sequence repeated 4 or more times: the loops small models fall into."""
    words = text.lower().split()
    grams = Counter(tuple(words[i:i + 4]) for i in range(len(words) - 3))
    return bool(grams) and max(grams.values()) >= 4


def quality(rows: list[dict], texts: list[str]) -> dict:
    topical = []
    for row, text in zip(rows, texts, strict=True):
        topic = topic_words(row["instruction"])
        found = {w for w in topic if w in text.lower()}
        topical.append(len(found) / len(topic) if topic else 1.0)
    return {"empty": sum(not t.strip() for t in texts),
            "median_words": statistics.median(len(t.split()) for t in texts),
            "topic_words_present": statistics.mean(topical),
            "degenerate": sum(degenerate(t) for t in texts)}


def scores(rows: list[dict], texts: list[str]) -> dict:
    met, all_met = defaultdict(list), defaultdict(list)
    for row, text in zip(rows, texts, strict=True):
        passed = [r.passed for r in check_all(text, row["constraints"])]
        band = "1-3" if len(passed) <= 3 else "4-6"
        for key in (band, "all"):
            met[key] += passed
            all_met[key].append(all(passed))
    return {key: {"constraints_met": sum(met[key]) / len(met[key]),
                  "all_met": sum(all_met[key]) / len(all_met[key]), "n": len(all_met[key])}
            for key in met}


def run(model, rows: list[dict], construct: bool, rounds: int,
        needs_content: bool = False) -> dict:
    loop = DivideVerifyRefine(model, max_refinements=rounds, construct=construct,
                              needs_content=needs_content, temperature=0.7, candidates=2)
    marks: dict[str, float] = {}

    def progress(phase: str, done: int, total: int) -> None:
        marks[phase] = time.perf_counter()
        print(f"  {'grammar' if construct else 'free'} {phase}: {done}/{total}", flush=True)

    started = time.perf_counter()
    divisions = [divide(row["instruction"], model) for row in rows]
    outcomes = loop.run_batch([row["instruction"] for row in rows], progress,
                              divisions=divisions)
    total = time.perf_counter() - started
    answered = marks.get("answer", started)
    first = [outcome.history[0].response for outcome in outcomes]
    final = [outcome.response for outcome in outcomes]
    ways: dict[str, Counter] = defaultdict(Counter)
    for outcome in outcomes:
        for constraint, way in zip(outcome.constraints, outcome.met_by(), strict=True):
            ways[constraint.type][way] += 1
    return {"first": scores(rows, first), "final": scores(rows, final),
            "quality_first": quality(rows, first), "quality_final": quality(rows, final),
            "met_by": {k: dict(v) for k, v in sorted(ways.items())},
            "seconds_total": total, "seconds_first_answers": answered - started,
            "per_instruction_s": total / len(rows), "texts": final}


def decode_speed(model, rows: list[dict], limit: int = 12) -> dict:
    """Tokens/s of the same first answers with and without their grammar, side by side. The
    prompt is evaluated once beforehand, so both reuse it from the cache (whichever ran
    second would otherwise skip the prefill and look faster)."""
    free, constrained = [], []
    for row in rows[:limit]:
        compiled = compile_constraints(row["constraints"])
        if compiled.output is None:
            continue
        model.complete(GenerationRequest(messages=row["instruction"], max_new_tokens=1))
        for output, sink in ((None, free), (compiled.output, constrained)):
            request = GenerationRequest(messages=row["instruction"], output=output,
                                        max_new_tokens=128)
            sink.append(model.complete(request, raise_errors=False).tokens_per_s)
    return {"free_tok_s": statistics.median(free), "grammar_tok_s": statistics.median(constrained),
            "n": len(free)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-count", type=int, help="first N instructions per count")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "constraints_results.json")
    parser.add_argument("--speed-only", action="store_true",
                        help="only the decoding speed with and without the grammar")
    parser.add_argument("--configs", default="free,grammar",
                        help="of free, grammar, all-grammars (also the grammars that need "
                             "the model to write particular content)")
    parser.add_argument("--types", help="only the instructions with a labelled constraint of "
                                        "one of these types (comma-separated)")
    args = parser.parse_args()
    rows = sample(load("dvr_eval.jsonl"), args.per_count)
    if args.types:
        wanted = set(args.types.split(","))
        rows = [row for row in rows if wanted & {c["type"] for c in row["constraints"]}]
    compile_s, compiled_share = [], Counter()
    for row in rows:
        compiled = compile_constraints(row["constraints"])
        compile_s.append(compiled.seconds)
        for index, constraint in enumerate(row["constraints"]):
            compiled_share[(constraint["type"], index in compiled.compiled)] += 1
    model = load_model(show_progress=False)
    print(f"{len(rows)} instructions on {model.name}", flush=True)
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "model": model.name, "instructions": len(rows), "rounds": args.rounds,
               "compile_s": {"median": statistics.median(compile_s), "max": max(compile_s)},
               "compiled": {f"{t}:{'yes' if c else 'no'}": n
                            for (t, c), n in sorted(compiled_share.items())},
               "speed": decode_speed(model, rows)}
    print(json.dumps(results, indent=1), flush=True)
    if args.speed_only:
        args.out.write_text(json.dumps(results, indent=1))
        return
    for config in args.configs.split(","):
        results[config] = run(model, rows, config != "free", args.rounds,
                              needs_content=config == "all-grammars")
        summary = {k: v for k, v in results[config].items() if k != "texts"}
        print(config, json.dumps(summary, indent=1), flush=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
