"""SmolLM2-135M-Instruct, offline, as policy and PRM backbone: best-of-N with a sympy filter, a PRM and an ORM.

The recipe, top to bottom (each phase writes under --output_dir and is skipped or continued
when the script is run again, so an interrupted run resumes where it stopped):

1. problems.jsonl: two slices, each split into disjoint training and held-out problems:
   synthetic word problems (`tasks.math.synthetic`, preset --preset) and the easiest GSM8K
   train problems (fewest reference steps, then smallest numbers; --gsm8k PATH);
2. samples.jsonl: --n_samples solutions per problem from the policy (chat template, one step
   a line, temperature 0.7), one line appended per problem;
3. labels.jsonl: every sampled step labelled automatically (`verifiers.labelling.label_many`:
   sympy claims, final answer vs reference; Monte Carlo rollouts with --n_rollouts > 0),
   plus claims.json: the share of steps with a false claim and examples with reasons;
4. reward_model/: one LoRA model with a step head (PRM) and an outcome head (ORM), objective
   "joint", trained on the training problems' samples plus reference solutions and their
   corruptions (`tasks.math.synthetic.corrupt`, synthetic problems only), checkpointed;
5. results_<slice>.md / .json / .png: held-out accuracy over N = 1..n_samples (a solution's
   answer is the one its last step states, as in the labels) of pass@1,
   majority, weighted majority, the verifier filter, ORM, PRM (min/prod/last) and the oracle,
   several subsampling seeds (mean ± std), and how much of the pass@1 -> oracle gap each closes.

    python experiments/smollm2_gsm8k.py                       # the documented run
    python experiments/smollm2_gsm8k.py --n_train_synthetic 2 --n_test_synthetic 2 \\
        --n_train_gsm8k 0 --n_test_gsm8k 0 --n_samples 2 --train_steps 5 --output_dir runs/smoke
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Runnable as a plain script from the repository root or from anywhere.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import verifiers  # noqa: E402
from tasks.math.prompts import policy_prompt  # noqa: E402
from tasks.math.steps import split_steps  # noqa: E402

SLICES = ("synthetic", "gsm8k")
PRM_AGGREGATIONS = ("min", "prod", "last")
# What an empty or step-less sample is scored and labelled as (it states no answer).
EMPTY_SOLUTION = "(no answer)"


@dataclass
class ExperimentConfig:
    """Options of the SmolLM2 best-of-N experiment (each field is a command-line flag)."""

    policy: str = field(default="smollm2-135m-instruct", metadata={"help": "Policy model: alias, path or hub id"})
    backbone: str = field(default="smollm2-135m-instruct", metadata={"help": "PRM/ORM backbone (LoRA): alias, path or hub id"})
    gsm8k: str = field(default="../shared/data/gsm8k/train.jsonl", metadata={"help": "GSM8K train JSONL (question, answer)"})
    preset: str = field(default="tiny", metadata={"help": "Synthetic task preset"})
    n_train_synthetic: int = field(default=12, metadata={"help": "Synthetic training problems (sampled)"})
    n_test_synthetic: int = field(default=12, metadata={"help": "Synthetic held-out problems"})
    n_train_gsm8k: int = field(default=4, metadata={"help": "GSM8K training problems (sampled)"})
    n_test_gsm8k: int = field(default=4, metadata={"help": "GSM8K held-out problems"})
    n_reference_synthetic: int = field(default=40, metadata={"help": "Extra synthetic problems whose reference and corrupted solutions join the training data (never sampled)"})
    n_samples: int = field(default=16, metadata={"help": "Solutions sampled per problem (N max)"})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature"})
    max_new_tokens: int = field(default=64, metadata={"help": "Token limit of one sampled solution"})
    batch_size: int = field(default=32, metadata={"help": "Rows per policy forward (problems per batch = batch_size // n_samples)"})
    n_rollouts: int = field(default=0, metadata={"help": "Monte Carlo rollouts per unverifiable step when labelling (0 = outcome fallback)"})
    train_steps: int = field(default=64, metadata={"help": "Optimizer steps of the PRM/ORM"})
    train_batch_size: int = field(default=8, metadata={"help": "Sequences per training batch"})
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate (LoRA)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    max_length: int = field(default=192, metadata={"help": "Token limit of a training sequence"})
    seeds: str = field(default="0,1,2,3,4", metadata={"help": "Subsampling seeds of the accuracy curves"})
    n_subsets: int = field(default=16, metadata={"help": "Random subsets per problem, N and seed"})
    seed: int = field(default=0, metadata={"help": "Seed of problem choice, sampling and training"})
    output_dir: str = field(default="runs/smollm2_gsm8k", metadata={"help": "Where every phase writes"})
    progress: bool = field(default=True, metadata={"help": "Show tqdm progress bars"})


# ------------------------------------------------------------------------------ helpers
def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_jsonl(path: Path, record: dict) -> None:
    # One flushed line per record: an interruption loses at most the record being written.
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def solution_steps(text: str) -> list[str]:
    """A sampled solution's steps: its non-empty lines (the policy is asked for one step a
    line), up to the first line that states an answer ("The answer is X", "#### X",
    \\boxed{X}). The model often keeps talking after it; labels, scores and the answer
    reranking reads all stop there, so they judge the same solution."""
    steps = split_steps(text, style="lines")
    for index, step in enumerate(steps):
        if verifiers.extract_answer(step, fallback_last_number=False) is not None:
            return steps[: index + 1]
    return steps or [EMPTY_SOLUTION]


def _largest_number(text: str) -> float:
    numbers = [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)]
    return max(numbers, default=0.0)


# ------------------------------------------------------------------------------ 1. problems
def choose_problems(config: ExperimentConfig) -> list[dict]:
    """Problem records `{id, slice, split, question, reference, steps}`, training then held-out."""
    from tasks.math.synthetic import generate_problems

    records = []
    n_synthetic = config.n_train_synthetic + config.n_test_synthetic
    synthetic = generate_problems(n_synthetic + config.n_reference_synthetic, preset=config.preset, seed=config.seed)
    seen: set[str] = set()
    unique = []
    for problem in synthetic:  # the generator may repeat a question; keep the splits disjoint
        if problem.question not in seen:
            seen.add(problem.question)
            unique.append(problem)
    if len(unique) < n_synthetic:
        raise ValueError(f"preset {config.preset!r} gave only {len(unique)} distinct problems, need {n_synthetic}")
    for index, problem in enumerate(unique):
        split = ("train" if index < config.n_train_synthetic else "test" if index < n_synthetic else "reference")
        records.append({"id": problem.id, "slice": "synthetic", "split": split, "question": problem.question,
                        "reference": problem.answer, "steps": list(problem.steps)})

    n_gsm8k = config.n_train_gsm8k + config.n_test_gsm8k
    if n_gsm8k:
        path = Path(config.gsm8k)
        if not path.exists():
            raise FileNotFoundError(
                f"GSM8K train file not found: {path} (a JSONL of {{question, answer}} as in openai/gsm8k). "
                "Pass --gsm8k PATH, or --n_train_gsm8k 0 --n_test_gsm8k 0 to run the synthetic slice only."
            )
        from tasks.math.loaders import load_gsm8k

        data = load_gsm8k(str(path))
        # Easiest first: fewest reference steps, then the smallest numbers in question and steps.
        order = sorted(range(len(data)), key=lambda i: (
            len(data[i]["completions"]),
            max(_largest_number(data[i]["prompt"]), _largest_number(" ".join(data[i]["completions"]))),
            i,
        ))[:n_gsm8k]
        random.Random(f"gsm8k-split/{config.seed}").shuffle(order)
        for position, row_index in enumerate(order):
            row = data[row_index]
            records.append({"id": f"gsm8k-train-{row_index}", "slice": "gsm8k",
                            "split": "train" if position < config.n_train_gsm8k else "test",
                            "question": row["prompt"], "reference": str(row["reference"]),
                            "steps": list(row["completions"])})
    return records


# ------------------------------------------------------------------------------ 2. samples
def sample_solutions(policy, problems: list[dict], path: Path, config: ExperimentConfig) -> list[dict]:
    """Append `{id, texts, tokens}` per problem to `path`; problems already there are skipped."""
    from tqdm.auto import tqdm

    done = {record["id"] for record in read_jsonl(path)}
    per_batch = max(1, config.batch_size // config.n_samples)
    bar = tqdm(total=len(problems), initial=len(done), desc=f"sample {config.n_samples}/problem",
               unit="problem", disable=not config.progress)
    # Fixed chunks, each reseeded from its position: a resumed run samples every chunk it
    # still lacks exactly as a fresh run would.
    for begin in range(0, len(problems), per_batch):
        chunk = [p for p in problems[begin:begin + per_batch] if p["id"] not in done]
        if not chunk:
            continue
        policy.reseed(config.seed * 1_000_003 + begin)
        states = policy.start([policy_prompt(problem["question"]) for problem in chunk])
        groups = policy.expand(states, config.n_samples, until_step_end=False, keep_cache=False)
        for problem, group in zip(chunk, groups):
            append_jsonl(path, {"id": problem["id"], "texts": [child.text for child in group],
                                "tokens": [len(child.token_ids) for child in group]})
            bar.update()
    bar.close()
    return read_jsonl(path)


# ------------------------------------------------------------------------------ 3. labels
def label_samples(problems: list[dict], samples: dict[str, dict], path: Path, config: ExperimentConfig,
                  policy=None) -> dict[str, dict]:
    """Append `{id, steps, labels, sources, correct, false_claims}` per problem (its N samples)."""
    from tqdm.auto import tqdm

    from verifiers.labelling import label_many

    done = {record["id"]: record for record in read_jsonl(path)}
    for problem in tqdm(problems, desc="label steps", unit="problem", disable=not config.progress):
        if problem["id"] in done:
            continue
        steps_lists = [solution_steps(text) for text in samples[problem["id"]]["texts"]]
        results = label_many([(problem["question"], steps) for steps in steps_lists],
                             policy=policy if config.n_rollouts > 0 else None, n_rollouts=max(1, config.n_rollouts),
                             references=[problem["reference"]] * len(steps_lists))
        record = {
            "id": problem["id"], "steps": steps_lists,
            "labels": [[bool(label) for label in result.labels] for result in results],
            "sources": [result.sources for result in results],
            "false_claims": [[false_claims(step) if detail.symbolic is False else None
                              for step, detail in zip(steps, result.details)]
                             for steps, result in zip(steps_lists, results)],
            "correct": [bool(result.details[-1].answer_ok) for result in results],
        }
        append_jsonl(path, record)
        done[problem["id"]] = record
    return done


def false_claims(step: str) -> str:
    """The false claims of a step, each with the checker's reason ("a = b: reason; ...")."""
    found = [f"{claim.text}: {claim.reason}" for claim in verifiers.find_claims(step) if claim.ok is False]
    return "; ".join(found) or "false transition from the previous step"


def claim_report(problems: list[dict], labels: dict[str, dict], max_examples: int = 12) -> dict[str, Any]:
    """What the checker found in the sampled steps, per slice: shares and examples with reasons."""
    report: dict[str, Any] = {}
    for slice_name in SLICES:
        ids = [p["id"] for p in problems if p["slice"] == slice_name and p["id"] in labels]
        if not ids:
            continue
        steps = checked = false = 0
        solutions = solutions_with_false = correct = correct_with_false = 0
        examples = []
        for problem_id in ids:
            record = labels[problem_id]
            for solution, reasons, sources, ok in zip(record["steps"], record["false_claims"], record["sources"],
                                                      record["correct"]):
                solutions += 1
                correct += ok
                has_false = any(reason is not None for reason in reasons)
                solutions_with_false += has_false
                correct_with_false += ok and has_false
                for step, reason in zip(solution, reasons):
                    steps += 1
                    checked += verifiers.check_step(step) is not None
                    if reason is not None:
                        false += 1
                        if len(examples) < max_examples and len(step) < 160:
                            examples.append({"step": step, "reason": reason})
        report[slice_name] = {
            "problems": len(ids), "solutions": solutions, "steps": steps,
            "steps_with_checkable_claim": checked, "steps_with_false_claim": false,
            "false_claim_share_of_steps": false / max(steps, 1),
            "false_claim_share_of_checkable_steps": false / max(checked, 1),
            "solutions_with_false_claim": solutions_with_false, "correct_solutions": correct,
            "correct_solutions_with_false_claim": correct_with_false, "examples": examples,
        }
    return report


# ------------------------------------------------------------------------------ 4. reward model
def training_records(problems: list[dict], labels: dict[str, dict], seed: int) -> list[dict]:
    """Step-labelled records: every training sample with its automatic labels, every training
    problem's reference solution (all steps right) and, for synthetic problems, a corruption."""
    from tasks.math.synthetic import corrupt, generate_problems

    records = []
    for problem in problems:
        if problem["split"] == "test":
            continue
        if problem["split"] == "train":
            record = labels[problem["id"]]
            for steps, step_labels in zip(record["steps"], record["labels"]):
                records.append({"prompt": problem["question"], "completions": steps, "labels": step_labels})
        records.append({"prompt": problem["question"], "completions": problem["steps"],
                        "labels": [True] * len(problem["steps"])})
    # Corruptions need the generator's structure: rebuild the synthetic problems by id.
    synthetic_ids = {p["id"] for p in problems if p["slice"] == "synthetic" and p["split"] != "test"}
    if synthetic_ids:
        largest = max(int(i.rsplit("-", 1)[1]) for i in synthetic_ids)
        preset, generator_seed = next(p["id"] for p in problems if p["id"] in synthetic_ids).split("-")[1:3]
        rng = random.Random(f"corrupt/{seed}")
        for problem in generate_problems(largest + 1, preset=preset, seed=int(generator_seed)):
            if problem.id in synthetic_ids:
                wrong = corrupt(problem, rng=rng)
                records.append({"prompt": problem.question, "completions": list(wrong.steps),
                                "labels": [i < wrong.first_wrong for i in range(len(wrong.steps))]})
    random.Random(f"shuffle/{seed}").shuffle(records)
    return records


def train_reward_model(records: list[dict], directory: Path, config: ExperimentConfig) -> Path:
    """A joint PRM + ORM with LoRA on the backbone; resumes from its last checkpoint."""
    from prm.train import TrainConfig, train

    if (directory / "model.safetensors").exists():
        return directory
    data_path = directory.parent / "train_records.jsonl"
    if not data_path.exists():
        partial = data_path.with_suffix(".partial")
        partial.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        partial.replace(data_path)
    has_checkpoint = any((directory / "checkpoints").glob("step-*"))
    return train(TrainConfig(
        data=str(data_path), eval_fraction=0.1, model=config.backbone, output_dir=str(directory),
        objective="joint", lora_r=config.lora_r, lora_alpha=2 * config.lora_r, lr=config.lr,
        max_steps=config.train_steps, batch_size=config.train_batch_size, max_length=config.max_length,
        warmup_steps=max(1, config.train_steps // 10), eval_every=0, save_every=max(1, config.train_steps // 4),
        log_every=max(1, config.train_steps // 20), seed=config.seed, progress=config.progress,
        resume="latest" if has_checkpoint else None,
    ))


# ------------------------------------------------------------------------------ 5. rerank
class JointScores:
    """A joint PRM + ORM whose step and outcome scores come from ONE pass per pool.

    `prepare(prompt, solutions)` runs `RewardScorer.score_solutions` once (shared prompt);
    `score_best_of_n` / `score_steps` (PRM) and `score` (ORM head) then read the stored
    values, so reranking with both heads costs one forward per candidate, not two.
    """

    def __init__(self, reward_model):
        self.reward_model = reward_model
        self.separator = reward_model.encoder.separator
        self._stored: dict[tuple[str, tuple[str, ...]], tuple[list[float], float]] = {}

    def prepare(self, prompt: str, solutions: list[list[str]]) -> None:
        step_scores, outcomes = self.reward_model.score_solutions(prompt, solutions)
        for steps, scores, outcome in zip(solutions, step_scores, outcomes):
            self._stored[(prompt, tuple(steps))] = (scores, outcome)

    def _lookup(self, prompt: str, steps: list[str]) -> tuple[list[float], float]:
        key = (prompt, tuple(steps))
        if key not in self._stored:
            self.prepare(prompt, [list(steps)])
        return self._stored[key]

    def score_steps(self, prompt: str, steps: list[str]) -> list[float]:
        return self._lookup(prompt, steps)[0]

    def score_best_of_n(self, prompt: str, solutions: list[list[str]]) -> list[list[float]]:
        return [self.score_steps(prompt, steps) for steps in solutions]

    def score(self, prompt: str, completion: str) -> float:
        steps = [step for step in completion.split(self.separator) if step.strip()]
        return self._lookup(prompt, steps)[1]


def methods_for(names: list[str]) -> list[str]:
    methods = ["majority", "majority+verifier"]
    if "orm" in names:
        methods += ["orm", "weighted-orm", "orm+verifier"]
    if "prm" in names:
        methods += [f"prm-{how}" for how in PRM_AGGREGATIONS]
        methods += ["weighted-prm-min", "prm-min+verifier"]
    return methods + ["oracle"]


def gap_closed(points, pass_at_1: float, n: int) -> dict[str, float]:
    """(method at N - pass@1) / (oracle at N - pass@1) for every method at N."""
    at_n = {p.method: p.accuracy_mean for p in points if p.n == n}
    gap = at_n.get("oracle", 0.0) - pass_at_1
    return {m: (a - pass_at_1) / gap for m, a in at_n.items() if gap > 0 and m != "oracle"}


def evaluate_slice(slice_name: str, problems: list[dict], labels: dict[str, dict], scorers: dict[str, Any],
                   config: ExperimentConfig, output_dir: Path) -> dict[str, Any] | None:
    """Accuracy curves on one slice's held-out problems; writes results_<slice>.md/.json/.png."""
    from tqdm.auto import tqdm

    from search.plots import plot_accuracy_vs_n
    from search.rerank import (
        accuracy_curve, build_pool, correctness, curve_markdown, group_answers, parse_methods, powers_of_two,
    )

    held_out = [p for p in problems if p["slice"] == slice_name and p["split"] == "test"]
    if not held_out:
        return None
    ns = powers_of_two(config.n_samples)
    seeds = [int(s) for s in config.seeds.split(",") if s.strip()]
    methods = parse_methods(methods_for(list(scorers)))
    pools = []
    for problem in tqdm(held_out, desc=f"score {slice_name}", unit="problem", disable=not config.progress):
        solutions = labels[problem["id"]]["steps"]
        for scorer in {id(s): s for s in scorers.values() if isinstance(s, JointScores)}.values():
            scorer.prepare(problem["question"], solutions)
        pool = build_pool(problem["question"], solutions, scorers=scorers, methods=methods,
                          reference=problem["reference"])
        # A solution's answer is what its last step states (the prompt asks for a final
        # "The answer is X" line), as in the training labels; by default reranking would
        # fall back to the last number anywhere, which credits solutions cut off mid-way.
        pool.answers = [verifiers.extract_answer(steps[-1]) for steps in solutions]
        pool.classes = group_answers(pool.answers)
        pool.correct = correctness(pool.answers, problem["reference"])
        pools.append(pool)
    points = accuracy_curve(pools, methods, ns, seeds=seeds, n_subsets=config.n_subsets)
    # Any method at N = 1 sees every single sample once (exact), so this is pass@1.
    pass_at_1 = next(p.accuracy_mean for p in points if p.method == "majority" and p.n == 1)
    closed = gap_closed(points, pass_at_1, max(ns))
    png = output_dir / f"accuracy_vs_n_{slice_name}.png"
    plot_accuracy_vs_n(points, png)
    lines = [
        f"## {slice_name}: {len(held_out)} held-out problems, {config.n_samples} samples each",
        "", f"pass@1 (every method at N=1): {pass_at_1:.3f}", "", curve_markdown(points),
        f"Share of the pass@1 -> oracle gap closed at N={max(ns)}:", "",
        "| method | gap closed |", "|---|---:|",
        *[f"| {m} | {v:+.2f} |" for m, v in closed.items()], "",
        f"![accuracy vs N, {slice_name}]({png.name})", "",
    ]
    markdown = "\n".join(lines)
    (output_dir / f"results_{slice_name}.md").write_text(markdown, encoding="utf-8")
    result = {"slice": slice_name, "problems": len(held_out), "pass_at_1": pass_at_1, "gap_closed": closed,
              "points": [asdict(p) for p in points]}
    (output_dir / f"results_{slice_name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(markdown)
    return result


# ------------------------------------------------------------------------------ the recipe
def run(config: ExperimentConfig) -> dict[str, Any]:
    import torch

    torch.manual_seed(config.seed)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    timings_path = output_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}

    def timed(phase: str, start: float) -> None:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start
        timings_path.write_text(json.dumps(timings, indent=2) + "\n")

    # 1. problems (a rerun with other sizes must not mix with the stored phases)
    start = time.perf_counter()
    problems = choose_problems(config)
    problems_path = output_dir / "problems.jsonl"
    if problems_path.exists():
        stored = read_jsonl(problems_path)
        if [p["id"] for p in stored] != [p["id"] for p in problems]:
            raise ValueError(f"{problems_path} holds other problems than these options choose; "
                             "use another --output_dir or delete it")
    else:
        problems_path.write_text("".join(json.dumps(p) + "\n" for p in problems), encoding="utf-8")
    sampled = [p for p in problems if p["split"] != "reference"]
    for slice_name in SLICES:
        for split in ("train", "test"):
            count = sum(p["slice"] == slice_name and p["split"] == split for p in sampled)
            print(f"{slice_name} {split}: {count} problems")
    timed("problems", start)

    # 2. samples
    start = time.perf_counter()
    samples_path = output_dir / "samples.jsonl"
    policy = None
    if {r["id"] for r in read_jsonl(samples_path)} != {p["id"] for p in sampled} or config.n_rollouts > 0:
        from generation.policy import HFPolicy

        policy = HFPolicy.from_pretrained(config.policy, temperature=config.temperature,
                                          max_new_tokens=config.max_new_tokens, batch_size=config.batch_size,
                                          seed=config.seed)
        policy.reset_counters()
        sample_solutions(policy, sampled, samples_path, config)
        print(f"policy: {policy.generated_tokens} generated tokens, {policy.forward_tokens} forward tokens")
    samples = {r["id"]: r for r in read_jsonl(samples_path)}
    timed("sample", start)

    # 3. labels + what the checker found
    start = time.perf_counter()
    labels = label_samples(sampled, samples, output_dir / "labels.jsonl", config, policy)
    claims = claim_report(sampled, labels)
    (output_dir / "claims.json").write_text(json.dumps(claims, indent=2) + "\n", encoding="utf-8")
    for slice_name, found in claims.items():
        print(f"{slice_name}: {found['steps_with_false_claim']}/{found['steps']} sampled steps make a false claim "
              f"({found['false_claim_share_of_steps']:.1%}; {found['false_claim_share_of_checkable_steps']:.1%} "
              f"of steps with a checkable claim); {found['correct_solutions']}/{found['solutions']} solutions right")
    timed("label", start)
    del policy

    # 4. PRM + ORM (one joint model)
    start = time.perf_counter()
    model_dir = train_reward_model(training_records(problems, labels, config.seed), output_dir / "reward_model", config)
    timed("train", start)

    # 5. rerank the held-out problems
    start = time.perf_counter()
    import prm

    joint = JointScores(prm.load(str(model_dir), device="cpu"))
    scorers = {"prm": joint, "orm": joint}
    results = {}
    for slice_name in SLICES:
        result = evaluate_slice(slice_name, problems, labels, scorers, config, output_dir)
        if result is not None:
            results[slice_name] = result
    timed("rerank", start)
    summary = {"config": asdict(config), "timings_s": timings, "claims": claims,
               "results": {k: {"pass_at_1": v["pass_at_1"], "gap_closed": v["gap_closed"]} for k, v in results.items()}}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return summary


def main(argv: list[str] | None = None) -> None:
    from transformers import HfArgumentParser

    (config,) = HfArgumentParser(ExperimentConfig).parse_args_into_dataclasses(args=argv)
    run(config)


if __name__ == "__main__":
    main()
