"""What each PPO run's policy gets right and wrong on held-out problems, by kind.

    python experiments/ppo_error_kinds.py --problems RUN/heldout_problems.jsonl \
        --policies START RUN/ppo/outcome-seed0/policy RUN/ppo/dense-seed0/policy ...

Every policy answers every problem greedily (as the accuracy of `prm ppo` and the demo is taken).
A solution is then put in one of five kinds, by the sympy checker and by the reference steps:

- right, every step the reference's;
- right, through another step in which the checker finds no false step;
- right, through a step the checker finds false (an outcome reward pays for these);
- wrong, with a false step the checker finds (an arithmetic slip);
- wrong, every step the checker can check true (a true equation on the wrong number or
  operation, or a dropped step: what the checker cannot see).

With `--prm`, also how a reward model scores each policy's first false steps against the
checked-true steps before them (the contrast a dense step reward needs).

Prints a table (with the problems each policy has right that the first has wrong, and the
reverse) and writes `--output` JSON: the kind of every solution and three examples of each kind.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

KINDS = ("right, the reference's steps", "right, another step", "right, a false step", "wrong, a false step found",
         "wrong, no false step found")


@dataclass
class ErrorKindsArgs:
    """Options (also the Python API: `main([...])`)."""

    problems: str = field(metadata={"help": "problems JSONL with reference steps (a demo_ppo run's heldout_problems.jsonl)"})
    policies: list[str] = field(metadata={"help": "policy directories to compare (the SFT start first)"})
    max_new_tokens: int = field(default=64, metadata={"help": "solution length limit, as the PPO runs sampled"})
    prm: str | None = field(default=None, metadata={"help": "also score the solutions with this reward model: how it scores the first false steps the checker finds, against the checked-true steps before them"})
    output: str = field(default="ppo_error_kinds.json", metadata={"help": "where the counts and examples go"})


def solution_kind(steps: list[str], verdicts: list, reference_steps: list[str], answer: str) -> str:
    """One of KINDS for a solution's steps and their checker verdicts (`verify_solution(...).steps`,
    no reference), given the reference steps and answer."""
    from commands.demo import reference_step_labels
    from verifiers import is_correct

    false_step = any(v.ok is False for v in verdicts)
    if is_correct(answer, "\n".join(steps)):
        if len(steps) == len(reference_steps) and all(reference_step_labels(steps, reference_steps)):
            return KINDS[0]
        return KINDS[2] if false_step else KINDS[1]
    return KINDS[3] if false_step else KINDS[4]


def first_error_scores(verdicts: list, scores: list[float]) -> tuple[list[float], list[float]]:
    """(scores of the checked-true steps before the first false step, [the first false step's
    score] or []), the final answer step left out: what a step reward must tell apart."""
    true_steps = []
    for verdict, score in zip(verdicts[:-1], scores):
        if verdict.ok is False:
            return true_steps, [score]
        if verdict.ok:
            true_steps.append(score)
    return true_steps, []


def main(argv: list[str] | None = None) -> dict:
    from transformers import HfArgumentParser

    from generation.loading import load_policy
    from generation.policy import HFPolicy
    from prm.metrics import step_auc
    from tasks.math.prompts import policy_prompt
    from tasks.math.records import read_problems
    from tasks.math.steps import split_steps
    from verifiers import verify_solution

    args, = HfArgumentParser(ErrorKindsArgs).parse_args_into_dataclasses(args=argv)
    problems = read_problems(args.problems, require_steps=True)
    results = {"problems": args.problems, "prm": args.prm, "policies": {}}
    scorer = None
    if args.prm:
        import prm

        scorer = prm.load(args.prm)
    for path in args.policies:
        model, tokenizer = load_policy(path)
        model.eval()
        policy = HFPolicy(model, tokenizer, temperature=0.0, max_new_tokens=args.max_new_tokens, batch_size=64)
        texts = [t[0] for t in policy.complete([policy_prompt(p.question) for p in problems], 1)]
        counts = dict.fromkeys(KINDS, 0)
        examples: dict[str, list] = {kind: [] for kind in KINDS}
        kinds = []
        solutions = [split_steps(text, "lines") for text in texts]
        verdicts = [verify_solution(None, steps, reference=None).steps for steps in solutions]
        for problem, steps, checked in zip(problems, solutions, verdicts):
            kind = solution_kind(steps, checked, list(problem.steps), problem.answer)
            counts[kind] += 1
            kinds.append(KINDS.index(kind))
            if len(examples[kind]) < 3 and kind != KINDS[0]:
                examples[kind].append({"question": problem.question, "reference": list(problem.steps), "solution": steps})
        right = [kind < 3 for kind in kinds]
        results["policies"][path] = {"counts": counts, "accuracy": sum(right) / len(problems), "examples": examples,
                                     "kinds": kinds}
        if scorer is not None:
            scored = [i for i, steps in enumerate(solutions) if steps]
            all_scores = scorer.score_steps_batch([problems[i].question for i in scored], [solutions[i] for i in scored])
            true_scores, false_scores = [], []
            for i, scores in zip(scored, all_scores):
                before, first_false = first_error_scores(verdicts[i], scores)
                true_scores += before
                false_scores += first_false
            results["policies"][path]["prm_scores"] = {
                "true_steps": len(true_scores), "first_false_steps": len(false_scores),
                "mean_true": sum(true_scores) / max(len(true_scores), 1),
                "mean_first_false": sum(false_scores) / max(len(false_scores), 1),
                "first_false_at_least_half": sum(x >= 0.5 for x in false_scores),
                "auc": step_auc(true_scores + false_scores, [1.0] * len(true_scores) + [0.0] * len(false_scores))}
    first = results["policies"][args.policies[0]]["kinds"]
    for row in results["policies"].values():  # against the first policy (the start): what changed
        row["fixed"] = sum(a >= 3 and b < 3 for a, b in zip(first, row["kinds"]))
        row["broken"] = sum(a < 3 and b >= 3 for a, b in zip(first, row["kinds"]))
    Path(args.output).write_text(json.dumps(results, indent=1) + "\n")
    print("| policy | accuracy | " + " | ".join(KINDS) + " | right, wrong at the first policy | wrong, right there |")
    print("|---|---|" + "---|" * (len(KINDS) + 2))
    for path, row in results["policies"].items():
        print(f"| {path} | {row['accuracy']:.3f} | " + " | ".join(str(row["counts"][k]) for k in KINDS)
              + f" | {row['fixed']} | {row['broken']} |")
    if scorer is not None:
        print(f"\n{args.prm} on the steps up to the first false one (final answer steps left out):\n")
        print("| policy | true steps, mean score | first false steps, mean score | of them scored >= 0.5 | AUC |")
        print("|---|---|---|---|---|")
        for path, row in results["policies"].items():
            stats = row["prm_scores"]
            print(f"| {path} | {stats['true_steps']}, {stats['mean_true']:.2f} | {stats['first_false_steps']}, "
                  f"{stats['mean_first_false']:.2f} | {stats['first_false_at_least_half']} | {stats['auc']:.3f} |")
    return results


if __name__ == "__main__":
    main()
