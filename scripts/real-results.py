#!/usr/bin/env python3
"""Markdown tables of a real-agent `synod eval` (docs/RESULTS.md, "Real models").

usage: scripts/real-results.py OUT_DIR [OUT_DIR ...]

Reads each OUT_DIR/results.csv (rows with p = real) and OUT_DIR/usable.csv, and prints, per
suite and agents set: each strategy's outcomes, calls, tokens and wall time per task; for synod
how often the first tally split; synod-cN rows (a call budget of N per round) and the table of
what each strategy delivers correct within B calls per task (a run stopped at B calls keeps
every outcome it reached within B, and abstains on the rest) make the budget curve; on
HumanEvalComm how often each strategy asked (a question, answered or not: a user answers
there) on the original and on the modified prompts, and what it delivered on each; and the
usable-reply rate per model.
"""
import csv
import sys
from collections import defaultdict

BASE = ["single", "majority-text", "majority-behaviour", "codet", "synod"]


def strategies_of(rows):
    """The five strategies, then synod's variants (synod-c4, synod-k0, ...) in name order."""
    names = {r["strategy"] for r in rows}
    return [s for s in BASE if s in names] + sorted(names - set(BASE))
OUTCOMES = ["correct", "silently-wrong", "asked", "abstained", "error"]


def pct(k, n):
    return f"{100.0 * k / n:.1f}" if n else "–"


def main(dirs):
    rows, usable = [], []
    for d in dirs:
        with open(f"{d}/results.csv") as f:
            rows += [r for r in csv.DictReader(f) if r["p"] == "real"]
        try:
            with open(f"{d}/usable.csv") as f:
                for line in csv.reader(f):
                    if len(line) >= 6:
                        usable.append(line)
        except FileNotFoundError:
            pass
    groups = defaultdict(list)
    for r in rows:
        groups[(r["suite"], r["rho"], r["n"], r["m"])].append(r)
    for (suite, label, n, m), rs in sorted(groups.items()):
        units = {(r["task_id"], r["variant"]) for r in rs}
        print(f"\n#### {suite}, agents `{label}` (n = {n}, m = {m}): {len(units)} task prompts\n")
        print("| strategy | tasks | correct % | silently wrong % | asked, unanswered % | abstained % | asked any % | calls/task | tokens/task | s/task |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for s in strategies_of(rs):
            sr = [r for r in rs if r["strategy"] == s]
            if not sr:
                continue
            k = len(sr)
            c = defaultdict(int)
            for r in sr:
                c[r["outcome"]] += 1
            calls = sum(int(r["calls"]) for r in sr) / k
            toks = sum(int(r["tokens"]) for r in sr) / k
            secs = sum(float(r["seconds"]) for r in sr) / k
            asked_any = sum(int(r["questions"]) > 0 for r in sr)
            print(f"| {s} | {k} | {pct(c['correct'], k)} | {pct(c['silently-wrong'], k)} | "
                  f"{pct(c['asked'], k)} | {pct(c['abstained'], k)} | {pct(asked_any, k)} | "
                  f"{calls:.1f} | {toks:.0f} | {secs:.0f} |")
        syn = [r for r in rs if r["strategy"] == "synod"]
        split = [r for r in syn if "classes " in r["detail"]
                 and "-" in r["detail"].split("classes ", 1)[1].split(" ")[0]]
        if syn:
            print(f"\nsynod: the first tally split into several classes on {len(split)} of {len(syn)} "
                  f"task prompts ({pct(len(split), len(syn))} %).")
            def last_tally(r):
                t = r["detail"].split("classes ", 1)[1].split(";")[0].split() if "classes " in r["detail"] else []
                return [int(x) for x in t[-1].split("-") if x.isdigit()] if t else []
            # A widened tally (PL-20) counts more readings than there are agents.
            widened = [r for r in syn if r["outcome"] in ("correct", "silently-wrong")
                       and sum(last_tally(r)) > int(n)]
            if widened:
                print(f"synod: the widened tally (PL-20) decided {len(widened)} of {len(syn)}.")
        budgets = [4, 8, 12, 16, 24]
        print("\n| strategy | " + " | ".join(f"correct within {b} calls %" for b in budgets)
              + " |\n|---|" + "---|" * len(budgets))
        for s in strategies_of(rs):
            sr = [r for r in rs if r["strategy"] == s]
            within = [sum(r["outcome"] == "correct" and int(r["calls"]) <= b for r in sr)
                      for b in budgets]
            print(f"| {s} | " + " | ".join(pct(w, len(sr)) for w in within) + " |")
        if suite == "humanevalcomm":
            print("\n| strategy | asked on original % | asked on modified % "
                  "| correct on original % | correct on modified % |\n|---|---|---|---|---|")
            for s in strategies_of(rs):
                o = [r for r in rs if r["strategy"] == s and r["variant"] == "original"]
                md = [r for r in rs if r["strategy"] == s and r["variant"] != "original"]
                asked = lambda xs: sum(int(r["questions"]) > 0 for r in xs)
                right = lambda xs: sum(r["outcome"] == "correct" for r in xs)
                if o or md:
                    print(f"| {s} | {pct(asked(o), len(o))} | {pct(asked(md), len(md))} | "
                          f"{pct(right(o), len(o))} | {pct(right(md), len(md))} |")
    # Usable-reply rate: each (suite dir, task, variant, agent) once.
    seen, per_model = set(), defaultdict(lambda: [0, 0])
    for line in usable:
        task, variant, label, agent, model, ok = line[:6]
        key = (task, variant, agent)
        if key in seen:
            continue
        seen.add(key)
        per_model[model][1] += 1
        per_model[model][0] += ok == "true"
    if per_model:
        print("\n| model | first replies | usable (a reading whose program has a body, PL-27, after at most one follow-up) | rate % |\n|---|---|---|---|")
        for model, (ok, tot) in sorted(per_model.items()):
            print(f"| {model} | {tot} | {ok} | {pct(ok, tot)} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
