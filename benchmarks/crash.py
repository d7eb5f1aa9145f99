"""Crash consistency: kill -9 a graph run at random moments, resume it, count tool calls
run twice and results lost.

Usage:
  python benchmarks/crash.py [--kills 50] [--seed 0] [--no-journal] [--out FILE.json]
  python benchmarks/crash.py --target repository [--kills 50] [--out FILE.json]
  python benchmarks/crash.py --target training [--kills 50] [--out FILE.json]

Each trial starts a child process that runs a three-step graph (caller, tools, three times)
on the embedded SmolLM2 (llama.cpp). Its tool appends a line to a log when it starts, works
for 0.2 s, and returns "execution K". The parent kills the child with SIGKILL at a moment drawn
uniformly over the length of an uninterrupted run, then runs the same thread again to the
end. Then, for the thread:
- executions: lines in the log; results: "execution K" observations in the final trajectory;
  interrupted: observations saying the call was cut short;
- repeated = executions - results - interrupted (a call run again after the kill);
- lost = results naming an execution that is not in the log, plus runs that did not finish.
`--no-journal` runs the same trials without the tool-call journal (LangGraph's checkpoints
only), to show what the journal changes.

`--target repository` kills a process that adds refinements to a repository (and notes each
id `add` returned) at a random moment in its first 3 s, then checks the file: SQLite's
integrity check, the full-text index against the table, and every noted id still there.

`--target training` trains a caller adapter for 12 steps (checkpoints every 2) on a tiny
random Llama with SmolLM2's tokenizer (made here, as the tests make it), kills the process at
a random moment, runs the same training again, and compares the adapter's weights with those
of a run that was never killed: they must be identical.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

CHILD_TIMEOUT_S = 300


def child(store: Path, thread: str, log: Path, journal: bool) -> None:
    """Run the three-step graph on `thread` to its end: from the start, from where a kill
    left it, or not at all if it had already finished."""
    from chorus import load_model
    from chorus.graphs import GraphRunner, GraphSpec
    from chorus.tools import tool

    @tool
    def record(note: Literal["alpha", "beta", "gamma"]) -> str:
        """Record a note in the log.

        Args:
            note: The note.
        """
        with open(log, "a") as handle:
            handle.write(f"{note}\n")
        executions = len(log.read_text().splitlines())
        time.sleep(0.2)  # the tool's work: a kill may land in it
        return f"execution {executions}"

    steps = ["1", "2", "3"]
    nodes, edges, previous = {}, [], "START"
    for step in steps:
        nodes[f"call{step}"] = {"agent": "caller"}
        nodes[f"tools{step}"] = {"run": "tools"}
        edges += [{"from": previous, "to": f"call{step}"},
                  {"from": f"call{step}", "to": f"tools{step}"}]
        previous = f"tools{step}"
    edges.append({"from": previous, "to": "END"})
    spec = GraphSpec.model_validate({
        "name": "three_calls", "agents": {"caller": {"role": "caller", "max_calls": 1,
                                                     "adapter": None}},
        "nodes": nodes, "edges": edges})
    runner = GraphRunner(spec, load_model("smollm2-135m", backend="llamacpp"),
                         tools=[record], store=store)
    if not journal:
        runner.context.journal = None
    state = runner.state(thread)
    if not state or runner.pending(thread):  # else the run finished before the kill landed
        state = runner.run("Record the notes alpha, beta and gamma, one per call.",
                           thread_id=thread).state
    print(json.dumps({"observations": [step["content"] for step in state["trajectory"]
                                       if step["kind"] == "observation"]}))


def repository_child(path: Path, log: Path) -> None:
    from chorus.memory import RefinementRepository

    repository = RefinementRepository(path, max_records=1_000_000)
    with open(log, "a") as noted:
        for number in range(1_000_000):
            record = repository.add(constraint_type="word_count", params={"n": number},
                                    feedback="Too long.", before=f"Draft {number} is long.",
                                    after=f"Draft {number}.", instruction="Be brief.")
            noted.write(f"{record}\n")
            noted.flush()


def repository_trial(folder: Path, number: int, kill_after: float) -> dict:
    import sqlite3

    path, log = folder / f"r{number}.db", folder / f"r{number}.log"
    log.touch()
    process = subprocess.Popen([sys.executable, __file__, "--repository-child", str(path),
                                str(log)], stderr=subprocess.PIPE, text=True)
    time.sleep(kill_after)
    process.kill()
    process.wait()
    noted = [int(line) for line in log.read_text().split("\n")[:-1]]  # whole lines only
    with sqlite3.connect(path) as connection:
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        if "refinements" in tables:
            ids = {row[0] for row in connection.execute("SELECT id FROM refinements")}
            indexed = connection.execute("SELECT COUNT(*) FROM refinements_fts").fetchone()[0]
        else:  # killed before the schema was made: nothing can have been noted
            ids, indexed = set(), 0
    from chorus.memory import RefinementRepository

    RefinementRepository(path).add(constraint_type="lowercase", params={}, feedback="f",
                                   before="After the kill.", after="after the kill.")
    return {"kill_after_s": round(kill_after, 3), "noted": len(noted), "stored": len(ids),
            "integrity": integrity, "index_rows": indexed,
            "lost": sum(1 for record in noted if record not in ids)}


TRAINING_PLAN = dict(name="caller", roles=["caller"], steps=12, batch_size=2,
                     learning_rate=5e-3, seed=1, checkpoint_every=2, warmup_steps=1)


def training_child(model_dir: Path, data: Path, output: Path) -> None:
    from chorus import load_model
    from chorus.training.trainer import TrainingPlan, train

    model = load_model(model_dir, dtype="float32", show_progress=False)
    train(model, TrainingPlan(data=str(data), output=str(output), **TRAINING_PLAN))


def _tiny_model(folder: Path) -> Path:
    """A tiny random Llama with SmolLM2's real tokenizer, as tests/conftest.py makes it."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from chorus.runtime.embedded import EMBEDDED

    gguf = EMBEDDED["smollm2-135m"].gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, initializer_range=0.2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    directory = folder / "tiny-llama"
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def training_main(args, chance: random.Random) -> None:
    from safetensors.torch import load_file

    from chorus.training.examples import generate

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model_dir, data = _tiny_model(root), root / "roles"
        generate(data, per_tool=(1, 1), doubles=(4, 2), cap=(24, 8))

        def run(output: Path, kill_after: float | None = None) -> bool:
            process = subprocess.Popen([sys.executable, __file__, "--training-child",
                                        str(model_dir), str(data), str(output)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if kill_after is None:
                return process.wait() == 0
            time.sleep(kill_after)
            killed = process.poll() is None
            if killed:
                process.kill()
            process.wait()
            return killed

        started = time.perf_counter()
        assert run(root / "reference")
        window = time.perf_counter() - started
        reference = load_file(root / "reference" / "adapter_model.safetensors")
        print(f"uninterrupted training: {window:.1f} s", flush=True)
        trials = []
        for number in range(args.kills):
            output = root / f"t{number}"
            kill_after = chance.uniform(0, window)
            killed = run(output, kill_after)
            finished = run(output)
            weights = output / "adapter_model.safetensors"
            same = finished and weights.is_file() and all(
                (load_file(weights)[key] == value).all().item()
                for key, value in reference.items())
            trials.append({"kill_after_s": round(kill_after, 2), "killed": killed,
                           "finished": finished, "identical_weights": bool(same)})
            print(json.dumps(trials[-1]), flush=True)
    summary = {"target": "training", "kills": len(trials), "window_s": round(window, 1),
               "killed_mid_run": sum(t["killed"] for t in trials),
               "identical_weights": sum(t["identical_weights"] for t in trials),
               "unfinished_resumes": sum(not t["finished"] for t in trials),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "trials": trials}, indent=1))


def _spawn(store: Path, thread: str, log: Path, journal: bool) -> subprocess.Popen:
    command = [sys.executable, __file__, "--child", str(store), thread, str(log)]
    if not journal:
        command.append("--no-journal")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def trial(store: Path, thread: str, kill_after: float, journal: bool) -> dict:
    log = store / f"{thread}.log"
    log.touch()
    process = _spawn(store, thread, log, journal)
    time.sleep(kill_after)
    killed = process.poll() is None
    if killed:
        process.kill()
    process.wait()
    resumed = _spawn(store, thread, log, journal)
    out, err = resumed.communicate(timeout=CHILD_TIMEOUT_S)
    executions = len(log.read_text().splitlines())
    if resumed.returncode != 0:
        return {"kill_after_s": kill_after, "killed": killed, "finished": False,
                "error": err.strip().splitlines()[-1:], "executions": executions}
    observations = json.loads(out.strip().splitlines()[-1])["observations"]
    results = [int(match.group(1)) for text in observations
               if (match := re.search(r"execution (\d+)", text))]
    interrupted = sum("was interrupted" in text for text in observations)
    return {"kill_after_s": round(kill_after, 3), "killed": killed, "finished": True,
            "executions": executions, "results": results, "interrupted": interrupted,
            "repeated": max(0, executions - len(results) - interrupted),
            "lost": sum(1 for k in results if k > executions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-journal", action="store_true")
    parser.add_argument("--target", choices=["graph", "repository", "training"],
                        default="graph")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    chance = random.Random(args.seed)
    if args.target == "repository":
        return repository_main(args, chance)
    if args.target == "training":
        return training_main(args, chance)
    journal = not args.no_journal
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder)
        started = time.perf_counter()  # an uninterrupted run sets the window for kills
        calibration = _spawn(store, "calibration", store / "calibration.log", journal)
        calibration.communicate(timeout=CHILD_TIMEOUT_S)
        window = time.perf_counter() - started
        print(f"uninterrupted run: {window:.1f} s; kills drawn uniformly in [0, {window:.1f}]",
              flush=True)
        trials = []
        for number in range(args.kills):
            outcome = trial(store, f"t{number}", chance.uniform(0, window), journal)
            trials.append(outcome)
            print(json.dumps(outcome), flush=True)
    finished = [t for t in trials if t["finished"]]
    summary = {
        "journal": journal, "kills": len(trials), "window_s": round(window, 2),
        "killed_mid_run": sum(t["killed"] for t in trials),
        "killed_during_a_tool": sum(t.get("interrupted", 0) > 0 for t in finished),
        "repeated_calls": sum(t["repeated"] for t in finished),
        "lost_results": sum(t["lost"] for t in finished) + len(trials) - len(finished),
        "unfinished_resumes": len(trials) - len(finished),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "trials": trials}, indent=1))


def repository_main(args, chance: random.Random) -> None:
    with tempfile.TemporaryDirectory() as folder:
        trials = []
        for number in range(args.kills):
            trials.append(repository_trial(Path(folder), number, chance.uniform(0, 3)))
            print(json.dumps(trials[-1]), flush=True)
    summary = {"target": "repository", "kills": len(trials),
               "records_noted": sum(t["noted"] for t in trials),
               "lost_records": sum(t["lost"] for t in trials),
               "integrity_failures": sum(t["integrity"] != "ok" for t in trials),
               "index_mismatches": sum(t["index_rows"] != t["stored"] for t in trials),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "trials": trials}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--training-child":
        training_child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--repository-child":
        repository_child(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]),
              journal="--no-journal" not in sys.argv)
    else:
        main()
