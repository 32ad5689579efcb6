"""The demo's PPO stage alone: every step-reward source of `prm demo` on the demo's problems,
from the shipped SFT policy and reward model (prm/assets/demo), several seeds.

    python experiments/demo_ppo.py                                   # 4 modes x 3 seeds x 24 updates
    python experiments/demo_ppo.py --ppo_modes dense,outcome --ppo_updates 16 --output_dir runs/demo-ppo

The same problems, held-out split, baseline and PPO settings as `prm demo` (commands/demo.py,
`run_ppo`); writes <output_dir>/ppo.json and prints the accuracy table and the target rows.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> dict:
    from transformers import HfArgumentParser

    from commands.demo import ASSETS, DemoConfig, make_problems, run_ppo, write_problems
    from commands.demo_report import _ppo_summary
    from generation.loading import load_policy
    from prm.sft import heldout_accuracy

    (config,) = HfArgumentParser(DemoConfig).parse_args_into_dataclasses(args=argv)
    run = Path(config.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    train, heldout = make_problems(config)
    heldout_file = write_problems(heldout[: config.ppo_eval_problems], run / "heldout_problems.jsonl")
    train_file = write_problems(train, run / "train_problems.jsonl")
    model, tokenizer = load_policy(str(ASSETS / "policy"))
    start = heldout_accuracy(model, tokenizer, heldout[: config.ppo_eval_problems], temperature=0.0, max_new_tokens=64)
    curves = run_ppo(config, run, ASSETS / "policy", ASSETS / "reward", train_file, heldout_file, start)
    summary = _ppo_summary(curves)
    (run / "ppo.json").write_text(json.dumps({"start": start, "curves": curves, "summary": summary}, indent=2) + "\n")
    updates = next(iter(summary.values()))["updates"]
    print(f"SFT start {start:.3f}")
    print("| mode | " + " | ".join(f"update {u}" for u in updates) + " | final (mean ± std over seeds) |")
    print("|---|" + "---|" * (len(updates) + 1))
    for mode, row in summary.items():
        print(f"| {mode} | " + " | ".join(f"{m:.3f}" for m in row["mean"])
              + f" | {row['final_mean']:.3f} ± {row['final_std']:.3f} |")
    return {"start": start, "summary": summary}


if __name__ == "__main__":
    main()
