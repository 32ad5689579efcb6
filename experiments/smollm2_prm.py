"""A PRM on real text: SmolLM2-135M-Instruct + LoRA trained on GSM8K, shipped, and measured held out.

Phases (each resumes on rerun; delete a file to redo its phase):

1. data: `../shared/data/gsm8k/train.jsonl` (--gsm8k) -> problems; `holdout_split(500, seed 0)`
   holds out 500 problems that training never sees; problems whose reference has a step the
   checker reads as false are dropped (their labels would be wrong). Training records: each
   training problem's reference (every step True) and 3 corruptions
   (`tasks.math.gsm8k_corruptions`, seed 0) with exact first-error labels. Held-out records:
   the same for the held-out problems, corruption seed 1.
2. train: `prm train` on SmolLM2 (the offline alias) with LoRA, a step head and an outcome head
   (--objective joint), the likelihood features (over all of a step's tokens and over its digit
   tokens) with the heads at their own learning rate, the LM loss on correct steps, and the
   first-wrong-only labels of Let's Verify. Checkpoints every 10 minutes; an interrupted run
   resumes from its latest checkpoint.
3. ship: the LoRA adapter and the heads only (`RewardModel.save_pretrained(adapter_only=True)`),
   with the tokenizer and a model card, into --ship_dir.
4. evaluate: the shipped model, loaded by `prm.load`, on the held-out records: step AUC and
   ProcessBench F1, per error kind; picking the correct solution of each problem's pool
   (reference + its corruptions) by PRM-min / prod / last, ORM, random, the checker alone,
   the checker as a filter before PRM-min and a 50/50 PRM + checker mix; the same for pools
   of the reference and the corruptions of one kind. Writes results.json and results.md, and
   puts the table into the model card.

    make smollm2
    nice -n 10 python experiments/smollm2_prm.py        # about 35 minutes of training on 2 CPU cores
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]


@dataclass
class SmolPRMConfig:
    """Options of the SmolLM2 GSM8K PRM recipe (each field is a flag)."""

    gsm8k: str = field(default=str(REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"), metadata={"help": "GSM8K train JSONL ({question, answer})"})
    output_dir: str = field(default="runs/smollm2_prm", metadata={"help": "data, training run and results go here"})
    ship_dir: str = field(default=str(REPO / "prm" / "assets" / "smollm2-gsm8k-prm"), metadata={"help": "where the adapter, heads and model card are written"})
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "backbone (alias, hub id or path)"})
    holdout: int = field(default=500, metadata={"help": "problems held out for evaluation (holdout_split seed 0)"})
    corruptions: int = field(default=3, metadata={"help": "corrupted solutions per problem"})
    max_steps: int = field(default=450, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "sequences per step (2 prompts x 4 solutions share rows)"})
    lr: float = field(default=3e-4, metadata={"help": "peak learning rate"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    head_lr: float = field(default=5e-3, metadata={"help": "learning rate of the heads (0 = --lr)"})
    number_features: bool = field(default=True, metadata={"help": "likelihood features over each step's digit tokens too"})
    eval_records: int = field(default=200, metadata={"help": "held-out records for the training run's own periodic evaluation"})


def build_data(config: SmolPRMConfig, root: Path) -> tuple[Path, Path]:
    from tasks.math import gsm8k_corruption_records, gsm8k_problems, holdout_split
    from tasks.math.loaders import read_jsonl
    from verifiers import check_step

    train_path, held_path = root / "train.jsonl", root / "heldout.jsonl"
    if train_path.exists() and held_path.exists():
        return train_path, held_path
    if not Path(config.gsm8k).exists():
        raise SystemExit(f"no GSM8K file at {config.gsm8k}; pass --gsm8k PATH (GSM8K train JSONL)")
    problems = gsm8k_problems(read_jsonl(config.gsm8k))
    train, held = holdout_split(problems, config.holdout, seed=0)

    def clean(problem) -> bool:
        return all(check_step(step) is not False for step in problem.steps)

    for path, part, seed in ((train_path, train, 0), (held_path, held, 1)):
        kept = [problem for problem in part if clean(problem)]
        records = gsm8k_corruption_records(kept, k=config.corruptions, seed=seed)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
        tmp.replace(path)
        kinds = Counter(record["kind"] or "reference" for record in records)
        print(f"{path.name}: {len(kept)} problems ({len(part) - len(kept)} with a false reference step dropped), "
              f"{len(records)} records {dict(kinds)}")
    return train_path, held_path


def train_config(config: SmolPRMConfig, train_path: Path, eval_path: Path, out: Path):
    from prm.train import TrainConfig

    resume = "latest" if any((out / "checkpoints").glob("step-*")) else None
    return TrainConfig(
        data=str(train_path), eval_data=str(eval_path), model=config.model, output_dir=str(out),
        objective="joint", likelihood_features=True, number_features=config.number_features, head_lr=config.head_lr,
        lm_coef=1.0, first_wrong_only=True,
        lora_r=config.lora_r, lora_alpha=2 * config.lora_r, adapter_only=True,
        batch_size=config.batch_size, max_steps=config.max_steps, lr=config.lr, warmup_steps=30,
        eval_every=350, eval_batch_size=16, save_minutes=10.0, log_every=10, seed=0, resume=resume,
    )


def main(argv: list[str] | None = None) -> None:
    from transformers import HfArgumentParser

    from prm.train import train

    (config,) = HfArgumentParser(SmolPRMConfig).parse_args_into_dataclasses(args=argv)
    root = Path(config.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    train_path, held_path = build_data(config, root)
    eval_path = root / "heldout_head.jsonl"
    if not eval_path.exists():
        lines = held_path.read_text().splitlines()[: config.eval_records]
        eval_path.write_text("\n".join(lines) + "\n")
    out = root / "reward"
    if not (out / "config.json").exists():
        train(train_config(config, train_path, eval_path, out))
    ship = Path(config.ship_dir)
    ship_model(out, ship, config.model)
    results = evaluate(str(ship), held_path)
    (root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = results_markdown(results)
    (root / "results.md").write_text(table)
    write_card(ship, config, train_path, out, table)
    print(table)


# Files of a trained run that the shipped model does not need (the merged backbone, the run's logs).
NOT_SHIPPED = ("model.safetensors", "model.safetensors.index.json", "checkpoints", "metrics.jsonl",
               "train_config.json", "eval_results.json", "tensorboard", "README.md")


def ship_model(run: Path, ship: Path, base_model: str) -> None:
    """The adapter, heads, config and tokenizer of `run`, with the adapter naming `base_model`."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from prm.modeling import ADAPTER_DIR, name_adapter_base

    ship.mkdir(parents=True, exist_ok=True)
    for item in run.iterdir():
        if item.name in NOT_SHIPPED or item.name.startswith("model-"):
            continue
        target = ship / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
    name_adapter_base(ship / ADAPTER_DIR, base_model)  # a run saved merged names the local cache path
    # bf16 halves the adapter (all-linear LoRA r = 16 on SmolLM2 is 19 MB in fp32); peft casts it
    # back to the base's dtype on load, and the held-out figures are measured on this copy.
    weights = ship / ADAPTER_DIR / "adapter_model.safetensors"
    save_file({name: tensor.to(torch.bfloat16) for name, tensor in load_file(str(weights)).items()},
              str(weights), metadata={"format": "pt"})


KINDS = ("arithmetic_slip", "wrong_operation", "wrong_number", "dropped_step")
METHODS = ("random", "checker", "prm_min", "prm_prod", "prm_last", "orm", "checker_then_prm_min", "prm+checker_min")


def evaluate(model: str, held_path: Path) -> dict:
    from tqdm.auto import tqdm

    import prm
    from prm.metrics import processbench_f1, step_auc
    from prm.scoring import aggregate
    from search.scorers import VerifierScorer

    records = [json.loads(line) for line in held_path.read_text().splitlines()]
    scorer = prm.load(model)
    step_scores: list = [None] * len(records)
    outcome_scores: list = [None] * len(records)
    by_problem: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        by_problem.setdefault(record["id"], []).append(index)
    for indices in tqdm(list(by_problem.values()), desc="score held-out pools"):
        # A problem's solutions share one pass over its prompt.
        steps, outcomes = scorer.score_solutions(records[indices[0]]["prompt"],
                                                 [records[i]["completions"] for i in indices])
        for i, row, outcome in zip(indices, steps, outcomes):
            step_scores[i], outcome_scores[i] = row, outcome
    checker = VerifierScorer()
    verdicts = [checker.verdicts(record["completions"]) for record in records]

    def to_first_error(subset) -> tuple[list[float], list[float]]:
        scores, labels = [], []
        for i in subset:
            stop = records[i]["first_wrong"] if records[i]["first_wrong"] >= 0 else len(records[i]["labels"]) - 1
            scores += step_scores[i][: stop + 1]
            labels += [float(label) for label in records[i]["labels"][: stop + 1]]
        return scores, labels

    references = [i for i, record in enumerate(records) if record["kind"] == ""]
    result: dict = {"records": len(records), "problems": len(by_problem), "step": {}, "selection": {}}
    everything = list(range(len(records)))
    result["step"]["all"] = {"auc": step_auc(*to_first_error(everything)),
                             **processbench_f1([step_scores[i] for i in everything],
                                               [records[i]["labels"] for i in everything])}
    correct_steps = [value for i in references for value in step_scores[i]]
    for kind in KINDS:
        wrong = [i for i, record in enumerate(records) if record["kind"] == kind]
        first = [step_scores[i][records[i]["first_wrong"]] for i in wrong]
        result["step"][kind] = {
            "solutions": len(wrong),
            "first_wrong_vs_correct_auc": step_auc(first + correct_steps, [0.0] * len(first) + [1.0] * len(correct_steps)),
            **processbench_f1([step_scores[i] for i in wrong + references], [records[i]["labels"] for i in wrong + references]),
            "checker_flags_first_wrong": sum(verdicts[i][records[i]["first_wrong"]] is False for i in wrong) / max(1, len(wrong)),
        }

    def pick_accuracy(pool: list[int]) -> dict[str, float]:
        """Expected accuracy of picking the correct solution (the reference) of `pool`, ties
        broken uniformly at random."""
        def best(values: list[float], among: list[int]) -> float:
            top = max(values[j] for j in among)
            winners = [j for j in among if values[j] == top]
            return sum(records[pool[j]]["kind"] == "" for j in winners) / len(winners)

        everyone = list(range(len(pool)))
        passing = [j for j in everyone if not any(v is False for v in verdicts[pool[j]])] or everyone
        prm_min = [aggregate(step_scores[i], "min") for i in pool]
        mixed = [min(0.5 * p + 0.5 * (0.5 if v is None else float(v))
                     for p, v in zip(step_scores[i], verdicts[i])) for i in pool]
        return {
            "random": best([0.0] * len(pool), everyone),
            "checker": best([0.0] * len(pool), passing),
            "prm_min": best(prm_min, everyone),
            "prm_prod": best([aggregate(step_scores[i], "prod") for i in pool], everyone),
            "prm_last": best([aggregate(step_scores[i], "last") for i in pool], everyone),
            "orm": best([outcome_scores[i] for i in pool], everyone),
            "checker_then_prm_min": best(prm_min, passing),
            "prm+checker_min": best(mixed, everyone),
        }

    def mean_over(pools: list[list[int]]) -> dict[str, float]:
        rows = [pick_accuracy(pool) for pool in pools]
        return {"pools": len(rows), **{m: sum(row[m] for row in rows) / max(1, len(rows)) for m in METHODS}}

    pools = [indices for indices in by_problem.values() if len(indices) > 1]
    result["selection"]["all kinds"] = mean_over(pools)
    for kind in KINDS:
        result["selection"][kind] = mean_over([[i for i in indices if records[i]["kind"] in ("", kind)]
                                               for indices in pools
                                               if any(records[i]["kind"] == kind for i in indices)])
    return result


def results_markdown(results: dict) -> str:
    lines = [f"Held out: {results['problems']} GSM8K train problems (holdout_split seed 0), "
             f"{results['records']} solutions (reference + corruptions, seed 1).", "",
             "| error kind | solutions | AUC first wrong step vs correct steps | ProcessBench F1 | checker flags the first wrong step |",
             "|---|---|---|---|---|"]
    for kind in KINDS:
        row = results["step"][kind]
        lines.append(f"| {kind} | {row['solutions']} | {row['first_wrong_vs_correct_auc']:.3f} | {row['f1']:.3f} "
                     f"| {row['checker_flags_first_wrong']:.3f} |")
    overall = results["step"]["all"]
    lines += [f"| all (steps up to the first error) | {results['records']} | {overall['auc']:.3f} | {overall['f1']:.3f} | |",
              "", "Picking the correct solution (the reference) from a pool:", "",
              "| pool | pools | " + " | ".join(METHODS) + " |", "|---|---|" + "---|" * len(METHODS)]
    for name, row in results["selection"].items():
        lines.append(f"| {name} | {row['pools']} | " + " | ".join(f"{row[m]:.3f}" for m in METHODS) + " |")
    return "\n".join(lines) + "\n"


def rebuild_flags(config: SmolPRMConfig) -> str:
    """The flags of `config` that differ from the recipe's defaults (paths left out)."""
    from dataclasses import fields

    flags = []
    for item in fields(config):
        value = getattr(config, item.name)
        if item.name in ("gsm8k", "output_dir", "ship_dir") or value == item.default:
            continue
        flags.append(f"--{item.name} {value}" if not isinstance(value, bool) else
                     f"--{item.name}" if value else f"--no_{item.name}")
    return "".join(" " + flag for flag in flags)


def write_card(ship: Path, config: SmolPRMConfig, train_path: Path, run: Path, table: str) -> None:
    n_train = sum(1 for _ in train_path.open())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] \
        if (run / "metrics.jsonl").exists() else []
    speed = next((row for row in reversed(metrics) if "train_tokens_per_s" in row), {})
    card = f"""---
library_name: peft
base_model: {config.model}
tags: [process-reward-model, prm, gsm8k, lora]
---

# SmolLM2-135M-Instruct GSM8K process reward model (LoRA adapter + heads)

A step-level reward model for GSM8K-style solutions (one step a line, calculator annotations
allowed, "The answer is X" last), trained by this toolkit's own recipe.

```python
import prm  # after `make smollm2`; with a network the base is HuggingFaceTB/SmolLM2-135M-Instruct
scorer = prm.load("smollm2-gsm8k-prm")
scorer.score_steps("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                   "How many clips did Natalia sell altogether in April and May?",
                   ["Natalia sold 48/2 = <<48/2=24>>24 clips in May.",
                    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.",
                    "The answer is 72"])
```

- **Base**: `{config.model}` (SmolLM2-135M-Instruct), not included: `prm.load` loads it and applies
  the adapter in `adapter/` (LoRA r = {config.lora_r}, alpha = {2 * config.lora_r}, all linear layers).
- **Heads**: a step head and an outcome head (`--objective joint`) plus the likelihood features
  (the model's own log-probabilities of a step's tokens{", and of its digit tokens" if config.number_features else ""}),
  in `reward_heads.safetensors`; heads trained at lr {config.head_lr or config.lr}.
- **Data**: {n_train} training solutions from GSM8K train minus 500 held-out problems: each
  problem's reference (every step correct) and up to {config.corruptions} automatic corruptions
  with an exact first wrong step (arithmetic slip, wrong operation, wrong number, dropped step;
  `tasks.math.gsm8k_corruptions`, seed 0). Problems whose reference has a step the checker reads
  as false were dropped. No model samples.
- **Training**: {config.max_steps} steps of {config.batch_size} solutions (up to 4 of one problem
  share a row), lr {config.lr}, first-wrong-only labels, LM loss on correct steps (coefficient 1),
  {speed.get('train_tokens_per_s', float('nan')):.0f} tokens/s on 2 CPU cores
  ({speed.get('train_seconds', float('nan')) / 60:.0f} minutes).
- **Rebuild**: `make smollm2 && python experiments/smollm2_prm.py{rebuild_flags(config)}` (resumable).

## Held-out figures

{table}
"""
    (ship / "README.md").write_text(card)


if __name__ == "__main__":
    main()
