"""`prm demo`: every part of the toolkit on the synthetic task, and a report of what it buys.

    prm demo                    # shipped tiny checkpoints; under 5 minutes on 2 CPU cores
    prm demo --retrain          # rebuild the policy and the reward model from scratch first
    prm demo --retrain --device cuda --policy_model Qwen/Qwen2.5-0.5B-Instruct   # real scale

The stages, in order (each one's numbers land in `results.json`, the story in `report.md`):

1. problems      synthetic word problems ("tiny" preset); held-out questions never appear in
                 the training problems
2. policy        a tiny Qwen2-style model (tokenizer trained here) after SFT on reference
                 solutions; shipped, or rebuilt with --retrain
3. labels        the policy's own samples on training problems, labelled by the verifiers:
                 sympy where a step makes a checkable claim, Monte Carlo rollouts elsewhere
                 (--retrain); on held-out samples the two sources are compared (always)
4. reward model  one backbone with a step head (PRM) and an outcome head (ORM), trained jointly
                 on those labels plus reference solutions and their corruptions (--retrain)
5. PRM quality   step AUC and ProcessBench F1 on held-out correct and corrupted solutions, next
                 to a step-position baseline
6. best-of-N     N = 1 ... 64: majority, weighted majority, ORM, PRM (min/prod/last), sympy
                 filter, oracle pass@N; mean and spread over subsampling seeds
7. tree search   step-level beam search and DVTS next to best-of-N at equal generated tokens
8. PPO           dense (PRM step rewards + outcome) vs outcome-only, several seeds

Shipped checkpoints live in `prm/assets/demo/` (made by `prm demo --retrain --export_assets`).
"""

from __future__ import annotations

import functools
import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import prm
from commands.demo_report import TREE_BEAM_WIDTH, summary_table, write_report
from commands.options import int_list
from commands.workers import Pending, worker_pool
from tasks.math.prompts import policy_prompt
from tasks.math.steps import split_steps
from tasks.math.types import Problem

ASSETS = Path(prm.__file__).parent / "assets" / "demo"
BON_METHODS = ["majority", "weighted-prm-min", "orm", "prm-min", "prm-prod", "prm-last",
               "majority+verifier", "prm-min+verifier", "oracle"]


@dataclass
class DemoConfig:
    """Options of `prm demo` (also the Python API: `run_demo(DemoConfig(...))`)."""

    output_dir: str = field(default="runs/demo", metadata={"help": "where the report, plots, results.json and models go"})
    retrain: bool = field(default=False, metadata={"help": "rebuild the policy and reward model from scratch instead of loading the shipped ones"})
    smoke: bool = field(default=False, metadata={"help": "smallest sizes that still run every stage (the end-to-end test)"})
    quick: bool = field(default=False, metadata={"help": "a shorter tour: 32 best-of-N and 16 tree-search problems, PRM-guided search only, PPO dense vs outcome over 2 seeds (below the sizes at which the targets are judged)"})
    device: str = field(default="", metadata={"help": "Torch device: cpu, cuda, cuda:1, ...; empty (or auto): cuda if available, else cpu"})
    preset: str = field(default="tiny", metadata={"help": "synthetic task preset (tasks.math.synthetic.PRESETS)"})
    policy_model: str = field(default="tiny:small", metadata={"help": "--retrain: starting policy, tiny:<size> or a path / hub id"})
    seed: int = field(default=0, metadata={"help": "seed of problems, sampling and training"})
    n_eval_problems: int = field(default=64, metadata={"help": "held-out problems for best-of-N"})
    n_samples: int = field(default=64, metadata={"help": "samples per held-out problem (the largest N)"})
    temperature: float = field(default=0.8, metadata={"help": "policy sampling temperature"})
    n_seeds: int = field(default=3, metadata={"help": "subsampling seeds for best-of-N (mean and spread)"})
    tree_problems: int = field(default=32, metadata={"help": "held-out problems for beam search / DVTS"})
    tree_widths: str = field(default="4,16", metadata={"help": "beam search / DVTS widths (comma-separated)"})
    label_problems: int = field(default=12, metadata={"help": "held-out problems whose samples are labelled by both sympy and rollouts"})
    n_rollouts: int = field(default=4, metadata={"help": "Monte Carlo rollouts per step"})
    ppo_updates: int = field(default=16, metadata={"help": "PPO updates per run"})
    ppo_seeds: int = field(default=3, metadata={"help": "PPO runs per mode"})
    ppo_modes: str = field(default="dense,outcome,checker,prm+checker", metadata={"help": "PPO step-reward sources, comma-separated: dense (PRM steps), outcome (none), checker (sympy verdicts), prm+checker (half each)"})
    tree_scorers: str = field(default="prm,checker,prm+checker", metadata={"help": "beam-search step scorers, comma-separated: prm, checker (sympy verdicts), prm+checker (half each); DVTS uses the PRM"})
    ppo_eval_problems: int = field(default=64, metadata={"help": "held-out problems for PPO accuracy (greedy)"})
    ppo_eval_every: int = field(default=4, metadata={"help": "PPO held-out accuracy every this many updates"})
    sft_steps: int = field(default=600, metadata={"help": "--retrain: SFT steps of the policy"})
    sft_problems: int = field(default=4000, metadata={"help": "--retrain: SFT training problems"})
    prm_problems: int = field(default=300, metadata={"help": "--retrain: training problems the policy samples for PRM data"})
    prm_first_problem: int = field(default=0, metadata={"help": "--retrain: index of the first of those training problems (a policy that knows its first SFT problems by heart makes few errors on them to learn from)"})
    prm_samples: int = field(default=8, metadata={"help": "--retrain: samples per PRM training problem"})
    prm_synthetic: int = field(default=4000, metadata={"help": "--retrain: reference + corrupted solutions added to the PRM data"})
    prm_steps: int = field(default=1500, metadata={"help": "--retrain: reward-model training steps"})
    prm_lm_coef: float = field(default=1.0, metadata={"help": "--retrain: weight of the reward model's next-token loss on correct steps (prm train --lm_coef)"})
    prm_likelihood_features: bool = field(default=True, metadata={"help": "--retrain: step logits read the model's own step likelihoods (prm train --likelihood_features)"})
    prm_first_wrong_only: bool = field(default=True, metadata={"help": "--retrain: train on steps up to each solution's first wrong one (prm train --first_wrong_only)"})
    prm_outcome_likelihood: bool = field(default=True, metadata={"help": "--retrain: the outcome head also reads the min over a solution's steps of the step likelihood features, weights fitted on the outcome labels after training (prm train --outcome_likelihood_features)"})
    prm_paired_synthetic: bool = field(default=False, metadata={"help": "--retrain: the synthetic solutions come in pairs, each problem's reference and one corruption of it (half as many problems), so that the outcome head sees right and wrong solutions of the same question"})
    export_assets: bool = field(default=False, metadata={"help": "--retrain: copy the new checkpoints into the package (prm/assets/demo)"})
    resume: bool = field(default=False, metadata={"help": "--retrain: reuse the policy and reward model already in output_dir/models (the held-out problems leave out the policy's SFT questions; a reward model made with other options or from another policy is refused)"})
    workers: int = field(default=0, metadata={"help": "processes that run the tree searches and PPO runs side by side, one torch thread each (0 = one per CPU core on CPU, 1 on a GPU; 1 = all in this process)"})

    def __post_init__(self) -> None:
        if self.quick:
            self.n_eval_problems, self.tree_problems, self.ppo_seeds = 32, 16, 2
            self.ppo_modes, self.tree_scorers = "dense,outcome", "prm"
        if self.smoke:
            # Every stage runs, on a handful of items: what the end-to-end test needs.
            self.n_eval_problems, self.n_samples, self.n_seeds = 4, 4, 2
            self.tree_problems, self.tree_widths, self.label_problems, self.n_rollouts = 2, "2", 2, 2
            self.ppo_updates, self.ppo_seeds, self.ppo_eval_problems, self.ppo_eval_every = 2, 2, 4, 1
            self.sft_steps, self.sft_problems, self.prm_problems, self.prm_samples = 30, 200, 4, 2
            self.prm_synthetic, self.prm_steps = 40, 20
            if self.policy_model == "tiny:small":
                self.policy_model = "tiny:tiny"
        # Read here, not after minutes of training and sampling.
        int_list(self.tree_widths, "tree_widths", minimum=1)
        if self.n_samples < 1:
            raise ValueError(f"--n_samples must be >= 1, got {self.n_samples}")


# ------------------------------------------------------------------------------ stages


def make_problems(config: DemoConfig, also_trained_on: frozenset[str] = frozenset()) -> tuple[list[Problem], list[Problem]]:
    """Training and held-out problems; no held-out question is a training question, nor one of
    `also_trained_on` (the questions the models in use were trained on, when they are not this
    run's: `shipped_training_questions`)."""
    from tasks.math.synthetic import generate_problems

    # Enough for every use: the SFT, the policy samples of the reward data and its synthetic part.
    count = max(config.sft_problems, config.prm_first_problem + config.prm_problems, config.prm_synthetic)
    train = generate_problems(count, config.preset, seed=config.seed)
    heldout = unseen_problems(4 * (config.n_eval_problems + config.ppo_eval_problems) + 100, config.preset,
                              config.seed + 10_007, {p.question for p in train} | also_trained_on)
    needed = max(config.n_eval_problems, config.ppo_eval_problems)
    if len(heldout) < needed:
        raise RuntimeError(f"only {len(heldout)} unseen held-out problems for preset {config.preset!r}")
    return train, heldout


def shipped_training_questions() -> frozenset[str]:
    """The questions the shipped checkpoints were trained on (`training_questions`)."""
    return training_questions(ASSETS / "policy", ASSETS / "reward")


def training_questions(policy_dir: Path, reward_dir: Path | None = None) -> frozenset[str]:
    """The questions a policy was trained on (its `sft_config.json`: data, seed, count) and those
    of a reward model made by `prm demo` (the problems its `reward_data.json` records; one that
    records none was made from the first of the policy's problems, as the shipped one was)."""
    from prm.sft import load_sft_problems
    from tasks.math.synthetic import generate_problems

    record = policy_dir / "sft_config.json"
    if not record.is_file():
        raise ValueError(f"{policy_dir} records no sft_config.json, so its training questions cannot be kept "
                         "out of the held-out problems")
    sft = json.loads(record.read_text())
    questions = {p.question for p in load_sft_problems(sft["data"], sft["n_train"], sft["seed"])}
    reward_record = None if reward_dir is None else reward_dir / "reward_data.json"
    if reward_record is not None and reward_record.is_file():
        options = json.loads(reward_record.read_text()).get("made_by", {}).get("options")
        if options:
            count = max(options["prm_first_problem"] + options["prm_problems"], options["prm_synthetic"])
            questions |= {p.question for p in generate_problems(count, options["preset"], seed=options["seed"])}
    return frozenset(questions)


def reused_training_questions(config: DemoConfig, run: Path, retrain: bool) -> frozenset[str]:
    """The questions the models this run uses were trained on where they need not be this run's
    training problems: the shipped models', or with --resume a policy already in the run (made by
    another SFT run, perhaps of another seed: docs/training.md's few-reference policy)."""
    if not retrain:
        return shipped_training_questions()
    policy_dir = run / "models" / "policy"
    return training_questions(policy_dir) if finished_model(policy_dir, config.resume) else frozenset()


def unseen_problems(count: int, preset: str, seed: int, taken: set[str]) -> list[Problem]:
    """The problems of `generate_problems(count, preset, seed)` whose question is neither in `taken`
    nor an earlier problem's."""
    from tasks.math.synthetic import generate_problems

    problems, questions = [], set(taken)
    for problem in generate_problems(count, preset, seed=seed):
        if problem.question not in questions:
            problems.append(problem)
            questions.add(problem.question)
    return problems


def write_problems(problems: list[Problem], path: Path) -> Path:
    with path.open("w") as handle:
        for p in problems:
            handle.write(json.dumps({"id": p.id, "question": p.question, "answer": p.answer, "steps": list(p.steps)}) + "\n")
    return path


def sample_solutions(policy, problems: list[Problem], n: int) -> tuple[list[list[str]], list[list[int]]]:
    """n sampled solutions per problem (texts) and their generated token counts."""
    from tqdm.auto import tqdm

    texts, tokens = [], []
    for problem in tqdm(problems, desc="sample", unit="problem"):
        (children,) = policy.expand(policy.start([policy_prompt(problem.question)]), n,
                                    until_step_end=False, keep_cache=False)
        texts.append([child.text for child in children])
        tokens.append([len(child.token_ids) for child in children])
    return texts, tokens


def solution_steps(text: str) -> list[str]:
    return split_steps(text, "lines")


def finished_model(path: Path, resume: bool) -> bool:
    """With --resume, a model directory already saved by an earlier run is reused."""
    return resume and (path / "config.json").exists() and any(path.glob("*.safetensors"))


def train_policy(config: DemoConfig, run: Path) -> Path:
    from prm.sft import SFTConfig, train_sft

    if finished_model(run / "models" / "policy", config.resume):
        return run / "models" / "policy"
    # An unfinished policy folder is the demo's own leftover (--resume reuses finished models only).
    return train_sft(SFTConfig(data=f"synthetic:{config.preset}", model=config.policy_model,
                               output_dir=str(run / "models" / "policy"), n_train=config.sft_problems,
                               n_eval=0, max_steps=config.sft_steps, seed=config.seed,
                               save_every=0 if config.smoke else 500, overwrite_output_dir=True))


def label_policy_samples(policy, problems: list[Problem], config: DemoConfig, mode: str):
    """Sample `prm_samples` solutions per problem and label them with the verifiers."""
    from verifiers.labelling import LabelStats, label_many

    texts, _ = sample_solutions(policy, problems, config.prm_samples)
    items, references = [], []
    for problem, solutions in zip(problems, texts):
        for text in solutions:
            steps = solution_steps(text)
            if steps:
                items.append((problem, steps))
                references.append(problem.answer)
    results = label_many(items, policy, n_rollouts=config.n_rollouts, mode=mode, references=references,
                         locate_silent_errors=True)
    stats = LabelStats()
    records = []
    for (problem, steps), result in zip(items, results):
        stats.add(result)
        record = result.to_record(problem.question, steps)
        if record is not None:
            records.append(record)
    return records, stats


def train_reward_model(config: DemoConfig, run: Path, policy_dir: Path, policy, train: list[Problem],
                       cpu: bool) -> tuple[Path, dict]:
    """Joint PRM + ORM on the policy's labelled samples plus references and corruptions."""
    from prm.recipe import model_fingerprint
    from prm.train import TrainConfig, train as train_reward

    made_by = {"options": {name: getattr(config, name) for name in REWARD_OPTIONS},
               "policy_files": model_fingerprint(str(policy_dir))}
    if finished_model(run / "models" / "reward", config.resume):
        info = json.loads((run / "reward_data.json").read_text())
        check_reused_reward(run / "models" / "reward", info.get("made_by"), made_by)
        return run / "models" / "reward", info
    first = config.prm_first_problem
    records, stats = label_policy_samples(policy, train[first : first + config.prm_problems], config, mode="hard")
    synthetic = synthetic_reward_records(train, config)
    data = run / "reward_data.jsonl"
    with data.open("w") as handle:
        for record in records + [{k: r[k] for k in ("prompt", "completions", "labels")} for r in synthetic]:
            handle.write(json.dumps(record) + "\n")
    path = train_reward(TrainConfig(data=str(data), model=str(policy_dir), output_dir=str(run / "models" / "reward"),
                                    objective="joint", max_steps=config.prm_steps, batch_size=32,
                                    eval_every=0, seed=config.seed, cpu=cpu, lr=1e-3, lm_coef=config.prm_lm_coef,
                                    likelihood_features=config.prm_likelihood_features,
                                    outcome_likelihood_features=config.prm_outcome_likelihood and config.prm_likelihood_features,
                                    first_wrong_only=config.prm_first_wrong_only,
                                    # as the policy's: an unfinished or earlier reward model here is the demo's own
                                    overwrite_output_dir=True))
    info = {"policy_samples": len(records), "synthetic": len(synthetic), "stats": stats.as_dict(), "made_by": made_by}
    (run / "reward_data.json").write_text(json.dumps(info, indent=2))
    return Path(path), info


# The options of `prm demo` that decide the reward model: its labelled data (problems, samples,
# rollouts) and its training.
REWARD_OPTIONS = ("preset", "seed", "temperature", "n_rollouts", "prm_problems", "prm_first_problem", "prm_samples",
                  "prm_synthetic", "prm_paired_synthetic", "prm_steps", "prm_lm_coef", "prm_likelihood_features",
                  "prm_first_wrong_only", "prm_outcome_likelihood")


def check_reused_reward(reward_dir: Path, stored: dict | None, made_by: dict) -> None:
    """--resume reuses a reward model only if it was made with this run's options from this policy."""
    if not stored:
        raise ValueError(f"{reward_dir}: its reward_data.json records no options, so it cannot be checked against "
                         "this run; remove the folder to train it again")
    from prm.recipe import fingerprint_differences

    differences = fingerprint_differences({**stored["options"], "policy_files": stored.get("policy_files")},
                                          {**made_by["options"], "policy_files": made_by["policy_files"]}, "reward model")
    if differences:
        raise ValueError(f"{reward_dir} was made by a different run ({'; '.join(differences)}); remove the folder "
                         "to train it again")


def synthetic_reward_records(train: list[Problem], config: DemoConfig) -> list[dict]:
    """`prm_synthetic` reference and corrupted solutions, half of each: one per problem, or with
    `prm_paired_synthetic` both for each of half as many problems."""
    from tasks.math.synthetic import step_labelled_records

    if not config.prm_paired_synthetic:
        return step_labelled_records(train[: config.prm_synthetic], corrupt_fraction=0.5, seed=config.seed)
    problems = train[: config.prm_synthetic // 2]
    return (step_labelled_records(problems, corrupt_fraction=0.0, seed=config.seed)
            + step_labelled_records(problems, corrupt_fraction=1.0, seed=config.seed))


def prm_quality(scorer, heldout: list[Problem], train: list[Problem], config: DemoConfig) -> dict:
    """Step AUC and ProcessBench F1 of the PRM on held-out correct + corrupted solutions (exact
    labels from the generator), next to a baseline that knows only each step's position; the
    PRM's AUC per error kind (its first wrong steps against every correct step) and per step
    position, and its calibration."""
    from prm.metrics import calibration_table, expected_calibration_error, processbench_f1, step_auc
    from tasks.math.synthetic import step_labelled_records

    records = step_labelled_records(heldout, corrupt_fraction=0.5, seed=config.seed + 1)
    prm_scores = scorer.score_steps_batch([r["prompt"] for r in records], [r["completions"] for r in records])
    # Baseline: P(step correct | its index), estimated on training records.
    by_position: dict[int, list[float]] = {}
    for record in step_labelled_records(train[:2000], corrupt_fraction=0.5, seed=config.seed + 2):
        for index, label in enumerate(record["labels"]):
            by_position.setdefault(index, []).append(float(label))
    prior = {index: float(np.mean(values)) for index, values in by_position.items()}
    baseline = [[prior.get(i, 0.5) for i in range(len(r["labels"]))] for r in records]
    labels = [[float(x) for x in r["labels"]] for r in records]
    flat_labels = [x for row in labels for x in row]
    flat_scores = [x for row in prm_scores for x in row]

    # The exact labels: every step before the first error is right and that one is wrong; a later
    # step may be true arithmetic on a wrong value, wrong only by the convention that an error spoils
    # what follows (Let's Verify labels up to the first error only). Both AUCs are reported.
    upto = [r["first_wrong"] + 1 if r["first_wrong"] >= 0 else len(r["labels"]) for r in records]
    exact_labels = [x for row, n in zip(labels, upto) for x in row[:n]]

    def summary(scores):
        flat = [x for row in scores for x in row]
        exact = [x for row, n in zip(scores, upto) for x in row[:n]]
        return {"step_auc": step_auc(exact, exact_labels), "step_auc_all_steps": step_auc(flat, flat_labels),
                **processbench_f1(scores, labels)}

    correct_steps = [x for row, r in zip(prm_scores, records) for x, ok in zip(row, r["labels"]) if ok]
    by_kind = {}
    for kind in sorted({r["kind"] for r in records if r["kind"]}):
        wrong = [row[r["first_wrong"]] for row, r in zip(prm_scores, records) if r["kind"] == kind]
        by_kind[kind] = {"solutions": len(wrong),
                         "step_auc": step_auc(wrong + correct_steps, [0.0] * len(wrong) + [1.0] * len(correct_steps))}
    positions: dict[int, tuple[list[float], list[float]]] = {}
    for row, r in zip(prm_scores, records):
        for index, (score, label) in enumerate(zip(row, r["labels"])):
            positions.setdefault(index, ([], []))[0].append(score)
            positions[index][1].append(float(label))
    by_step = {str(index + 1): {"steps": len(values), "correct_share": float(np.mean(ys)),
                                "mean_score": float(np.mean(values)), "step_auc": step_auc(values, ys)}
               for index, (values, ys) in sorted(positions.items())}
    calibration = calibration_table(flat_scores, flat_labels, bins=10)
    return {"records": len(records), "prm": summary(prm_scores), "position_baseline": summary(baseline),
            "by_kind": by_kind, "by_position": by_step, "calibration": calibration,
            "expected_calibration_error": expected_calibration_error(calibration)}


def build_pools(scorer, problems: list[Problem], texts: list[list[str]], tokens: list[list[int]]):
    """Candidate pools with PRM step scores and ORM scores from ONE joint forward per problem."""
    from tqdm.auto import tqdm

    from search.rerank import Method, build_pool

    # Scores come from the joint forward below; build_pool adds answers and sympy verdicts.
    filter_methods = [Method.parse("majority+verifier")]
    pools = []
    for problem, solutions, counts in tqdm(list(zip(problems, texts, tokens)), desc="score", unit="problem"):
        steps = [solution_steps(text) for text in solutions]
        pool = build_pool(problem.question, steps, methods=filter_methods, reference=problem.answer, tokens=counts)
        step_scores, outcomes = scorer.score_solutions(problem.question, [s or [""] for s in steps])
        pool.step_scores["prm"] = [scores if s else [0.0] for scores, s in zip(step_scores, steps)]
        pool.outcome_scores["orm"] = [o if s else 0.0 for o, s in zip(outcomes, steps)]
        pools.append(pool)
    return pools


def ranking_auc(pools) -> dict[str, dict]:
    """How well the ORM and PRM-min tell right from wrong candidates: over all candidates of all
    problems (`pooled`: a score can win here by knowing which problems are easy) and among one
    problem's candidates (`within_problem`: the mean over problems with both kinds, what best-of-N
    needs)."""
    from prm.metrics import step_auc

    out = {}
    for name, scorer, aggregation in (("orm", "orm", None), ("prm-min", "prm", "min")):
        per_problem = [(pool.values(scorer, aggregation), [float(ok) for ok in pool.correct]) for pool in pools]
        mixed = [step_auc(scores, labels) for scores, labels in per_problem if 0 < sum(labels) < len(labels)]
        pooled = step_auc([x for scores, _ in per_problem for x in scores],
                          [y for _, labels in per_problem for y in labels])
        out[name] = {"pooled": None if pooled != pooled else pooled,  # NaN (one class only) is not JSON
                     "within_problem": float(np.mean(mixed)) if mixed else None, "problems": len(mixed)}
    return out


def verifier_agreement(policy, problems: list[Problem], texts: list[list[str]], config: DemoConfig) -> dict:
    """Label some held-out samples in consensus mode: sympy and rollouts judge the same steps."""
    from verifiers.labelling import LabelStats, label_many

    items, references = [], []
    for problem, solutions in zip(problems[: config.label_problems], texts):
        for text in solutions[:8]:
            steps = solution_steps(text)
            if steps:
                items.append((problem, steps))
                references.append(problem.answer)
    stats = LabelStats()
    for result in label_many(items, policy, n_rollouts=config.n_rollouts, mode="consensus", references=references):
        stats.add(result)
    return stats.as_dict()


def reference_step_labels(steps: list[str], reference: tuple[str, ...] | list[str]) -> list[bool]:
    """Exact labels of a sample's steps on a synthetic problem, whose reference solution has one
    canonical step per sentence of the question: True while a step is the reference's step at its
    position, False for the first one that is not; the steps after it are left out."""
    labels = []
    for index, step in enumerate(steps):
        labels.append(index < len(reference) and step.strip() == reference[index].strip())
        if not labels[-1]:
            break
    return labels


def prm_on_samples(scorer, samples: list[tuple[list[str], Problem]], per_problem: int = 8) -> dict:
    """The PRM's step AUC on held-out policy samples, given as (sample texts, problem) per problem,
    with two kinds of labels.

    Checker labels (the top-level keys): every step with a verdict of the sympy checker (true or
    false equation), up to and including a solution's first false one; steps it cannot judge are
    left out. The checker sees arithmetic only: a true equation on a number or an operation the
    question does not give there ("He gives away 4: 8 - 4 = 4" where it says 7) is labelled true.
    Reference labels ("reference"; problems with reference steps): `reference_step_labels`, exact
    on the demo's synthetic task. "checker_true_not_reference" counts the steps the checker calls
    true that the reference labels call the first error.
    """
    from prm.metrics import step_auc
    from search.scorers import VerifierScorer

    checker = VerifierScorer()
    prompts, solutions, verdicts, exact = [], [], [], []
    for problem_texts, problem in samples:
        for text in problem_texts[:per_problem]:
            steps = solution_steps(text)
            judged = checker.verdicts(steps)
            labels = reference_step_labels(steps, problem.steps) if problem.steps else []
            kept = max(len(labels), judged.index(False) + 1 if False in judged else len(judged))
            if steps and (labels or any(v is not None for v in judged)):
                prompts.append(problem.question)
                solutions.append(steps[:kept])
                verdicts.append(judged[:judged.index(False) + 1] if False in judged else judged)
                exact.append(labels)
    scores = scorer.score_steps_batch(prompts, solutions) if prompts else []

    def auc_of(label_rows: list[list]) -> dict:
        pairs = [(x, float(v)) for row, labels in zip(scores, label_rows) for x, v in zip(row, labels) if v is not None]
        auc = step_auc([x for x, _ in pairs], [v for _, v in pairs]) if pairs else float("nan")
        return {"solutions": sum(any(v is not None for v in labels) for labels in label_rows), "steps": len(pairs),
                "false_steps": int(len(pairs) - sum(v for _, v in pairs)), "step_auc": None if auc != auc else auc}

    result = auc_of(verdicts)
    if any(exact):
        result["reference"] = auc_of(exact)
        result["checker_true_not_reference"] = sum(v is True and not label for judged, labels in zip(verdicts, exact)
                                                   for v, label in zip(judged, labels))
    return result


# PPO step-reward sources of the demo, as PPOConfig options. Every mode samples
# PPO_SETTINGS['samples_per_prompt'] solutions per prompt and takes a critic-free group baseline: a value
# head trained from scratch gave noise advantages over the few updates the demo can afford
# (with GAE no mode moved from the SFT start). Outcome = GRPO on the verifier's outcome alone;
# the dense modes = DeepSeekMath's process-supervision GRPO on the step scores plus the outcome.
PPO_MODES = {
    "dense": {"group_advantage": "grpo_process", "uses_prm": True, "checker_coef": 0.0},
    "outcome": {"group_advantage": "grpo", "uses_prm": False, "checker_coef": 0.0},
    "checker": {"group_advantage": "grpo_process", "uses_prm": False, "checker_coef": 1.0},
    "prm+checker": {"group_advantage": "grpo_process", "uses_prm": True, "checker_coef": 0.5},
}
# The PPO settings every mode shares. Gentle: at lr 1e-4 and T = 1 every mode fell well below the
# SFT policy, and larger batches at lr 5e-5 to 1e-4 did not help either. One pass of two
# minibatches per rollout batch (GRPO's usual single iteration) at lr 2e-5 did as well on the
# validation set as four passes at 1e-5, in a third of the time (docs/ppo.md).
PPO_SETTINGS = {"samples_per_prompt": 4, "batch_size": 16, "ppo_epochs": 1, "n_minibatches": 2, "lr": 2e-5,
                "temperature": 0.7, "kl_coef": 0.1, "max_new_tokens": 64}


def run_ppo(config: DemoConfig, run: Path, policy_dir: Path, reward_dir: Path, train_file: Path,
            heldout_file: Path, baseline_accuracy: float, settings: dict | None = None, pool=None) -> dict:
    """PPO from the SFT policy for every mode of `ppo_modes`; held-out accuracy curves per seed.
    `settings` replace entries of PPO_SETTINGS (experiments/demo_ppo.py); `pool`: see `commands.workers`."""
    return start_ppo(config, run, policy_dir, reward_dir, train_file, heldout_file, settings, pool)(baseline_accuracy)


def start_ppo(config: DemoConfig, run: Path, policy_dir: Path, reward_dir: Path, train_file: Path,
              heldout_file: Path, settings: dict | None = None, pool=None):
    """`run_ppo`'s runs handed to the pool now; returns finish(baseline_accuracy) -> the curves."""
    jobs, modes = [], _names(config.ppo_modes, PPO_MODES, "--ppo_modes")
    for mode in modes:
        options = PPO_MODES[mode]
        for seed in range(config.seed, config.seed + config.ppo_seeds):
            jobs.append((dict(policy=str(policy_dir), prm=str(reward_dir) if options["uses_prm"] else None,
                              mode="group", group_advantage=options["group_advantage"],
                              checker_coef=options["checker_coef"], data=str(train_file),
                              eval_data=str(heldout_file), n_eval=config.ppo_eval_problems,
                              eval_every=config.ppo_eval_every, max_updates=config.ppo_updates,
                              save_every=0, seed=seed, output_dir=str(run / "ppo" / f"{mode.replace('+', '-')}-seed{seed}"),
                              overwrite_output_dir=True,  # every demo run redoes its PPO runs
                              disable_tqdm=pool is not None,  # side by side, the bar counts runs
                              **{**PPO_SETTINGS, **(settings or {})}),))
    pending = Pending(_ppo_curve, jobs, pool)

    def finish(baseline_accuracy: float) -> dict:
        results = iter(pending.results("PPO runs"))
        curves: dict[str, list[dict]] = {}
        for mode in modes:
            curves[mode] = []
            for seed in range(config.seed, config.seed + config.ppo_seeds):
                points = [(0, baseline_accuracy)] + next(results)
                curves[mode].append({"seed": seed, "updates": [u for u, _ in points],
                                     "accuracy": [a for _, a in points]})
        return curves

    return finish


def _ppo_curve(options: dict) -> list[tuple[int, float]]:
    """One PPO run; its (update, held-out accuracy) points."""
    from prm.ppo.train import PPOConfig, train_ppo

    out = train_ppo(PPOConfig(**options))
    return [(row["update"], row["heldout_accuracy"])
            for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "heldout_accuracy" in row]


def run_tree_search(config: DemoConfig, policy_dir: Path, reward_dir: Path, device: str, problems: list[Problem],
                    pool=None) -> list:
    """Beam search for every scorer of `tree_scorers` (and DVTS with the PRM) at every width of
    `tree_widths`: one CurvePoint per (scorer, search, width), over two seeds."""
    return start_tree_search(config, policy_dir, reward_dir, device, problems, pool)()


def start_tree_search(config: DemoConfig, policy_dir: Path, reward_dir: Path, device: str, problems: list[Problem],
                      pool=None):
    """`run_tree_search`'s searches handed to the pool now; returns finish() -> the curve points."""
    widths = int_list(config.tree_widths, "tree_widths", minimum=1)
    jobs, names, job_widths = [], [], []
    for name in _names(config.tree_scorers, TREE_SCORERS, "--tree_scorers"):
        for kind in ("beam", "dvts") if name == "prm" else ("beam",):
            for width in widths:
                jobs.append((str(policy_dir), str(reward_dir), device, config.temperature, config.seed, name, kind,
                             width, [p.question for p in problems], [p.answer for p in problems], min(2, config.n_seeds)))
                names.append(name)
                job_widths.append(width)
    # The widest searches first, so that the last job to start is a short one and the workers end together.
    order = sorted(range(len(jobs)), key=lambda index: -job_widths[index])
    pending = Pending(_tree_point, [jobs[index] for index in order], pool)

    def finish() -> list:
        points = [None] * len(jobs)
        for index, point in zip(order, pending.results("tree search")):
            points[index] = point
        return [p if name == "prm" else replace(p, method=f"{p.method} ({name})") for p, name in zip(points, names)]

    return finish


def _tree_point(policy_dir: str, reward_dir: str, device: str, temperature: float, seed: int, scorer: str, kind: str,
                width: int, questions: list[str], answers: list[str], n_seeds: int):
    from search.evaluate import evaluate_tree_search

    # The searches of a seed run in lockstep: large batches (a width-16 round of 32 problems is 512 rows).
    policy, prm_scorer = demo_policy(policy_dir, device, temperature, seed, 512), demo_scorer(reward_dir, device)
    [point] = evaluate_tree_search(questions, answers, policy, TREE_SCORERS[scorer](prm_scorer), [width],
                                   seeds=[seed + offset for offset in range(n_seeds)], kinds=(kind,), beam_width=TREE_BEAM_WIDTH, max_steps=6,
                                   temperature=temperature, aggregation="min", progress=False)
    return point


@functools.lru_cache(maxsize=2)
def demo_policy(policy_dir: str, device: str, temperature: float, seed: int, batch_size: int = 64):
    """The demo's policy sampler, loaded once per process."""
    from generation.policy import HFPolicy

    return HFPolicy.from_pretrained(policy_dir, device=device, temperature=temperature, seed=seed,
                                    max_new_tokens=96, batch_size=batch_size)


@functools.lru_cache(maxsize=2)
def demo_scorer(reward_dir: str, device: str):
    """The demo's reward model as a scorer, loaded once per process."""
    from prm.scoring import load as load_scorer

    return load_scorer(reward_dir, device=device, batch_size=64)


def _names(value: str, known, option: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"{option}: unknown {unknown}; choose from {list(known)}")
    return names


def _mix(prm_scorer):
    from search.scorers import VerifierScorer, WeightedScorer

    return WeightedScorer([(prm_scorer, 0.5), (VerifierScorer(), 0.5)])


def _checker(_prm_scorer):
    from search.scorers import VerifierScorer

    return VerifierScorer()


# The beam-search step scorers of `--tree_scorers`, each made from the demo's PRM scorer.
TREE_SCORERS = {"prm": lambda prm_scorer: prm_scorer, "checker": _checker, "prm+checker": _mix}


# ------------------------------------------------------------------------------ the run


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run every stage; returns the results and writes report.md, results.json and PNGs."""
    import torch

    from prm.sft import heldout_accuracy
    from search.plots import plot_accuracy_vs_n, plot_accuracy_vs_tokens
    from search.rerank import accuracy_curve, powers_of_two

    started = time.perf_counter()
    demo_policy.cache_clear()  # a model retrained on disk since the last run in this process must be read again
    demo_scorer.cache_clear()
    timings: dict[str, float] = {}
    run = Path(config.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device in ("", "auto") else config.device
    cpu = device == "cpu"
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        timings[stage] = round(now - since, 1)
        return now

    t = time.perf_counter()
    shipped = (ASSETS / "policy" / "config.json").exists() and (ASSETS / "reward" / "config.json").exists()
    retrain = config.retrain or not shipped
    if not config.retrain and not shipped:
        print("prm demo: no shipped checkpoints in this installation; training them first (--retrain)")
    train, heldout = make_problems(config, reused_training_questions(config, run, retrain))
    eval_problems = heldout[: config.n_eval_problems]
    heldout_file = write_problems(heldout[: config.ppo_eval_problems], run / "heldout_problems.jsonl")
    train_file = write_problems(train, run / "train_problems.jsonl")
    t = lap("problems", t)
    policy_dir = train_policy(config, run) if retrain else ASSETS / "policy"
    policy = demo_policy(str(policy_dir), device, config.temperature, config.seed)
    t = lap("policy (SFT)" if retrain else "policy (load)", t)

    reward_info: dict = {}
    if retrain:
        reward_dir, reward_info = train_reward_model(config, run, Path(policy_dir), policy, train, cpu)
        t = lap("labels + reward model", t)
    else:
        reward_dir = ASSETS / "reward"
    if config.export_assets and retrain:
        for name, source in (("policy", Path(policy_dir)), ("reward", reward_dir)):
            export_model_dir(source, ASSETS / name)
        shutil.copy2(run / "reward_data.json", ASSETS / "reward" / "reward_data.json")
    if not retrain and (ASSETS / "reward" / "reward_data.json").exists():
        reward_info = json.loads((ASSETS / "reward" / "reward_data.json").read_text())
    scorer = demo_scorer(str(reward_dir), device)

    with worker_pool(config.workers, device) as pool:
        # With worker processes the tree searches and PPO runs start now, beside the stages below
        # (their sampling runs in this process and leaves the other core idle); each job seeds its
        # own run, so the results are those of running them one after the other.
        widths = int_list(config.tree_widths, "tree_widths", minimum=1)
        finish_tree = start_tree_search(config, Path(policy_dir), Path(reward_dir), device,
                                        eval_problems[: config.tree_problems], pool)
        finish_ppo = start_ppo(config, run, Path(policy_dir), reward_dir, train_file, heldout_file, pool=pool)

        quality = prm_quality(scorer, heldout[: config.n_eval_problems * 4], train, config)
        t = lap("PRM quality", t)

        policy.reseed(config.seed)
        texts, tokens = sample_solutions(policy, eval_problems, config.n_samples)
        # The candidates format of `prm rerank`, so the samples can be reranked again by hand.
        with (run / "samples.jsonl").open("w") as handle:
            for problem, solutions in zip(eval_problems, texts):
                handle.write(json.dumps({"prompt": problem.question, "completions": solutions,
                                         "reference": problem.answer}) + "\n")
        t = lap("sampling", t)
        agreement = verifier_agreement(policy, eval_problems, texts, config)
        on_samples = prm_on_samples(scorer, list(zip(texts, eval_problems)))
        t = lap("verifier agreement", t)

        pools = build_pools(scorer, eval_problems, texts, tokens)
        ns = powers_of_two(config.n_samples)
        bon = accuracy_curve(pools, BON_METHODS, ns, seeds=list(range(config.n_seeds)), n_subsets=16)
        ranking = ranking_auc(pools)
        t = lap("best-of-N", t)

        tree = finish_tree()
        tree_pools = pools[: config.tree_problems]
        bon_same_problems = accuracy_curve(tree_pools, ["majority", "weighted-prm-min", "prm-min"],
                                           [n for n in ns if n <= max(widths) * 2] or ns[:1],
                                           seeds=list(range(config.n_seeds)), n_subsets=16)
        t = lap("beam search / DVTS", t)

        baseline_accuracy = heldout_accuracy(policy.model, policy.tokenizer, heldout[: config.ppo_eval_problems],
                                             temperature=0.0, max_new_tokens=64)
        ppo = finish_ppo(baseline_accuracy)
        t = lap("PPO", t)

    plots = {
        "bon": plot_accuracy_vs_n(bon, run / "accuracy_vs_n.png", title="Best-of-N on held-out problems"),
        "budget": plot_accuracy_vs_tokens(bon_same_problems + tree, run / "accuracy_vs_tokens.png",
                                          title="Beam search / DVTS vs best-of-N at equal generated tokens"),
        "ppo": plot_ppo(ppo, run / "ppo_accuracy.png"),
    }
    timings["total"] = round(time.perf_counter() - started, 1)
    results = {
        "config": asdict(config),
        "device": device,
        "retrained": retrain,
        "timings_s": timings,
        "side_by_side": pool is not None,
        "reward_training": reward_info,
        "prm_quality": quality,
        "verifier_agreement": agreement,
        "prm_on_policy_samples": on_samples,
        "best_of_n": [asdict(p) for p in bon],
        "ranking_auc": ranking,
        "tree_search": [asdict(p) for p in tree],
        "best_of_n_tree_problems": [asdict(p) for p in bon_same_problems],
        "ppo": ppo,
        "ppo_start_accuracy": baseline_accuracy,
        "ppo_settings": PPO_SETTINGS,
        "plots": {name: str(path) if path else None for name, path in plots.items()},
    }
    (run / "results.json").write_text(json.dumps(results, indent=2))
    write_report(results, run / "report.md")
    print(summary_table(results))
    print(f"\nreport: {run / 'report.md'}")
    return results


def export_model_dir(source: Path, target: Path) -> None:
    """Copy a model directory's final files (no checkpoints or logs) into the package."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_file() and item.suffix in {".json", ".safetensors", ".jinja", ".txt"}:
            shutil.copy2(item, target / item.name)


def plot_ppo(curves: dict[str, list[dict]], path: Path) -> Path:
    """Held-out accuracy vs PPO updates: mean over seeds with a min-max band, per mode."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=120)
    axes = figure.add_subplot()
    for mode, runs in curves.items():
        updates = runs[0]["updates"]
        values = np.array([r["accuracy"] for r in runs])
        axes.plot(updates, values.mean(0), marker="o", label=f"{mode} ({len(runs)} seeds)")
        axes.fill_between(updates, values.min(0), values.max(0), alpha=0.2)
    axes.set_xlabel("PPO updates")
    axes.set_ylabel("held-out accuracy (greedy)")
    axes.set_title("PPO: step-reward sources (dense = PRM) vs outcome only")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    return path
