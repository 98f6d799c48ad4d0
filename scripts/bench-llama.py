#!/usr/bin/env python3
"""Tokens per second of an OpenAI-compatible server at 1 and several parallel requests.

usage: scripts/bench-llama.py URL MODEL [PARALLEL ...]   (default: 1 4)

Each level sends that many requests at once (the interpret role prompt and a small task, 128
output tokens each, fixed seeds) and reports the generated tokens per second over the whole
wave (aggregate) and per request. For docs/BENCHMARKS.md; run it on an otherwise idle machine.
"""
import json
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = (ROOT / "crates/synod-agents/prompts/interpret.md").read_text()
TASK = ("## The request\n\nWrite a Python module named `solution` (standard library only) with a "
        "function `count_vowels(text)` that returns how many vowels the string `text` contains.\n")


def one(url, model, seed, out):
    body = {"model": model, "max_tokens": 128, "temperature": 0.7, "seed": seed,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}]}
    req = urllib.request.Request(url + "/chat/completions", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    t = time.monotonic()
    reply = json.loads(urllib.request.urlopen(req, timeout=900).read())
    out.append((reply["usage"]["completion_tokens"], time.monotonic() - t))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    url, model = sys.argv[1].rstrip("/"), sys.argv[2]
    levels = [int(x) for x in sys.argv[3:]] or [1, 4]
    one(url, model, 0, [])  # warm the prompt cache
    print("| parallel requests | tokens | wall s | aggregate tokens/s | per request tokens/s |")
    print("|---|---|---|---|---|")
    for k in levels:
        out = []
        t = time.monotonic()
        ts = [threading.Thread(target=one, args=(url, model, 100 * k + i, out)) for i in range(k)]
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        wall = time.monotonic() - t
        toks = sum(o[0] for o in out)
        per = sum(o[0] / o[1] for o in out) / len(out)
        print(f"| {k} | {toks} | {wall:.1f} | {toks / wall:.1f} | {per:.1f} |")


if __name__ == "__main__":
    main()
