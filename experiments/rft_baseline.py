"""Rejection-sampling fine-tuning (RFT) of the demo's policy: the baseline PPO has to beat.

    python experiments/rft_baseline.py --output_dir runs/rft                       # 1024 problems x 8 samples
    python experiments/rft_baseline.py --rft_lr 3e-4 --rft_steps 300 --output_dir runs/rft-3e-4

From the shipped SFT policy (prm/assets/demo/policy): sample `--rft_samples` solutions at
`--rft_temperature` for the first `--rft_problems` training problems of the demo, keep the distinct
ones whose answer is right (`verifiers.is_correct`), and fine-tune the policy on them with
`prm sft` (`--rft_steps`, `--rft_lr`). The control fine-tunes the same way on the reference
solutions of the same problems ("more SFT"). Both are judged by greedy accuracy on the validation
set of `experiments/demo_ppo.py` (`--validation_seed`, `--ppo_eval_problems` fresh problems that
are neither training nor demo held-out questions), so the demo's held-out problems are not tuned on.
Writes <output_dir>/rft.json and prints a table.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@dataclass
class RFTArgs:
    """How the policy's own samples are drawn, filtered and trained on."""

    rft_problems: int = field(default=1024, metadata={"help": "training problems to sample"})
    rft_samples: int = field(default=8, metadata={"help": "samples per problem"})
    rft_temperature: float = field(default=0.8, metadata={"help": "sampling temperature (the demo's best-of-N one)"})
    rft_steps: int = field(default=200, metadata={"help": "fine-tuning steps (batch 32) for RFT and for the control"})
    rft_lr: float = field(default=1e-4, metadata={"help": "peak learning rate of the fine-tuning"})
    validation_seed: int = field(default=777, metadata={"help": "seed of the validation problems (as demo_ppo.py)"})


def write_records(records: list[dict], path: Path) -> Path:
    with path.open("w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def main(argv: list[str] | None = None) -> dict:
    from transformers import HfArgumentParser

    from commands.demo import (ASSETS, DemoConfig, demo_policy, make_problems, sample_solutions,
                               shipped_training_questions, solution_steps)
    from demo_ppo import validation_problems
    from generation.loading import load_policy
    from prm.sft import SFTConfig, heldout_accuracy, train_sft
    from verifiers import is_correct

    config, args = HfArgumentParser((DemoConfig, RFTArgs)).parse_args_into_dataclasses(args=argv)
    run = Path(config.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    train, heldout = make_problems(config, shipped_training_questions())
    judged = validation_problems(config, train, heldout, args.validation_seed, config.ppo_eval_problems)
    problems = train[: args.rft_problems]
    policy = demo_policy(str(ASSETS / "policy"), "cpu", args.rft_temperature, config.seed)
    texts, _ = sample_solutions(policy, problems, args.rft_samples)
    correct, kept = 0, []
    for problem, samples in zip(problems, texts):
        right = [text for text in samples if is_correct(problem.answer, text)]
        correct += len(right)
        for text in dict.fromkeys(right):  # distinct solutions, in sampling order
            kept.append({"question": problem.question, "answer": problem.answer, "steps": solution_steps(text)})
    data = {
        "rft": write_records(kept, run / "rft_samples.jsonl"),
        "reference": write_records([{"question": p.question, "answer": p.answer, "steps": list(p.steps)}
                                    for p in problems], run / "references.jsonl"),
    }
    model, tokenizer = load_policy(str(ASSETS / "policy"))
    results = {"start": heldout_accuracy(model, tokenizer, judged, temperature=0.0, max_new_tokens=64),
               "sample_accuracy": correct / (len(problems) * args.rft_samples),
               "solved_problems": sum(any(is_correct(p.answer, t) for t in s) for p, s in zip(problems, texts)) / len(problems),
               "kept_solutions": len(kept), "settings": vars(args), "validation_problems": len(judged)}
    for name, path in data.items():
        output = train_sft(SFTConfig(data=str(path), model=str(ASSETS / "policy"), output_dir=str(run / name),
                                     max_steps=args.rft_steps, lr=args.rft_lr, warmup_steps=min(20, args.rft_steps),
                                     n_eval=0, seed=config.seed, save_every=0, overwrite_output_dir=True))
        model, tokenizer = load_policy(str(output))
        results[name] = heldout_accuracy(model, tokenizer, judged, temperature=0.0, max_new_tokens=64)
    (run / "rft.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"samples right {results['sample_accuracy']:.3f}, problems solved by some sample {results['solved_problems']:.3f}, "
          f"{len(kept)} distinct right solutions kept")
    print("| policy | validation accuracy (greedy) |\n|---|---|")
    print(f"| SFT start | {results['start']:.3f} |\n| + RFT on its right samples | {results['rft']:.3f} |\n"
          f"| + SFT on the references (control) | {results['reference']:.3f} |")
    return results


if __name__ == "__main__":
    main()
