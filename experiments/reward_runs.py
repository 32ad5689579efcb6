"""How much the demo's reward-model figures depend on the training run: the demo's PRM-quality and
best-of-N measurements for several reward models, on the demo's own held-out problems and samples.

    python experiments/reward_runs.py prm/assets/demo/reward runs/rseed1 runs/rseed2

Each directory is a reward model trained by the demo's recipe (`prm demo --retrain` writes
<output_dir>/models/reward and its `train_config.json`; `prm train --config that.json --seed S`
trains the same recipe on the same data with another seed). The held-out problems, the policy
(the shipped SFT policy) and its 64 samples per problem are the demo's (`prm demo` with its default
options draws the same ones), so the rows differ only by the reward model. Writes
<output_dir>/reward_runs.json and prints one row per model: step AUC on generated solutions,
the step AUCs on policy samples (checker and exact labels), and best-of-16 (--n) accuracy of
PRM-min, the ORM, majority, and PRM-min and majority after the checker's filter (mean over 3
subsampling seeds).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class RewardRunsArgs:
    """Sizes (the demo's by default) and where to write the table."""

    n_problems: int = field(default=64, metadata={"help": "held-out problems (the demo's first ones)"})
    n_samples: int = field(default=64, metadata={"help": "samples per problem"})
    n: int = field(default=16, metadata={"help": "best-of-N's N"})
    output_dir: str = field(default="runs/reward-runs", metadata={"help": "folder for reward_runs.json"})


def main(argv: list[str] | None = None) -> list[dict]:
    from transformers import HfArgumentParser

    from commands.demo import (ASSETS, BON_METHODS, DemoConfig, build_pools, demo_policy, make_problems,
                               prm_on_samples, prm_quality, sample_solutions, shipped_training_questions)
    from prm.scoring import load as load_scorer
    from search.rerank import accuracy_curve

    parser = HfArgumentParser(RewardRunsArgs)
    args, reward_dirs = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if not reward_dirs:
        parser.error("name at least one reward model directory")
    config = DemoConfig(n_eval_problems=args.n_problems, n_samples=args.n_samples)
    train, heldout = make_problems(config, shipped_training_questions())
    problems = heldout[: config.n_eval_problems]
    policy = demo_policy(str(ASSETS / "policy"), "cpu", config.temperature, config.seed)
    policy.reseed(config.seed)
    texts, tokens = sample_solutions(policy, problems, config.n_samples)
    rows = []
    for reward_dir in reward_dirs:
        scorer = load_scorer(reward_dir, device="cpu", batch_size=64)
        quality = prm_quality(scorer, heldout[: config.n_eval_problems * 4], train, config)
        on_samples = prm_on_samples(scorer, list(zip(texts, problems)))
        curve = accuracy_curve(build_pools(scorer, problems, texts, tokens), BON_METHODS, [args.n],
                               seeds=list(range(config.n_seeds)), n_subsets=16)
        at_n = {point.method: point.accuracy_mean for point in curve}
        rows.append({"reward_model": reward_dir, "step_auc": quality["prm"]["step_auc"],
                     "processbench_f1": quality["prm"]["f1"],
                     "policy_samples_checker_auc": on_samples["step_auc"],
                     "policy_samples_exact_auc": on_samples["reference"]["step_auc"],
                     "best_of_n": {name: at_n[name] for name in
                                    ("prm-min", "orm", "majority", "prm-min+verifier", "majority+verifier")}})
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reward_runs.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"| reward model | step AUC / F1 | samples AUC, checker / exact | best-of-{args.n} PRM-min / ORM / majority "
          "| PRM-min + checker / majority + checker |")
    print("|---|---|---|---|---|")
    for row in rows:
        bon = row["best_of_n"]
        print(f"| {row['reward_model']} | {row['step_auc']:.3f} / {row['processbench_f1']:.3f} "
              f"| {row['policy_samples_checker_auc']:.3f} / {row['policy_samples_exact_auc']:.3f} "
              f"| {bon['prm-min']:.3f} / {bon['orm']:.3f} / {bon['majority']:.3f} "
              f"| {bon['prm-min+verifier']:.3f} / {bon['majority+verifier']:.3f} |")
    return rows


if __name__ == "__main__":
    main()
