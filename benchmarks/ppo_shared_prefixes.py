"""Seconds per PPO update with and without shared prefixes, at the demo's PPO settings.

The demo's PPO stage (shipped SFT policy and reward model, `commands.demo.PPO_SETTINGS`: 16
prompts x 4 samples, 4 epochs x 2 minibatches, T = 0.7) in group mode with the PRM's step
rewards, timed with `--share_prefixes` on and off, the two alternating so that the machine's
load falls on both alike. An update is rollout + scoring + old/reference log-probs + the
minibatch steps; no held-out evaluation. Also reports the token slots (rows x width) of the
layouts of an update's forward passes, summed.

    python benchmarks/ppo_shared_prefixes.py --updates 6 --repeats 2 --json ppo_shared.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed_run(share: bool, updates: int, root: Path, train_file: Path) -> dict:
    """One run of `updates` updates; seconds per update after the first, and slots per update."""
    from commands.demo import ASSETS, PPO_SETTINGS
    from prm.ppo import model as ppo_model
    from prm.ppo.train import PPOConfig, train_ppo

    slots: list[int] = []
    original = ppo_model.ResponseBatch.from_ids.__func__

    def counting(cls, *args, **kwargs):
        batch = original(cls, *args, **kwargs)
        slots.append(batch.input_ids.numel())
        return batch

    ppo_model.ResponseBatch.from_ids = classmethod(counting)
    try:
        out = root / f"share-{share}-{time.monotonic_ns()}"
        train_ppo(PPOConfig(policy=str(ASSETS / "policy"), prm=str(ASSETS / "reward"), mode="group",
                            group_advantage="grpo_process", data=str(train_file), n_eval=0, max_updates=updates,
                            save_every=0, seed=0, output_dir=str(out), share_prefixes=share, **PPO_SETTINGS))
    finally:
        ppo_model.ResponseBatch.from_ids = classmethod(original)
    seconds = [json.loads(line)["seconds"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"seconds_per_update": statistics.median(seconds[1:] or seconds), "slots_per_update": sum(slots) / updates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=6, help="updates per run (the first is not timed)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting, alternating")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    import torch

    from commands.demo import DemoConfig, make_problems, write_problems

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train, _ = make_problems(DemoConfig())
        train_file = write_problems(train, root / "train.jsonl")
        runs: dict[bool, list[dict]] = {True: [], False: []}
        for _ in range(args.repeats):
            for share in (False, True):
                runs[share].append(timed_run(share, args.updates, root, train_file))
    rows = {("shared prefixes" if share else "padded rows"): {
        "seconds_per_update": statistics.median(r["seconds_per_update"] for r in results),
        "slots_per_update": statistics.median(r["slots_per_update"] for r in results), "runs": results}
        for share, results in runs.items()}
    padded = rows["padded rows"]["seconds_per_update"]
    print(f"| layout | s / update (median of {args.repeats} runs) | vs padded | token slots / update |")
    print("|---|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['seconds_per_update']:.2f} | {padded / row['seconds_per_update']:.2f}x |"
              f" {row['slots_per_update']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
