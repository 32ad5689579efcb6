"""The demo's PPO stage alone: every step-reward source of `prm demo` on the demo's problems,
from the shipped SFT policy and reward model (prm/assets/demo), several seeds.

    python experiments/demo_ppo.py                                   # 4 modes x 3 seeds x 16 updates
    python experiments/demo_ppo.py --ppo_modes dense,outcome --ppo_updates 16 --output_dir runs/demo-ppo
    python experiments/demo_ppo.py --validation_seed 777 --lr 3e-5 --batch_size 32 --samples_per_prompt 8 \
        --ppo_epochs 1 --ppo_modes outcome,checker          # other settings, judged on a validation set
    python experiments/demo_ppo.py --validation_seed 777 --rollout_temperature 1.0 --lora_r 8 --lr 3e-4 ...
    python experiments/demo_ppo.py --validation_seed 777 --policy runs/base-policy ...  # another SFT policy
    python experiments/demo_ppo.py --policy runs/few500 --reward runs/few500-demo/models/reward ...  # and reward model

The same problems, held-out split, baseline and PPO settings as `prm demo` (commands/demo.py,
`run_ppo`, `PPO_SETTINGS`); writes <output_dir>/ppo.json and prints the accuracy table. Other
settings are tried on a validation set (`--validation_seed`: fresh problems of that seed, none of
them a training or demo held-out question), so that the demo's held-out problems are not tuned on.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class PPOSettingsArgs:
    """Replacements for the demo's PPO_SETTINGS (unset = the demo's value)."""

    lr: float | None = field(default=None, metadata={"help": "AdamW learning rate"})
    warmup_updates: int | None = field(default=None, metadata={"help": "linear learning-rate warm-up over this many updates (PPOConfig.warmup_updates; the demo's is 0)"})
    batch_size: int | None = field(default=None, metadata={"help": "prompts per update"})
    samples_per_prompt: int | None = field(default=None, metadata={"help": "samples per prompt (the group)"})
    ppo_epochs: int | None = field(default=None, metadata={"help": "passes over each rollout batch"})
    n_minibatches: int | None = field(default=None, metadata={"help": "minibatches per pass"})
    rollout_temperature: float | None = field(default=None, metadata={"help": "sampling temperature of the rollouts (PPOConfig.temperature)"})
    lora_r: int | None = field(default=None, metadata={"help": "LoRA rank (0: full fine-tuning, the demo's)"})
    outcome_gate: str | None = field(default=None, metadata={"help": "none (the demo's) or checker: no outcome reward for a right answer reached through a false step (PPOConfig.outcome_gate)"})
    ptx_coef: float | None = field(default=None, metadata={"help": "weight of a supervised loss on the training problems' reference solutions in every minibatch (PPOConfig.ptx_coef, PPO-ptx; the demo's is 0)"})
    verifier_coef: float | None = field(default=None, metadata={"help": "outcome reward of a right answer (PPOConfig.verifier_coef; 0 with --ppo_modes outcome: no advantage at all, the control of --ptx_coef alone)"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "solution length limit in tokens, of the rollouts and of every accuracy (the demo's is 64; longer presets need more)"})
    validation_seed: int | None = field(default=None, metadata={"help": "judge on fresh problems of this seed (--ppo_eval_problems of them) instead of the demo's held-out problems"})
    policy: str | None = field(default=None, metadata={"help": "SFT policy to start from (a path; default the shipped prm/assets/demo/policy)"})
    reward: str | None = field(default=None, metadata={"help": "reward model of the dense modes (a path; default the shipped prm/assets/demo/reward, which reads the text, so it scores any policy's samples)"})


def validation_problems(config, train, heldout, seed: int, count: int, trained_on: frozenset[str] = frozenset()) -> list:
    """`count` problems of `seed` that are neither training (this run's, the shipped models' or
    `trained_on`: the given policy's) nor demo held-out questions."""
    from commands.demo import shipped_training_questions, unseen_problems

    problems = unseen_problems(4 * count + 100, config.preset, seed, {p.question for p in train}
                               | {p.question for p in heldout} | shipped_training_questions() | trained_on)
    if len(problems) < count:
        raise RuntimeError(f"only {len(problems)} unseen validation problems for seed {seed}")
    return problems[:count]


def main(argv: list[str] | None = None) -> dict:
    from transformers import HfArgumentParser

    import torch

    from commands.demo import (ASSETS, PPO_SETTINGS, DemoConfig, make_problems, run_ppo, shipped_training_questions,
                               training_questions, write_problems)
    from commands.workers import worker_pool
    from commands.demo_report import _ppo_summary
    from generation.loading import load_policy
    from prm.sft import heldout_accuracy

    config, overrides = HfArgumentParser((DemoConfig, PPOSettingsArgs)).parse_args_into_dataclasses(args=argv)
    run = Path(config.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    policy_dir = Path(overrides.policy) if overrides.policy else ASSETS / "policy"
    # Another SFT run's policy may have been trained on other problems (another seed, more of them).
    trained_on = training_questions(policy_dir) if overrides.policy else frozenset()
    train, heldout = make_problems(config, shipped_training_questions() | trained_on)
    judged = heldout[: config.ppo_eval_problems]
    if overrides.validation_seed is not None:
        judged = validation_problems(config, train, heldout, overrides.validation_seed, config.ppo_eval_problems,
                                     trained_on)
    judged_file = write_problems(judged, run / ("validation_problems.jsonl" if overrides.validation_seed is not None
                                                else "heldout_problems.jsonl"))
    train_file = write_problems(train, run / "train_problems.jsonl")
    reward_dir = Path(overrides.reward) if overrides.reward else ASSETS / "reward"
    model, tokenizer = load_policy(str(policy_dir))
    renamed = {"rollout_temperature": "temperature"}
    settings = {renamed.get(key, key): value for key, value in asdict(overrides).items()
                if value is not None and key not in ("validation_seed", "policy", "reward")}
    start = heldout_accuracy(model, tokenizer, judged, temperature=0.0,
                             max_new_tokens=settings.get("max_new_tokens", PPO_SETTINGS["max_new_tokens"]))
    with worker_pool(config.workers, "cuda" if torch.cuda.is_available() else "cpu") as pool:
        curves = run_ppo(config, run, policy_dir, reward_dir, train_file, judged_file, start, settings, pool)
    summary = _ppo_summary(curves)
    (run / "ppo.json").write_text(json.dumps({"start": start, "policy": str(policy_dir), "reward": str(reward_dir),
                                              "settings": settings,
                                              "validation_seed": overrides.validation_seed, "curves": curves,
                                              "summary": summary}, indent=2) + "\n")
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
