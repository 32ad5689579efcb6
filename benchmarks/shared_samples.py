"""Seconds to sample the demo's best-of-N candidates with and without shared sample prefixes.

`HFPolicy(share_prefixes=True)` runs the samples of a state that have drawn the same tokens so
far as one row; False gives every sample its own row. The demo's sampling stage (shipped SFT
policy, T = 0.7, `--samples` solutions for each of `--problems` held-out problems), timed both
ways, alternating so that the machine's load falls on both alike. Also reports the tokens run
through the model, and checks that both ways give the same samples.

    python benchmarks/shared_samples.py --problems 16 --samples 64 --repeats 2 --json shared_samples.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=16, help="held-out problems of the demo")
    parser.add_argument("--samples", type=int, default=64, help="samples per problem")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting, alternating")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    import torch

    from commands.demo import ASSETS, DemoConfig, demo_policy, make_problems, sample_solutions

    torch.set_num_threads(args.threads)
    config = DemoConfig()
    _, heldout = make_problems(config)
    problems = heldout[: args.problems]
    policy = demo_policy(str(ASSETS / "policy"), "cpu", config.temperature, config.seed)
    runs: dict[bool, list[dict]] = {False: [], True: []}
    texts: dict[bool, list] = {}
    for _ in range(args.repeats):
        for share in (False, True):
            policy.share_prefixes = share
            policy.reseed(config.seed)
            policy.reset_counters()
            started = time.perf_counter()
            texts[share], _ = sample_solutions(policy, problems, args.samples)
            runs[share].append({"seconds": time.perf_counter() - started, "forward_tokens": policy.forward_tokens,
                                "generated_tokens": policy.generated_tokens})
    rows = {("shared prefixes" if share else "one row per sample"): {
        "seconds": statistics.median(r["seconds"] for r in results),
        "forward_tokens": results[0]["forward_tokens"], "generated_tokens": results[0]["generated_tokens"],
        "runs": results} for share, results in runs.items()}
    plain = rows["one row per sample"]
    print(f"| layout | s (median of {args.repeats}) | vs one row per sample | tokens run through the model |"
          " tokens sampled |")
    print("|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['seconds']:.1f} | {plain['seconds'] / row['seconds']:.2f}x |"
              f" {row['forward_tokens']} | {row['generated_tokens']} |")
    same = texts[True] == texts[False]
    print(f"same samples both ways: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "same_samples": same}, indent=2) + "\n")


if __name__ == "__main__":
    main()
