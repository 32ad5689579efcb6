"""Rejection-sampling fine-tuning (RFT) of the demo's policy, filtered by outcome or by process.

    python experiments/rft_baseline.py --output_dir runs/rft          # 1024 problems x 8 samples, 4 runs
    python experiments/rft_baseline.py --rft_filters outcome,checker --rft_lr 3e-4 --output_dir runs/rft-3e-4

From the shipped SFT policy (prm/assets/demo/policy): sample `--rft_samples` solutions at
`--rft_temperature` for the first `--rft_problems` training problems of the demo and keep the
distinct ones whose final answer is right (`verifiers.is_correct`; `--rft_distinct false` keeps repeats too,
as an online update sees them). Each filter then fine-tunes the
policy with `prm sft` (`--rft_steps`, `--rft_lr`) on what it keeps of those:

- `outcome`: every right-answer solution (what an outcome reward accepts);
- `checker`: those with no step the sympy checker finds false (`verify_solution`);
- `prm+checker`: those the checker passes and whose every step the shipped PRM scores >= 0.5;
- `reference`: the reference solutions of the same problems (the control: more SFT).

All are judged by greedy accuracy on the validation set of `experiments/demo_ppo.py`
(`--validation_seed`, `--ppo_eval_problems` fresh problems that are neither training nor demo
held-out questions), so the demo's held-out problems are not tuned on. The right-answer samples
are kept in <output_dir>/right_samples.jsonl and reused by a later run with the same sampling
settings. Writes <output_dir>/rft.json and prints a table.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

FILTERS = ("outcome", "checker", "prm+checker", "reference")


@dataclass
class RFTArgs:
    """How the policy's own samples are drawn, filtered and trained on."""

    rft_problems: int = field(default=1024, metadata={"help": "training problems to sample"})
    rft_samples: int = field(default=8, metadata={"help": "samples per problem"})
    rft_temperature: float = field(default=0.8, metadata={"help": "sampling temperature (the demo's best-of-N one)"})
    rft_filters: str = field(default=",".join(FILTERS), metadata={"help": f"comma-separated, of {', '.join(FILTERS)}"})
    rft_steps: int = field(default=200, metadata={"help": "fine-tuning steps (batch 32) of every filter"})
    rft_lr: float = field(default=1e-4, metadata={"help": "peak learning rate of the fine-tuning"})
    rft_warmup_steps: int = field(default=20, metadata={"help": "linear warmup steps of the fine-tuning (then cosine decay)"})
    rft_distinct: bool = field(default=True, metadata={"help": "keep each right-answer solution once per problem (false: every right sample, repeats included, as an online update sees them)"})
    rft_seed: int = field(default=0, metadata={"help": "seed of the sampling and of the fine-tuning (the problems stay the demo's)"})
    validation_seed: int = field(default=777, metadata={"help": "seed of the validation problems (as demo_ppo.py)"})


def write_records(records: list[dict], path: Path) -> Path:
    with path.open("w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def right_samples(run: Path, problems: list, args: RFTArgs, seed: int) -> tuple[list[dict], dict]:
    """The (distinct, by default) right-answer samples ({question, answer, steps}) and sampling statistics,
    drawn once and kept in run/right_samples.jsonl for later runs with the same settings."""
    from commands.demo import ASSETS, demo_policy, sample_solutions, solution_steps
    from verifiers import is_correct

    settings = {"problems": len(problems), "samples": args.rft_samples, "temperature": args.rft_temperature, "seed": seed,
                "distinct": args.rft_distinct}
    cache, stats_file = run / "right_samples.jsonl", run / "right_samples.stats.json"
    if cache.is_file() and stats_file.is_file() and json.loads(stats_file.read_text())["settings"] == settings:
        return [json.loads(line) for line in cache.open()], json.loads(stats_file.read_text())
    policy = demo_policy(str(ASSETS / "policy"), "cpu", args.rft_temperature, seed)
    texts, _ = sample_solutions(policy, problems, args.rft_samples)
    right, solved, kept = 0, 0, []
    for problem, samples in zip(problems, texts):
        correct = [text for text in samples if is_correct(problem.answer, text)]
        right, solved = right + len(correct), solved + bool(correct)
        for text in (dict.fromkeys(correct) if args.rft_distinct else correct):  # in sampling order
            kept.append({"question": problem.question, "answer": problem.answer, "steps": solution_steps(text)})
    stats = {"settings": settings, "sample_accuracy": right / (len(problems) * args.rft_samples),
             "solved_problems": solved / len(problems), "right_kept": len(kept)}
    write_records(kept, cache)
    stats_file.write_text(json.dumps(stats, indent=2) + "\n")
    return kept, stats


def filtered(records: list[dict], name: str) -> list[dict]:
    """The records a filter keeps (see the module docstring)."""
    from commands.demo import ASSETS, demo_scorer
    from verifiers import verify_solution

    if name == "outcome":
        return records
    clean = [r for r in records if not any(v.ok is False for v in verify_solution(r["question"], r["steps"], r["answer"]).steps)]
    if name == "checker":
        return clean
    # The reward model reads the bare question, as PPO and the demo give it (not the policy's prompt).
    scores = demo_scorer(str(ASSETS / "reward"), "cpu").score_steps_batch([r["question"] for r in clean],
                                                                          [r["steps"] for r in clean])
    return [r for r, row in zip(clean, scores) if min(row) >= 0.5]


def fine_tuned_accuracy(data: Path, output_dir: Path, args: RFTArgs, seed: int, judged: list) -> float:
    """Greedy accuracy on `judged` of the shipped policy fine-tuned on `data` with `prm sft`."""
    from commands.demo import ASSETS
    from generation.loading import load_policy
    from prm.sft import SFTConfig, heldout_accuracy, train_sft

    output = train_sft(SFTConfig(data=str(data), model=str(ASSETS / "policy"), output_dir=str(output_dir),
                                 max_steps=args.rft_steps, lr=args.rft_lr, warmup_steps=min(args.rft_warmup_steps, args.rft_steps),
                                 n_eval=0, seed=seed, save_every=0, overwrite_output_dir=True))
    model, tokenizer = load_policy(str(output))
    return heldout_accuracy(model, tokenizer, judged, temperature=0.0, max_new_tokens=64)


def main(argv: list[str] | None = None) -> dict:
    from transformers import HfArgumentParser

    from commands.demo import ASSETS, DemoConfig, make_problems, shipped_training_questions
    from demo_ppo import validation_problems
    from generation.loading import load_policy
    from prm.sft import heldout_accuracy

    config, args = HfArgumentParser((DemoConfig, RFTArgs)).parse_args_into_dataclasses(args=argv)
    names = [name.strip() for name in args.rft_filters.split(",") if name.strip()]
    unknown = [name for name in names if name not in FILTERS]
    if unknown:
        raise SystemExit(f"--rft_filters: unknown {unknown}; choose from {', '.join(FILTERS)}")
    run = Path(config.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    train, heldout = make_problems(config, shipped_training_questions())
    judged = validation_problems(config, train, heldout, args.validation_seed, config.ppo_eval_problems)
    problems = train[: args.rft_problems]
    right, stats = right_samples(run, problems, args, args.rft_seed)
    model, tokenizer = load_policy(str(ASSETS / "policy"))
    results = {"start": heldout_accuracy(model, tokenizer, judged, temperature=0.0, max_new_tokens=64),
               "sampling": stats, "settings": asdict(args), "validation_problems": len(judged), "runs": {}}
    references = [{"question": p.question, "answer": p.answer, "steps": list(p.steps)} for p in problems]
    reference_steps = {r["question"]: r["steps"] for r in references}
    for name in names:
        records = references if name == "reference" else filtered(right, name)
        row = results["runs"][name] = {"solutions": len(records), "accuracy": None, "not_the_reference":
                                       sum(r["steps"] != reference_steps[r["question"]] for r in records)}
        if records:  # else nothing to fine-tune on
            row["accuracy"] = fine_tuned_accuracy(write_records(records, run / f"{name}.jsonl"), run / name, args,
                                                  args.rft_seed, judged)
        (run / "rft.json").write_text(json.dumps(results, indent=2) + "\n")  # after every filter: a stop keeps the rest
    print(f"samples right {stats['sample_accuracy']:.3f}, problems solved by some sample {stats['solved_problems']:.3f}, "
          f"{stats['right_kept']} right-answer solutions kept ({'distinct' if args.rft_distinct else 'repeats included'}); SFT start {results['start']:.3f} "
          f"on {len(judged)} validation problems (seed {args.validation_seed})")
    print("| fine-tuned on | solutions | of them not the reference | validation accuracy (greedy) |\n|---|---|---|---|")
    for name, row in results["runs"].items():
        shown = "not trained (no solution kept)" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        print(f"| {name} | {row['solutions']} | {row['not_the_reference']} | {shown} |")
    return results


if __name__ == "__main__":
    main()
