"""A PRM on real text: SmolLM2-135M-Instruct + LoRA trained on GSM8K, shipped, and measured held out.

Phases (each resumes on rerun; delete a file to redo its phase):

1. data: `../shared/data/gsm8k/train.jsonl` (--gsm8k) -> problems; `holdout_split(500, seed 0)`
   holds out 500 problems that training never sees; problems whose reference has a step the
   checker reads as false are dropped (their labels would be wrong). Training records: each
   training problem's reference (every step True) and 3 corruptions
   (`tasks.math.gsm8k_corruptions`, seed 0) with exact first-error labels. Held-out records:
   the same for the held-out problems, corruption seed 1.
2. train: `prm train` on SmolLM2 (the offline alias) with LoRA, a step head and an outcome head
   (--objective joint), the likelihood features and the LM loss on correct steps, and the
   first-wrong-only labels of Let's Verify. Checkpoints every 10 minutes; an interrupted run
   resumes from its latest checkpoint.
3. ship: the LoRA adapter and the heads only (`RewardModel.save_pretrained(adapter_only=True)`),
   with the tokenizer and a model card, into --ship_dir.
4. evaluate: the shipped model on the held-out records (`experiments/smollm2_prm_eval.py`).

    make smollm2
    nice -n 10 python experiments/smollm2_prm.py        # about 90 minutes of training on 2 CPU cores
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
    max_steps: int = field(default=700, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "sequences per step (2 prompts x 4 solutions share rows)"})
    lr: float = field(default=3e-4, metadata={"help": "peak learning rate"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
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
        objective="joint", likelihood_features=True, lm_coef=1.0, first_wrong_only=True,
        lora_r=config.lora_r, lora_alpha=2 * config.lora_r, save_adapter=True,
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


if __name__ == "__main__":
    main()
