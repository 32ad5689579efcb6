"""Benchmark the tasks/math data layer.

1. GSM8K conversion: `load_gsm8k` on `../shared/data/gsm8k/train.jsonl` (7,473 problems),
   strict mode (any malformed line would raise): records, steps, seconds.
2. The synthetic generator: `generate_problems(10_000, preset)` for every preset, and
   `step_labelled_records` (half corrupted) for the default "tiny" preset: seconds and
   problems/s (goal: 10,000 problems in under 10 s).

    python benchmarks/tasks.py [--gsm8k PATH] [--n 10000] [--json tasks.json]

Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tables import print_table  # noqa: E402

from tasks.math.loaders import load_gsm8k, load_report  # noqa: E402
from tasks.math.synthetic import PRESETS, generate_problems, step_labelled_records  # noqa: E402

DEFAULT_GSM8K = Path("../shared/data/gsm8k/train.jsonl")


def bench_gsm8k(path: Path) -> dict:
    if not path.is_file():
        print(f"\nGSM8K: {path} is absent; skipping the conversion (pass --gsm8k PATH).")
        return {"path": str(path), "present": False}
    start = time.perf_counter()
    data = load_gsm8k(path)  # strict: a malformed line raises RecordError
    seconds = time.perf_counter() - start
    report = load_report(data)
    steps = sum(len(completions) for completions in data["completions"])
    result = {
        "path": str(path), "present": True, "records": len(data), "steps": steps,
        "skipped_invalid": report.get("skipped_invalid", 0), "seconds": round(seconds, 3),
    }
    print_table(
        "GSM8K train conversion (load_gsm8k, strict)",
        ["file", "records", "steps (incl. answer step)", "errors", "seconds"],
        [[path, len(data), steps, result["skipped_invalid"], f"{seconds:.2f}"]],
    )
    return result


def bench_generator(n: int, seed: int) -> list[dict]:
    rows, results = [], []
    for preset in PRESETS:
        start = time.perf_counter()
        problems = generate_problems(n, preset, seed=seed)
        seconds = time.perf_counter() - start
        mean_steps = sum(len(p.steps) for p in problems) / len(problems)
        results.append({"what": f"generate_problems({n}, {preset!r})", "seconds": round(seconds, 3),
                        "per_second": round(n / seconds), "mean_steps": round(mean_steps, 2)})
        if preset == "tiny":
            start = time.perf_counter()
            step_labelled_records(problems, corrupt_fraction=0.5, seed=seed)
            corrupt_seconds = time.perf_counter() - start
            results.append({"what": f"step_labelled_records({n} tiny, 0.5 corrupted)",
                            "seconds": round(corrupt_seconds, 3), "per_second": round(n / corrupt_seconds),
                            "mean_steps": round(mean_steps, 2)})
    for result in results:
        rows.append([result["what"], f"{result['seconds']:.2f}", result["per_second"], result["mean_steps"]])
    print_table("Synthetic task generator", ["call", "seconds", "problems/s", "mean steps"], rows)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gsm8k", type=Path, default=DEFAULT_GSM8K, help="GSM8K train.jsonl")
    parser.add_argument("--n", type=int, default=10_000, help="problems per preset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs visible")
    results = {"gsm8k": bench_gsm8k(args.gsm8k), "generator": bench_generator(args.n, args.seed)}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
