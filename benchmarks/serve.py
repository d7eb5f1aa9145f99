"""`chorus serve` with the openai backend: the same answers as local, and what concurrent
clients gain.

Usage:
  python benchmarks/serve.py [--backend llamacpp|transformers] [--requests 24] [--clients 8]
                             [--repeats 3]

Starts `chorus serve --model smollm2-135m --backend B` (the shipped adapters fit SmolLM2), then
1. agreement: greedy requests (plain, JSON Schema, choice, and each of 4 adapters) through
   OpenAIBackend against the same requests on a local model of the same backend; then the
   same requests again, timed on both sides (the HTTP path's overhead);
2. throughput: 1, 2, 4 and --clients threads send the --requests requests (over the base
   model and 4 adapters) at once; against the same requests sent one after another from the
   main thread; new tokens per second and the ratio (medians of --repeats rounds, one by
   one and each number of clients in turn), per number of clients.
Every pass sends the same requests, so with prompt states kept (the default) each pass after
the first finds its prompts computed; run it with CHORUS_PROMPT_CACHE_MB=0 (the server
inherits it) to have every prompt computed whole each time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import chorus
from chorus.runtime.library import ensure_loaded
from chorus.runtime.types import GenerationRequest

ADAPTERS = ["summarizer", "verifier", "backbone", "caller-v1"]
USER = {"type": "object", "required": ["name", "age"], "properties": {
    "name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}}}
PROMPTS = ["Summarize: the cat sat on the mat and slept all day.",
           "Name three rivers in Europe.", "What is 12 times 7?",
           "Write one sentence about tides.", "Is Paris in France? Answer briefly.",
           "Give a tip for learning Python.", "Describe a sunset in ten words.",
           "What does a caller agent do?"]


def _requests(count: int) -> list[GenerationRequest]:
    shapes = [dict(), dict(output=USER), dict(output=["yes", "no"])]
    requests = []
    for number in range(count):
        adapter = [None, *ADAPTERS][number % (len(ADAPTERS) + 1)]
        shape = shapes[number % len(shapes)]
        requests.append(GenerationRequest(messages=PROMPTS[number % len(PROMPTS)],
                                          adapter=adapter, max_new_tokens=32, **shape))
    return requests


def _timed(run) -> tuple[float, int]:
    """Seconds `run` takes, and the new tokens of the results it returns."""
    started = time.perf_counter()
    results = run()
    return time.perf_counter() - started, sum(result.new_tokens for result in results)


def _start(backend: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "chorus.cli.main", "serve", "--model",
                                "smollm2-135m", "--backend", backend, "--port", str(port),
                                "--dtype", "float32"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/health", timeout=1).close()
            return process, url
        except OSError:
            time.sleep(0.5)
    raise SystemExit("chorus serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="llamacpp", choices=["llamacpp", "transformers"])
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    process, url = _start(args.backend)
    try:
        remote = chorus.load_model(backend="openai", base_url=url)
        remote.coalescer = None  # every request goes to the server as it is made
        local = chorus.load_model("smollm2-135m", backend=args.backend, dtype="float32")
        for name in ADAPTERS:
            ensure_loaded(local, name)
            ensure_loaded(remote, name)
        requests = _requests(args.requests)
        same = 0  # text, parsed value, and failure (a constrained row may run out of tokens)
        for request in requests:
            [here], [there] = local.generate_batch([request]), remote.generate_batch([request])
            same += (here.text, here.value, here.error) == (there.text, there.value, there.error)
        print(json.dumps({"backend": args.backend, "agreement": f"{same}/{len(requests)}"}),
              flush=True)
        # The HTTP path's cost: each request again (both sides warm now), here and there.
        here_s, there_s = [], []
        for request in requests:
            for model, seconds in ((local, here_s), (remote, there_s)):
                seconds.append(_timed(lambda m=model, r=request: m.generate_batch([r]))[0])
        print(json.dumps({"backend": args.backend, "local_s": round(sum(here_s), 2),
                          "http_s": round(sum(there_s), 2),
                          "http_over_local": round(sum(there_s) / sum(here_s), 3),
                          "median_ratio_per_request": round(statistics.median(
                              t / h for t, h in zip(there_s, here_s, strict=True)), 3)}),
              flush=True)
        del local

        def send(request: GenerationRequest):
            return remote.generate_batch([request])[0]

        # One by one and each number of clients in turn, --repeats rounds: the machine's
        # drift reaches them all alike; medians per column.
        counts = sorted({1, 2, 4, args.clients})
        rates: dict[str, list[float]] = {"one_by_one": [], **{str(c): [] for c in counts}}
        for _ in range(args.repeats):
            seconds, tokens = _timed(lambda: [send(r) for r in requests])
            rates["one_by_one"].append(tokens / seconds)
            for clients in counts:
                with ThreadPoolExecutor(clients) as pool:
                    seconds, tokens = _timed(lambda: list(pool.map(send, requests)))
                rates[str(clients)].append(tokens / seconds)
        sequential = statistics.median(rates["one_by_one"])
        curve = {clients: {"tok_s": round(statistics.median(rates[str(clients)]), 1),
                           "ratio": round(statistics.median(rates[str(clients)]) / sequential, 2),
                           "runs_tok_s": [round(rate, 1) for rate in rates[str(clients)]]}
                 for clients in counts}
        report = {"backend": args.backend, "requests": len(requests), "clients": curve,
                  "sequential_tok_s": round(sequential, 1),
                  "sequential_runs_tok_s": [round(rate, 1) for rate in rates["one_by_one"]],
                  "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
        print(json.dumps(report), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
