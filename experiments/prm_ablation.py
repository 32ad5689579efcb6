"""What makes a tiny PRM check steps: the ablation behind the demo's reward-model recipe.

Data: every training problem (synthetic preset "tiny", seed 0) gives its reference solution and
--corruptions corrupted ones (kinds drawn uniformly, `tasks.math.synthetic.corrupt`). The PRM
starts from the demo's shipped SFT policy and trains --steps steps (batch 32, lr 1e-3) in four
variants, each adding one thing:

    plain        `prm train` as it was
    +lm          --lm_coef 1 (next-token loss on the tokens of correct steps)
    +likelihood  --likelihood_features (the model's own step log-probabilities feed the step logit)
    +first_wrong --first_wrong_only (no labels after a solution's first wrong step)

Evaluation on --eval_problems problems of seed 99991 whose questions are not training questions
(the generator repeats questions: about a quarter of seed 99991's are seed 0's): for each error kind, the
AUC of the first wrong step of a corrupted solution against every step of the reference
solutions, and the mean score of correct steps per position (a PRM that learned the position of a
step, not its truth, scores later correct steps lower).

    python experiments/prm_ablation.py                          # about 12 minutes on 2 CPU cores
    python experiments/prm_ablation.py --problems 50 --steps 5 --eval_problems 20 --output_dir runs/ablation-smoke

Writes <output_dir>/results.json and prints a table. A variant already trained in output_dir is
reused (delete its folder to retrain).
"""

from __future__ import annotations

import json
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {
    "plain": {},
    "+lm": {"lm_coef": 1.0},
    "+likelihood": {"lm_coef": 1.0, "likelihood_features": True},
    "+first_wrong": {"lm_coef": 1.0, "likelihood_features": True, "first_wrong_only": True},
}
KINDS = ("arithmetic_slip", "wrong_operation", "wrong_number", "dropped_step")


@dataclass
class AblationConfig:
    """Options of the ablation."""

    output_dir: str = field(default="runs/prm_ablation", metadata={"help": "data, models and results.json go here"})
    problems: int = field(default=7967, metadata={"help": "training problems (each: reference + corruptions)"})
    corruptions: int = field(default=3, metadata={"help": "corrupted solutions per training problem"})
    steps: int = field(default=1000, metadata={"help": "reward-model training steps per variant"})
    eval_problems: int = field(default=400, metadata={"help": "held-out problems (seed 99991, no training question)"})
    variants: str = field(default=",".join(VARIANTS), metadata={"help": "comma-separated subset of the variants"})
    policy: str = field(default="", metadata={"help": "backbone to start from (default: the demo's shipped policy)"})


def write_data(path: Path, n: int, corruptions: int) -> None:
    from tasks.math.synthetic import corrupt, generate_problems

    rng = random.Random(0)
    with path.open("w") as handle:
        for problem in generate_problems(n, "tiny", seed=0):
            handle.write(json.dumps({"prompt": problem.question, "completions": list(problem.steps),
                                     "labels": [True] * len(problem.steps)}) + "\n")
            for _ in range(corruptions):
                try:
                    wrong = corrupt(problem, rng.choice(KINDS), rng=rng)
                except ValueError:  # a kind that this problem cannot take
                    continue
                labels = [i < wrong.first_wrong for i in range(len(wrong.steps))]
                handle.write(json.dumps({"prompt": problem.question, "completions": list(wrong.steps),
                                         "labels": labels}) + "\n")


def evaluation_problems(n: int, n_training: int) -> list:
    """The first `n` distinct problems of seed 99991 whose question is none of the `n_training`
    training problems' (seed 0)."""
    from commands.demo import unseen_problems
    from tasks.math.synthetic import generate_problems

    taken = {p.question for p in generate_problems(n_training, "tiny", seed=0)}
    count = n
    while True:  # draw more until n are left: a larger draw keeps the smaller one's problems first
        problems = unseen_problems(count, "tiny", 99991, taken)
        if len(problems) >= n:
            return problems[:n]
        count *= 2


def evaluate(model_dir: Path, problems: list) -> dict:
    import numpy as np

    import prm
    from prm.metrics import step_auc
    from tasks.math.synthetic import corrupt

    scorer = prm.load(str(model_dir))
    correct = scorer.score_steps_batch([p.question for p in problems], [list(p.steps) for p in problems])
    flat = [x for row in correct for x in row]
    by_position: dict[int, list[float]] = {}
    for row in correct:
        for index, value in enumerate(row):
            by_position.setdefault(index + 1, []).append(value)
    result = {"correct_step_mean_by_position": {k: float(np.mean(v)) for k, v in sorted(by_position.items())}}
    for kind in KINDS:
        rng = random.Random(1)
        cases = []
        for problem in problems:
            try:
                wrong = corrupt(problem, kind, rng=rng)
            except ValueError:
                continue
            cases.append((problem.question, list(wrong.steps), wrong.first_wrong))
        scores = scorer.score_steps_batch([q for q, _, _ in cases], [s for _, s, _ in cases])
        first_wrong = [row[index] for row, (_, _, index) in zip(scores, cases)]
        result[kind] = step_auc(first_wrong + flat, [0.0] * len(first_wrong) + [1.0] * len(flat))
    return result


def main(argv: list[str] | None = None) -> dict:
    from transformers import HfArgumentParser

    from prm.train import TrainConfig, train

    (config,) = HfArgumentParser(AblationConfig).parse_args_into_dataclasses(args=argv)
    root = Path(config.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    data = root / "train.jsonl"
    if not data.exists():
        write_data(data, config.problems, config.corruptions)
    policy = config.policy or str(Path(__file__).resolve().parents[1] / "prm" / "assets" / "demo" / "policy")
    problems = evaluation_problems(config.eval_problems, config.problems)
    results = {}
    for name in [v.strip() for v in config.variants.split(",") if v.strip()]:
        out = root / name.strip("+")
        if not (out / "config.json").exists():
            train(TrainConfig(data=str(data), model=policy, output_dir=str(out), objective="prm", batch_size=32,
                              max_steps=config.steps, lr=1e-3, eval_every=0, seed=0, overwrite_output_dir=True,
                              **VARIANTS[name]))
        results[name] = evaluate(out, problems)
    (root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| variant | " + " | ".join(KINDS) + " | correct-step mean by position |")
    print("|---|" + "---|" * (len(KINDS) + 1))
    for name, row in results.items():
        positions = ", ".join(f"{v:.2f}" for v in row["correct_step_mean_by_position"].values())
        print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in KINDS) + f" | {positions} |")
    return results


if __name__ == "__main__":
    main()
