"""`prm train`: train a PRM, an ORM, both at once, or a pairwise (Bradley-Terry) reward model.

A plain accelerate loop, readable top to bottom::

    prm train --data synthetic:tiny --model tiny:small --objective prm --max_steps 300
    prm train --data steps.jsonl --model Qwen/Qwen2.5-0.5B --lora_r 16 --mixed_precision bf16
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 -m commands.cli train ...  # 2 CPU processes, gloo
    accelerate launch --multi_gpu --num_processes 8 -m commands.cli train --model ...            # 8 GPUs

The same run from Python: `train(TrainConfig(data="synthetic:tiny", objective="joint"))`.

The loss of an optimizer step is normalised by the number of labelled items (steps,
solutions or pairs) over all processes and accumulation micro-batches, so 2 processes x
batch b, 1 process x batch 2b and 1 process x b with 2 accumulation steps follow the same
curve. Checkpoints hold model (safetensors), optimizer, RNG states and the step and sampler
position (the LR schedule is a function of the step), so `--resume` continues to the same result
as a run that was never stopped; nothing in a checkpoint is unpickled beyond
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from prm.collate import (
    LengthGroupedBatchSampler,
    additive_mask,
    collate_features,
    collate_pairs,
    drop_labels_after_first_wrong,
    encode_outcome_record,
    encode_pairwise_record,
    encode_step_record,
    feature_length,
    is_causal_decoder,
    prompt_key,
    tree_mask_unsupported,
)
from prm.losses import outcome_bce_loss, pairwise_loss, step_bce_loss, token_lm_loss
from prm.metrics import pairwise_accuracy, processbench_f1, step_accuracy, step_auc
from prm.modeling import (
    ADAPTER_DIR,
    HEADS_FILE,
    SAFETENSORS_ONLY,
    RewardModel,
    RewardSettings,
    digit_token_ids,
    from_pretrained_safetensors,
    lowest_step_features,
)
from prm.outputs import OutputOptions, finish_run, label_source_counts, trackers_of
from prm.recipe import (
    MODEL_FILES,
    MetricsLogger,
    SaveClock,
    StopSignals,
    ThroughputMeter,
    check_output_dir,
    check_resume,
    checkpoint_path,
    checkpoint_to_resume,
    dumps,
    interrupted,
    keep_log_until,
    run_fingerprint,
    save_or_stop,
    saved_config,
    write_run_file,
)
from tasks.math.records import read_reward_records


@dataclass
class TrainConfig(OutputOptions):
    """Options of `prm train` (each field is a command-line flag)."""

    data: str = field(default="synthetic:tiny", metadata={"help": "JSONL path, hub id, or synthetic:<preset> (tasks.math.synthetic)"})
    eval_data: str | None = field(default=None, metadata={"help": "Held-out data (same forms as --data); default: split --eval_fraction off --data"})
    eval_fraction: float = field(default=0.1, metadata={"help": "Share of --data held out for evaluation when --eval_data is not given"})
    split_by: str = field(default="record", metadata={"help": "record: hold out --eval_fraction of the records; prompt: of the prompts, with all their solutions (held-out problems are new problems)"})
    synthetic_problems: int = field(default=2000, metadata={"help": "Number of problems generated for synthetic:<preset> data"})
    model: str = field(default="tiny:small", metadata={"help": "Backbone: path or hub id, or tiny:<tiny|small|base> for a fresh model with a tokenizer trained on the data"})
    output_dir: str = field(default="runs/prm", metadata={"help": "Where the model, checkpoints and metrics.jsonl go"})
    objective: str = field(default="prm", metadata={"help": "prm | orm | joint | pairwise"})
    head: str = field(default="classification", metadata={"help": "Step head: classification | plus_minus (LM-head '+'/'-' tokens)"})
    num_labels: int = field(default=1, metadata={"help": "Classification head outputs: 1 logit or 2 classes"})
    separator: str = field(default="\n", metadata={"help": "Text that ends every step; scores are read at its last token"})
    add_separator_token: bool = field(default=False, metadata={"help": "Add the separator to the vocabulary as a special token"})
    aggregation: str = field(default="min", metadata={"help": "Default step-score aggregation stored with the model: min|prod|last|mean"})
    first_wrong_only: bool = field(default=False, metadata={"help": "Ignore steps after the first wrong one (Let's Verify)"})
    outcome_weight: float = field(default=1.0, metadata={"help": "Weight of the outcome loss in --objective joint"})
    likelihood_features: bool = field(default=False, metadata={"help": "Add the backbone's own log-probabilities of each step's tokens (min, mean) to the step logit, with learned weights (see docs/training.md)"})
    number_features: bool = field(default=False, metadata={"help": "With --likelihood_features: also the min and mean log-probability of each step's digit tokens"})
    outcome_likelihood_features: bool = field(default=False, metadata={"help": "With --objective joint and --likelihood_features: add to the outcome logit a weighting of the min over a solution's steps of their likelihood features, fitted on the training outcome labels once training ends (everything else frozen)"})
    head_lr: float = field(default=0.0, metadata={"help": "Peak learning rate of the heads (step, outcome, likelihood weights); 0 = --lr. Fresh heads on a LoRA backbone learn faster with a higher one"})
    lm_coef: float = field(default=0.0, metadata={"help": "Weight of an auxiliary next-token loss on the tokens of steps labelled correct (prm, joint; see docs/training.md)"})
    centering_coef: float = field(default=0.0, metadata={"help": "Pairwise reward-centring coefficient: coef * (r_w + r_l)^2"})
    max_length: int = field(default=512, metadata={"help": "Truncate sequences; steps ending beyond it lose their label"})
    vocab_size: int = field(default=512, metadata={"help": "Tokenizer size for tiny:<size> models"})
    batch_size: int = field(default=16, metadata={"help": "Sequences per process per micro-batch (pairs for pairwise)"})
    grad_accum: int = field(default=1, metadata={"help": "Micro-batches per optimizer step"})
    max_steps: int = field(default=300, metadata={"help": "Optimizer steps"})
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=10, metadata={"help": "Linear warm-up steps"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler name: cosine | linear | constant_with_warmup ..."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping (0 = off)"})
    group_by_length: bool = field(default=False, metadata={"help": "Batch sequences of similar length: less padding, but less random batches (see docs/training.md)"})
    solutions_per_prompt: int = field(default=4, metadata={"help": "Put up to this many solutions of one prompt in a batch and in one row, where their prompt and common step prefixes are computed once (1 = independent sequences; causal decoders only; see docs/training.md)"})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank (0 = full fine-tuning)"})
    save_adapter: bool = field(default=False, metadata={"help": "With --lora_r > 0, also write the LoRA adapter to <output_dir>/adapter (the merged model is always saved)"})
    adapter_only: bool = field(default=False, metadata={"help": "With --lora_r > 0, save the final model as the adapter and heads only, without backbone weights; loading fetches the base named by --model"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_target_modules: str = field(default="all-linear", metadata={"help": "Comma-separated module names, or all-linear"})
    mixed_precision: str = field(default="no", metadata={"help": "no | bf16 | fp16: the compute dtype of training (autocast; evaluation and the outcome likelihood fit run in float32, as the saved model scores); the weights and optimizer state stay float32 whatever the checkpoint was saved in"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Recompute activations in backward to save memory"})
    eval_every: int = field(default=100, metadata={"help": "Evaluate every N steps (0 = only at the end)"})
    eval_batch_size: int = field(default=32, metadata={"help": "Sequences per evaluation batch"})
    save_every: int = field(default=0, metadata={"help": "Checkpoint every N steps (0 = only by --save_minutes)"})
    save_minutes: float = field(default=10.0, metadata={"help": "Also checkpoint when this many minutes passed since the last one (0 = off); SIGINT / SIGTERM always save one"})
    log_every: int = field(default=10, metadata={"help": "Write train metrics every N steps"})
    resume: str | None = field(default=None, metadata={"help": "Checkpoint directory, or 'latest' (newest under output_dir/checkpoints); it must come from a run with the same settings and data"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Start afresh in a non-empty --output_dir (its checkpoints and logs are removed)"})
    seed: int = field(default=0, metadata={"help": "Seed of data split, sampler, initialisation and dropout"})
    tensorboard: bool = field(default=False, metadata={"help": "The same as --report_to tensorboard (logs to output_dir/tensorboard; kept as an alias)"})
    progress: bool = field(default=True, metadata={"help": "Show a tqdm progress bar"})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the hub"})
    cpu: bool = field(default=False, metadata={"help": "Run on CPU; with several processes (torchrun) this selects gloo"})

    def __post_init__(self) -> None:
        super().__post_init__()  # --report_to: a missing tracker package fails here
        if self.objective not in ("prm", "orm", "joint", "pairwise"):
            raise ValueError(f"--objective must be prm, orm, joint or pairwise, got {self.objective!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"--mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.split_by not in ("record", "prompt"):
            raise ValueError(f"--split_by must be record or prompt, got {self.split_by!r}")
        if self.solutions_per_prompt < 1:
            raise ValueError(f"--solutions_per_prompt must be at least 1, got {self.solutions_per_prompt!r}")
        if self.lm_coef < 0:
            raise ValueError(f"--lm_coef must be >= 0, got {self.lm_coef!r}")
        if self.lm_coef > 0 and self.objective not in ("prm", "joint"):
            raise ValueError(f"--lm_coef trains on steps labelled correct: it needs --objective prm or joint, "
                             f"not {self.objective!r}")
        if self.likelihood_features and self.objective not in ("prm", "joint"):
            raise ValueError("--likelihood_features feed the step head: they need --objective prm or joint")
        if self.number_features and not self.likelihood_features:
            raise ValueError("--number_features are likelihood features: they need --likelihood_features")
        if self.outcome_likelihood_features and not (self.likelihood_features and self.objective == "joint"):
            raise ValueError("--outcome_likelihood_features need --likelihood_features and --objective joint")
        if self.head_lr < 0:
            raise ValueError(f"--head_lr must be >= 0, got {self.head_lr!r}")
        if (self.save_adapter or self.adapter_only) and self.lora_r <= 0:
            raise ValueError("--save_adapter and --adapter_only need --lora_r > 0")
        if self.adapter_only and self.model.startswith("tiny:"):
            raise ValueError("--adapter_only needs a base model that can be loaded again (a path or hub id), not tiny:<size>")
        if self.adapter_only and self.head == "plus_minus":
            raise ValueError("--adapter_only: the plus_minus head trains the LM head in full; save it merged")
        trackers_of(self)  # --tensorboard, the alias of --report_to tensorboard


# ------------------------------------------------------------------------------------------ data
def load_records(source: str, objective: str, *, synthetic_problems: int = 2000, seed: int = 0,
                 separator: str = "\n") -> list[dict]:
    """Validated records for `objective` (prm / joint: step-labelled, orm: outcome, pairwise)
    through `tasks.math.records.read_reward_records`; a bad record raises `RecordError` with
    file, line and field. Step lists joined into one solution (the outcome and pairwise views)
    are joined with the model's `separator`; the outcome view keeps its steps too ("steps"), which
    `encode_records` encodes as they are, as a scorer does a step list."""
    kind = {"orm": "outcome", "pairwise": "pairwise"}.get(objective, "step")
    return read_reward_records(source, kind, n_synthetic=synthetic_problems, seed=seed, separator=separator)


def _split(records: list[dict], fraction: float, seed: int, by: str = "record") -> tuple[list[dict], list[dict]]:
    """(training, held-out) records: about `fraction` held out, in a seeded order; with
    by="prompt" whole prompts (all their solutions) are held out, at least `fraction` of the
    records."""
    target = max(1, round(fraction * len(records))) if fraction > 0 else 0
    if by == "record":
        order = list(range(len(records)))
        random.Random(f"split/{seed}").shuffle(order)
        return [records[i] for i in order[target:]], [records[i] for i in order[:target]]
    members: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        members.setdefault(record["prompt"], []).append(index)
    prompts = list(members)
    random.Random(f"split/{seed}").shuffle(prompts)
    held: set[int] = set()
    for prompt in prompts:
        if len(held) >= target:
            break
        held.update(members[prompt])
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])


def warn_about_shared_prompts(heldout: list[dict], train: list[dict]) -> None:
    """Print how many held-out records have a training record's prompt: their metrics measure
    new solutions to problems seen in training, not new problems."""
    seen = {record["prompt"] for record in train}
    shared = sum(record["prompt"] in seen for record in heldout)
    if shared:
        print(f"warning: {shared} of {len(heldout)} held-out records share their prompt with training records "
              "(new solutions to seen problems); --split_by prompt holds out whole problems")


def _solution_key(record: dict) -> str:
    """A record's prompt and solution texts, labels aside: equal keys are copies of one solution."""
    return json.dumps([record.get(key) for key in ("prompt", "completions", "completion", "chosen", "rejected")])


def warn_about_copies(records: list[dict], source: str) -> None:
    """Warn, with counts, when records repeat an earlier record's texts (kept: each copy weighs
    that solution once more) and when a copy labels them differently."""
    first_labels: dict[str, Any] = {}
    copies = conflicting = 0
    for record in records:
        key, labels = _solution_key(record), record.get("labels", record.get("label"))
        if key in first_labels:
            copies += 1
            conflicting += labels != first_labels[key]
        else:
            first_labels[key] = labels
    if copies:
        differ = f"; {conflicting} of them gives different labels than the earlier one" if conflicting else ""
        warnings.warn(f"{source}: {copies} of the {len(records)} records repeat an earlier record's prompt and steps "
                      f"(kept for training, so each copy weighs that solution once more; a held-out copy of a "
                      f"training record is left out of evaluation){differ}", stacklevel=3)


def without_training_records(heldout: list[dict], train: list[dict]) -> list[dict]:
    """`heldout` without the records whose prompt and solution texts are a training record's
    (labels aside); how many were left out is printed, never silent."""
    seen = {_solution_key(record) for record in train}
    kept = [record for record in heldout if _solution_key(record) not in seen]
    if len(kept) < len(heldout):
        print(f"warning: {len(heldout) - len(kept)} of {len(heldout)} held-out records are also training records; "
              f"left out of evaluation ({len(kept)} kept)")
    return kept


def _texts(records: list[dict]) -> list[str]:
    texts = []
    for record in records:
        texts.append(record["prompt"])
        texts += record.get("completions") or [record[key] for key in ("completion", "chosen", "rejected") if key in record]
    return texts


def _has_label(feature: dict, objective: str) -> bool:
    """Whether a feature keeps anything to learn from or score within max_length."""
    if objective == "pairwise":
        return feature["chosen"]["outcome_position"] >= 0 and feature["rejected"]["outcome_position"] >= 0
    return bool(feature["labels"]) or (objective != "prm" and feature["outcome_position"] >= 0)


def encode_records(tokenizer, records: list[dict], settings: RewardSettings, max_length: int) -> tuple[list[dict], int]:
    """Features for every record and the number of step labels lost to truncation."""
    features, dropped = [], 0
    for record in records:
        if settings.objective == "pairwise":
            feature = encode_pairwise_record(tokenizer, record, settings, max_length)
            dropped += feature["chosen"]["n_dropped"] + feature["rejected"]["n_dropped"]
        elif "completions" in record:
            feature = encode_step_record(tokenizer, record, settings, max_length)
            dropped += feature["n_dropped"]
        else:
            feature = encode_outcome_record(tokenizer, record["prompt"], record.get("steps", record["completion"]),
                                            record["label"], settings, max_length)
            dropped += feature["n_dropped"]
        features.append(feature)
    return features, dropped


# ------------------------------------------------------------------------------------------ model
def build_model(config: TrainConfig, train_records: list[dict], tokenizer_dir: str | None = None):
    """(tokenizer, RewardModel): a fresh tiny backbone with a tokenizer trained on the data, or a
    pretrained one. `tokenizer_dir` (a checkpoint) replaces tokenizer training on resume."""
    from transformers import AutoTokenizer

    settings = RewardSettings(separator=config.separator, head=config.head, num_labels=config.num_labels,
                              objective=config.objective, aggregation=config.aggregation,
                              likelihood_features=config.likelihood_features,
                              outcome_likelihood_features=config.outcome_likelihood_features)
    if config.model.startswith("tiny:"):
        from generation.tiny import build_tiny_causal_lm, train_tokenizer

        tokenizer = (AutoTokenizer.from_pretrained(tokenizer_dir) if tokenizer_dir
                     else train_tokenizer(_texts(train_records), vocab_size=config.vocab_size))
        if config.add_separator_token:
            tokenizer.add_tokens([config.separator], special_tokens=True)
        backbone = build_tiny_causal_lm(tokenizer, size=config.model.split(":", 1)[1], seed=config.seed,
                                        max_positions=max(512, config.max_length))
    else:
        from transformers import AutoModel, AutoModelForCausalLM

        from generation.hub import resolve_model

        name = resolve_model(config.model)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or name, trust_remote_code=config.trust_remote_code)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if config.add_separator_token:
            tokenizer.add_tokens([config.separator], special_tokens=True)
        auto = AutoModelForCausalLM if settings.keeps_lm_head else AutoModel
        # float32 master weights whatever the checkpoint's dtype: AdamW on bf16 weights rounds most
        # small updates away; --mixed_precision sets the compute dtype only.
        backbone = from_pretrained_safetensors(auto, name, trust_remote_code=config.trust_remote_code,
                                               dtype=torch.float32)
    if len(tokenizer) > backbone.get_input_embeddings().num_embeddings:
        backbone.resize_token_embeddings(len(tokenizer))
    if config.number_features:
        settings.number_token_ids = digit_token_ids(tokenizer)
        if not settings.number_token_ids:
            raise ValueError(f"--number_features: the tokenizer of {config.model} has no token that writes a digit")
    model = RewardModel.from_backbone(backbone, settings, tokenizer=tokenizer)
    if config.lora_r > 0:
        targets = config.lora_target_modules
        model.add_lora(r=config.lora_r, alpha=config.lora_alpha,
                       target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")])
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return tokenizer, model


# ------------------------------------------------------------------------------------------ loss
def _at_positions(logits: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [R, W], positions [N] (indices into the flattened logits, -1 = none) -> (values [N], valid [N] bool)."""
    valid = positions >= 0
    return logits.reshape(-1)[positions.clamp(min=0)], valid


def model_inputs(batch: dict, use_mask: bool, dtype: torch.dtype, lm: bool = False) -> dict:
    """Keyword arguments of the forward pass: the tree mask (additive, in `dtype`, the model's
    floating-point dtype, see `additive_mask`) and position ids of a batch with shared rows, the
    padding mask only where the model needs it (see `is_causal_decoder`); with `lm`, the
    positions of the LM loss's targets."""
    inputs = {"lm_mask": batch["lm_weights"] > 0} if lm else {}
    if "position_ids" in batch:
        return {**inputs, "attention_mask": additive_mask(batch["attention_mask"], dtype),
                "position_ids": batch["position_ids"]}
    return {**inputs, "attention_mask": batch["attention_mask"] if use_mask else None}


def _loss_names(config: TrainConfig) -> list[str]:
    names = {"prm": ["step"], "orm": ["outcome"], "joint": ["step", "outcome"], "pairwise": ["outcome"]}[config.objective]
    return names + ["lm"] if config.lm_coef > 0 else names


def _labelled_items(batch: dict, config: TrainConfig) -> dict[str, torch.Tensor]:
    """Items each loss term is averaged over: steps (prm, joint), solutions (orm, joint), pairs."""
    counts = {}
    if config.objective in ("prm", "joint"):
        counts["step"] = batch["step_weights"].sum()
    if config.objective in ("orm", "joint"):
        counts["outcome"] = (batch["outcome_positions"] >= 0).sum().float()
    if config.objective == "pairwise":
        valid = batch["outcome_positions"] >= 0
        pairs = len(batch["margins"])
        counts["outcome"] = (valid[:pairs] & valid[pairs:]).sum().float()
    if config.lm_coef > 0:
        counts["lm"] = batch["lm_weights"].sum()
    return counts


def loss_sums(output, batch: dict, config: TrainConfig) -> dict[str, torch.Tensor]:
    """Summed (not averaged) loss terms of one micro-batch: {"step": ..., "outcome": ...}."""
    sums = {}
    if config.objective in ("prm", "joint"):
        sums["step"] = step_bce_loss(output.step_logits, batch["step_labels"], batch["step_mask"],
                                     weights=batch["step_weights"], reduction="sum")
    if config.objective in ("orm", "joint"):
        logits, valid = _at_positions(output.outcome_logits, batch["outcome_positions"])
        sums["outcome"] = outcome_bce_loss(logits[valid], batch["outcome_labels"][valid], reduction="sum")
    if config.objective == "pairwise":
        rewards, valid = _at_positions(output.outcome_logits, batch["outcome_positions"])
        pairs = len(batch["margins"])
        both = valid[:pairs] & valid[pairs:]
        sums["outcome"] = pairwise_loss(rewards[:pairs][both], rewards[pairs:][both], batch["margins"][both],
                                        centering_coef=config.centering_coef, reduction="sum")
    if config.lm_coef > 0:
        if output.lm_logits is None:
            raise ValueError("--lm_coef: the forward pass needs lm_mask (model_inputs(..., lm=True))")
        positions = batch["lm_weights"] > 0
        sums["lm"] = token_lm_loss(output.lm_logits, batch["lm_targets"][positions], batch["lm_weights"][positions],
                                   reduction="sum")
    return sums


def solution_outcomes(model: RewardModel, output, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The outcome log-odds of a batch's N solutions as the model gives them (see
    `RewardModel.solution_outcome_logits`) -> (logits [N], valid [N] bool)."""
    end_logits, valid = _at_positions(output.outcome_logits, batch["outcome_positions"])
    features = _path_features(output, batch) if getattr(model, "outcome_likelihood_head", None) is not None else None
    return model.solution_outcome_logits(end_logits, features), valid


def _path_features(output, batch: dict) -> torch.Tensor:
    """The likelihood features at each solution's step ends: [N, S, F], +inf past its last step."""
    flat = output.step_features.reshape(-1, output.step_features.shape[-1])  # [R * W, F]
    paths = batch["outcome_paths"].to(flat.device)
    return torch.where((paths >= 0)[..., None], flat[paths.clamp(min=0)], float("inf"))


@torch.no_grad()
def fit_outcome_likelihood(model: RewardModel, features: list[dict], pad_token_id: int, batch_size: int = 32,
                           device=None, l2: float = 1e-3, newton_steps: int = 30) -> list[float]:
    """Fit `model`'s outcome likelihood weights w (F of them) on the features' outcome labels:
    logistic regression of the label on the min over each solution's steps of its likelihood
    features, with the outcome head's own logit as a fixed offset; returns w. The backbone and
    every other head stay as they are. A convex problem of F <= 4 unknowns: Newton's method."""
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    use_mask = not is_causal_decoder(model)
    head = model.outcome_likelihood_head
    offsets, lows, labels = [], [], []
    order = sorted(range(len(features)), key=lambda i: feature_length(features[i]))
    for start in range(0, len(order), batch_size):
        batch = collate_features([features[i] for i in order[start:start + batch_size]], pad_token_id)
        output = model(batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device) if use_mask else None)
        end_logits, valid = _at_positions(output.outcome_logits, batch["outcome_positions"])  # the fixed offset
        offsets.append(end_logits[valid].double().cpu())
        lows.append(lowest_step_features(_path_features(output, batch))[valid].double().cpu())
        labels.append(batch["outcome_labels"][valid].double())
    offset, x, y = torch.cat(offsets), torch.cat(lows), torch.cat(labels)
    weights = torch.zeros(x.shape[1], dtype=torch.float64)
    for _ in range(newton_steps):
        p = torch.sigmoid(offset + x @ weights)
        gradient = x.T @ (p - y) / len(y) + l2 * weights
        hessian = (x.T * (p * (1 - p))) @ x / len(y) + l2 * torch.eye(len(weights), dtype=torch.float64)
        weights -= torch.linalg.solve(hessian, gradient)
    head.weight.copy_(weights.to(head.weight.dtype)[None])
    model.train(was_training)
    return weights.tolist()


# ------------------------------------------------------------------------------------------ eval
@torch.no_grad()
def evaluate(model: RewardModel, features: list[dict], objective: str, pad_token_id: int,
             batch_size: int = 32, device=None) -> dict[str, float]:
    """Held-out metrics: step accuracy / AUC / ProcessBench F1 (prm, joint), outcome accuracy /
    AUC (orm, joint), pair accuracy (pairwise)."""
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    use_mask = not is_causal_decoder(model)
    order = sorted(range(len(features)), key=lambda i: feature_length(features[i]))
    step_probs, step_labels, outcome_scores, outcome_labels, chosen, rejected = [], [], [], [], [], []
    whole = []  # per solution: no step label cut off by max_length
    for start in range(0, len(order), batch_size):
        chunk = [features[i] for i in order[start:start + batch_size]]
        if objective == "pairwise":
            batch = collate_pairs(chunk, pad_token_id)
        else:
            batch = collate_features(chunk, pad_token_id)
        output = model(batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device) if use_mask else None)
        if objective in ("prm", "joint"):
            probabilities = torch.sigmoid(output.step_logits.float()).cpu()
            for row, feature in enumerate(chunk):
                step_probs.append(probabilities[row, feature["label_positions"]].tolist())
                step_labels.append(feature["labels"])
                whole.append(not feature.get("n_dropped"))
        if objective in ("orm", "joint", "pairwise"):
            values, valid = solution_outcomes(model, output, batch)
            values = values.float().cpu()
            if objective == "pairwise":
                pairs = len(chunk)
                both = valid[:pairs] & valid[pairs:]
                chosen += values[:pairs][both].tolist()
                rejected += values[pairs:][both].tolist()
            else:
                outcome_scores += values[valid].tolist()
                outcome_labels += batch["outcome_labels"][valid].tolist()
    model.train(was_training)
    metrics: dict[str, float] = {}
    if step_probs:
        flat_probs = [p for row in step_probs for p in row]
        flat_labels = [y for row in step_labels for y in row]
        # A solution cut by max_length may have lost its first error: ProcessBench leaves it out.
        bench = processbench_f1([p for p, kept in zip(step_probs, whole) if kept],
                                [y for y, kept in zip(step_labels, whole) if kept])
        metrics.update({
            "step_accuracy": step_accuracy(flat_probs, flat_labels),
            "step_auc": step_auc(flat_probs, flat_labels),
            "processbench_f1": bench["f1"],
            "processbench_error_accuracy": bench["error_accuracy"],
            "processbench_correct_accuracy": bench["correct_accuracy"],
        })
    if outcome_scores:
        metrics["outcome_accuracy"] = step_accuracy([1 / (1 + math.exp(-s)) for s in outcome_scores], outcome_labels)
        metrics["outcome_auc"] = step_auc(outcome_scores, outcome_labels)
    if chosen:
        metrics["pair_accuracy"] = pairwise_accuracy(chosen, rejected)
    return metrics


class BatchStream:
    """Endless micro-batches over epochs; remembers (epoch, next_batch) for checkpoints."""

    def __init__(self, loader, sampler: LengthGroupedBatchSampler, epoch: int = 0, next_batch: int = 0):
        self.loader, self.sampler = loader, sampler
        self.epoch, self.next_batch = epoch, next_batch
        self.sampler.set_epoch(epoch, start_batch=next_batch)
        self.iterator = iter(loader)

    def next(self) -> dict:
        if self.next_batch >= len(self.sampler):
            self.epoch, self.next_batch = self.epoch + 1, 0
            self.sampler.set_epoch(self.epoch)
            self.iterator = iter(self.loader)
        self.next_batch += 1
        return next(self.iterator)


# What a fresh run writes into --output_dir (removed by --overwrite_output_dir), and the options
# that do not change the trained model (a checkpoint may be resumed with other values of these).
RUN_OUTPUTS = ("checkpoints", "metrics.jsonl", "eval_results.json", "train_config.json", "tensorboard", "README.md",
               *MODEL_FILES)
NOT_IN_FINGERPRINT = ("output_dir", "resume", "overwrite_output_dir", "progress", "save_every", "save_minutes", "log_every",
                      "eval_every", "eval_batch_size", "tensorboard", "save_adapter", "adapter_only",
                      "report_to", "push_to_hub", "hub_model_id", "hub_private_repo")


# ------------------------------------------------------------------------------------------ recipe
@dataclass
class TrainingData:
    """What a run trains and evaluates on, encoded for its model."""

    tokenizer: Any
    model: RewardModel
    train_records: list[dict]
    eval_records: list[dict]
    train_features: list[dict]
    eval_features: list[dict]
    # The training features with every step labelled: what the outcome likelihood weights are
    # fitted on, as the outcome reads every step at inference (train_features may stop at a
    # solution's first wrong step, --first_wrong_only).
    outcome_fit_features: list[dict]


def prepare_data(config: TrainConfig, resume_dir: Path | None) -> TrainingData:
    """Records -> held-out split -> tokenizer and model -> features (labels after a first wrong
    step dropped with --first_wrong_only)."""
    records = load_records(config.data, config.objective, synthetic_problems=config.synthetic_problems, seed=config.seed,
                           separator=config.separator)
    warn_about_copies(records, config.data)
    if config.eval_data:
        train_records = records
        eval_records = without_training_records(
            load_records(config.eval_data, config.objective,
                         synthetic_problems=max(1, round(config.synthetic_problems * config.eval_fraction)),
                         seed=config.seed + 1, separator=config.separator), train_records)
        warn_about_shared_prompts(eval_records, train_records)
    else:
        train_records, eval_records = _split(records, config.eval_fraction, config.seed, by=config.split_by)
        if eval_records:
            eval_records = without_training_records(eval_records, train_records)
            warn_about_shared_prompts(eval_records, train_records)
    tokenizer, model = build_model(config, train_records, tokenizer_dir=str(resume_dir) if resume_dir else None)
    if config.lm_coef > 0 and not model.can_model_language:
        raise ValueError(f"--lm_coef needs next-token logits, and {config.model} has neither an LM head nor "
                         "output embeddings tied to its input embeddings")
    train_features, dropped = encode_records(tokenizer, train_records, model.settings, config.max_length)
    if dropped:
        warnings.warn(f"{dropped} step labels of the training data lie beyond --max_length {config.max_length} "
                      "and are left out (raise --max_length to keep them)", stacklevel=3)
    all_steps = train_features
    if config.first_wrong_only and config.objective in ("prm", "joint"):
        train_features = [drop_labels_after_first_wrong(feature) for feature in train_features]
    eval_features, eval_dropped = encode_records(tokenizer, eval_records, model.settings, config.max_length)
    if eval_dropped:
        warnings.warn(f"{eval_dropped} step labels of the held-out data lie beyond --max_length {config.max_length}: "
                      "their steps are not scored, and ProcessBench leaves those solutions out", stacklevel=3)
    for name, records, features in (("training", train_records, train_features), ("held-out", eval_records, eval_features)):
        if records and not any(_has_label(feature, config.objective) for feature in features):
            raise ValueError(f"no step label of the {name} data fits --max_length {config.max_length} "
                             f"({len(records)} records): raise --max_length or shorten the records")
    return TrainingData(tokenizer, model, train_records, eval_records, train_features, eval_features, all_steps)


@dataclass
class Batching:
    """How batches reach the model: the loader, its sampler, and how rows are masked."""

    loader: Any
    sampler: LengthGroupedBatchSampler
    use_mask: bool  # a bidirectional backbone gets its padding mask
    mask_dtype: torch.dtype


def make_batching(config: TrainConfig, data: TrainingData, accelerator) -> Batching:
    from torch.utils.data import DataLoader

    model = data.model
    processes = accelerator.num_processes
    if len(data.train_features) < config.batch_size * processes * config.grad_accum:
        held_out = ""
        if not config.eval_data and data.eval_records:
            read = len(data.train_records) + len(data.eval_records)
            held_out = (f" ({len(data.eval_records)} of the {read} read are held out by "
                        f"--eval_fraction {config.eval_fraction})")
        accumulation = f" x --grad_accum {config.grad_accum}" if config.grad_accum > 1 else ""
        raise ValueError(f"{len(data.train_features)} training records{held_out} are fewer than one batch "
                         f"(--batch_size {config.batch_size} x {processes} process{'es' if processes > 1 else ''}"
                         f"{accumulation}): lower --batch_size{' or --grad_accum' if accumulation else ''} or add records")
    use_mask = not is_causal_decoder(model)
    solutions_per_prompt = config.solutions_per_prompt
    reason = tree_mask_unsupported(model)
    if solutions_per_prompt > 1 and reason:
        solutions_per_prompt = 1
        warnings.warn(f"--solutions_per_prompt needs a causal decoder with sdpa or eager attention; {reason}, "
                      "so every sequence is encoded on its own", stacklevel=3)
    sampler = LengthGroupedBatchSampler([feature_length(f) for f in data.train_features], config.batch_size,
                                        num_processes=accelerator.num_processes,
                                        process_index=accelerator.process_index, seed=config.seed,
                                        group_by_length=config.group_by_length,
                                        prompts=[prompt_key(f) for f in data.train_features],
                                        solutions_per_prompt=solutions_per_prompt, accumulation_steps=config.grad_accum)
    collate = collate_pairs if config.objective == "pairwise" else collate_features
    loader = DataLoader(data.train_features, batch_sampler=sampler,
                        collate_fn=partial(collate, pad_token_id=data.tokenizer.pad_token_id,
                                           solutions_per_row=solutions_per_prompt))
    mask_dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    return Batching(loader, sampler, use_mask, mask_dtype)


HEAD_MODULES = ("step_head", "outcome_head", "likelihood_head", "outcome_likelihood_head")  # RewardModel's own layers, not the backbone's


def make_optimizer(config: TrainConfig, model: RewardModel, device: torch.device):
    """AdamW and its schedule. The scheduler is stepped by hand once per optimizer step (not
    through accelerate, which would step it once per process), so the schedule is the same for
    any process count; a resumed run brings it to its step with `advance_schedule`. The fused
    kernel updates all parameters in one call: ~15 % faster steps for small models."""
    from transformers import get_scheduler

    heads, body = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (heads if name.split(".")[0] in HEAD_MODULES else body).append(parameter)
    groups = [{"params": body, "lr": config.lr}, {"params": heads, "lr": config.head_lr or config.lr}]
    optimizer = torch.optim.AdamW([group for group in groups if group["params"]], lr=config.lr,
                                  weight_decay=config.weight_decay, fused=device.type in ("cpu", "cuda"))
    scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.warmup_steps,
                              num_training_steps=config.max_steps)
    return optimizer, scheduler


def advance_schedule(scheduler, steps: int) -> None:
    """Bring a fresh scheduler to where it stood after `steps` optimizer steps. The learning rate
    is a function of the step alone (as `prm sft`'s is), so a checkpoint needs only the step in
    its trainer_state.json: no scheduler state is saved, and none is unpickled on --resume."""
    with warnings.catch_warnings():  # torch warns that no optimizer step came first: none is due
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
        for _ in range(steps):
            scheduler.step()


def loss_weights(config: TrainConfig) -> dict[str, float]:
    """The weight of each loss term in the optimised loss (and in the logged `loss`)."""
    return {"step": 1.0, "outcome": config.outcome_weight if config.objective == "joint" else 1.0,
            "lm": config.lm_coef}


def accumulate_gradients(model, micro_batches: list[dict], config: TrainConfig, batching: Batching,
                         accelerator) -> dict[str, float]:
    """Forward and backward over the micro-batches of one optimizer step; returns the mean
    loss of each term. Every term is divided by its item count over all micro-batches and all
    processes (DDP averages gradients, hence the factor)."""
    totals = {name: torch.zeros((), device=accelerator.device) for name in _loss_names(config)}
    for batch in micro_batches:
        for name, count in _labelled_items(batch, config).items():
            totals[name] += count
    totals = {name: accelerator.reduce(count, reduction="sum").clamp(min=1) for name, count in totals.items()}
    weights = loss_weights(config)
    summed = {name: 0.0 for name in totals}
    for index, batch in enumerate(micro_batches):
        with nullcontext() if index == len(micro_batches) - 1 else accelerator.no_sync(model):
            with accelerator.autocast():  # --mixed_precision: the compute dtype of training alone
                output = model(batch["input_ids"], **model_inputs(batch, batching.use_mask, batching.mask_dtype,
                                                                  lm=config.lm_coef > 0))
            sums = loss_sums(output, batch, config)
            loss = sum(weights[name] * value / totals[name] for name, value in sums.items())
            accelerator.backward(loss * accelerator.num_processes)
        for name, value in sums.items():
            summed[name] += value.detach()
    return {name: float(accelerator.reduce(value, reduction="sum")) / float(totals[name])
            for name, value in summed.items()}


def batch_tokens(micro_batches: list[dict], accelerator) -> tuple[int, int, int]:
    """(tokens of the training sequences, tokens computed in the rows, row slots) over all
    processes: shared prompts and step prefixes are computed once, rows are padded."""
    counts = torch.tensor([[int(b["num_tokens"]), int(b["num_computed"]), b["input_ids"].numel()]
                           for b in micro_batches], device=accelerator.device).sum(0)
    return tuple(int(value) for value in accelerator.reduce(counts, reduction="sum").tolist())


def train(config: TrainConfig) -> Path:
    """Train a reward model as `config` says; returns the directory of the saved model."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=config.cpu)
    set_seed(config.seed)
    output_dir = Path(config.output_dir)
    check_output_dir(output_dir, overwrite=config.overwrite_output_dir, resuming=bool(config.resume),
                     written=RUN_OUTPUTS)
    fingerprint = run_fingerprint(config, ignore=NOT_IN_FINGERPRINT, data_fields=("data", "eval_data"),
                                  model_fields=("model",))
    if accelerator.num_processes > 1:
        # Each process adds --batch_size examples to a step and the sampler position counts one
        # process's micro-batches. Left out for one process, so earlier checkpoints still resume.
        fingerprint["num_processes"] = accelerator.num_processes
    resume_dir = None
    if config.resume:
        resume_dir = checkpoint_to_resume(output_dir, config.resume)
        check_resume(resume_dir, fingerprint)

    data = prepare_data(config, resume_dir)
    batching = make_batching(config, data, accelerator)
    optimizer, scheduler = make_optimizer(config, data.model, accelerator.device)
    model, optimizer = accelerator.prepare(data.model, optimizer)
    # Under --mixed_precision, prepare puts autocast into the model's forward. It is taken out again:
    # evaluation and the outcome likelihood fit must score as the saved model does (float32, as
    # `prm.load` runs it), so only the training forward autocasts (`accumulate_gradients`).
    accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    step, epoch, next_batch = 0, 0, 0
    if resume_dir is not None:
        state = json.loads((resume_dir / "trainer_state.json").read_text())
        step, epoch, next_batch = state["step"], state["epoch"], state["next_batch"]
    # Made before the checkpoint's RNG states are restored: a DataLoader iterator takes a draw of
    # the global torch RNG, which the run that saved them took before its first step (dropout
    # after a resume would draw other masks).
    stream = BatchStream(batching.loader, batching.sampler, epoch, next_batch)
    if resume_dir is not None:
        _load_checkpoint(accelerator, model, optimizer, resume_dir)
        advance_schedule(scheduler, step)

    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if resume_dir is None:
            (output_dir / "metrics.jsonl").unlink(missing_ok=True)  # a fresh run starts a fresh log
        else:
            keep_log_until(output_dir / "metrics.jsonl", step)  # the steps after the checkpoint are redone
        # The options that repeat the run (a resume is how this run went on, not one of them).
        (output_dir / "train_config.json").write_text(json.dumps(saved_config(config), indent=2) + "\n")
    logger = (MetricsLogger(output_dir, trackers=trackers_of(config), command="train", config=asdict(config))
              if accelerator.is_main_process else None)
    progress = tqdm(total=config.max_steps, initial=step, disable=not (config.progress and accelerator.is_main_process),
                    desc=f"train {config.objective}")
    meter = ThroughputMeter()
    clock = SaveClock(config.save_every, config.save_minutes)
    model.train()
    with StopSignals() as stop:
        while step < config.max_steps:
            micro_batches = [{k: v.to(accelerator.device) for k, v in stream.next().items()}
                             for _ in range(config.grad_accum)]
            losses = accumulate_gradients(model, micro_batches, config, batching, accelerator)
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1

            # The loss optimised: the terms weighted as in `accumulate_gradients` (`loss_<term>` unweighted).
            meter.add(*batch_tokens(micro_batches, accelerator),
                      loss=sum(loss_weights(config)[name] * value for name, value in losses.items()))
            progress.update(1)
            progress.set_postfix(loss=f"{meter.last_loss:.4f}")
            if logger is not None and (step % config.log_every == 0 or step == config.max_steps):
                logger.log(step, {**meter.window(), **{f"loss_{name}": value for name, value in losses.items()},
                                  "lr": scheduler.get_last_lr()[0], "epoch": stream.epoch})
            if config.log_every and step % config.log_every == 0:
                meter.new_window()
            with meter.paused():  # evaluation and checkpoints do not count as training time
                if step == config.max_steps and config.outcome_likelihood_features:
                    weights = fit_outcome_likelihood(accelerator.unwrap_model(model), data.outcome_fit_features,
                                                     data.tokenizer.pad_token_id, config.eval_batch_size,
                                                     accelerator.device)
                    progress.write("outcome likelihood weights: " + ", ".join(f"{w:.3f}" for w in weights))
                if (config.eval_every and step % config.eval_every == 0) or step == config.max_steps:
                    _evaluate_and_log(config, accelerator, model, data, step, logger, progress, output_dir)
                save, stopping = save_or_stop(accelerator, stop, clock, step)
                if step < config.max_steps and save:
                    saved_to = checkpoint_path(output_dir, step)
                    _save_checkpoint(accelerator, saved_to, data.tokenizer,
                                     {"step": step, "epoch": stream.epoch, "next_batch": stream.next_batch}, fingerprint)
                    clock.saved()
                    if stopping:
                        progress.close()
                        raise interrupted(stop, step, config.max_steps, saved_to, "train", config)
    progress.close()
    if logger is not None:
        logger.log(step, meter.summary())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _save_final(config, accelerator.unwrap_model(model), data, output_dir, accelerator.num_processes)
        logger.close()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return output_dir


def _evaluate_and_log(config: TrainConfig, accelerator, model, data: TrainingData, step: int, logger, progress,
                      output_dir: Path) -> None:
    if accelerator.is_main_process and data.eval_features:
        metrics = evaluate(accelerator.unwrap_model(model), data.eval_features, config.objective,
                           data.tokenizer.pad_token_id, config.eval_batch_size, accelerator.device)
        logger.log(step, {f"eval/{key}": value for key, value in metrics.items()})
        progress.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if step == config.max_steps:
            (output_dir / "eval_results.json").write_text(dumps({"step": step, **metrics}, indent=2) + "\n")
    accelerator.wait_for_everyone()


def _save_final(config: TrainConfig, final: RewardModel, data: TrainingData, output_dir: Path,
                processes: int = 1) -> None:
    """The final model: LoRA merged in place, an ordinary HF directory with the tokenizer beside
    it (or, with --adapter_only, the adapter and heads for the base named by --model)."""
    if config.adapter_only:
        final.save_pretrained(output_dir, adapter_only=True, base_model=config.model)
    else:
        if config.save_adapter:
            final.save_lora_adapter(output_dir / ADAPTER_DIR)
        final.merge_lora()
        final.save_pretrained(output_dir)
    data.tokenizer.save_pretrained(output_dir)
    _write_card(config, output_dir, data.train_records, data.eval_records, final.settings, processes)


def _save_checkpoint(accelerator, directory: Path, tokenizer, state: dict, fingerprint: dict) -> None:
    """Every process writes its part into `<directory>.partial`, which the main process renames
    to `directory` once all are done: an interrupted save is never taken for a checkpoint."""
    import shutil

    partial = directory.with_name(directory.name + ".partial")
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    if accelerator.is_main_process:
        tokenizer.save_pretrained(partial)
        (partial / "trainer_state.json").write_text(json.dumps(state) + "\n")
        write_run_file(partial, fingerprint)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if directory.exists():
            shutil.rmtree(directory)
        partial.rename(directory)
    accelerator.wait_for_everyone()


def _load_checkpoint(accelerator, model, optimizer, directory: Path) -> None:
    """The model, optimizer, fp16 grad scaler and RNG states of a checkpoint: what
    `accelerator.load_state` reads, with nothing unpickled beyond `torch.load(weights_only=True)`.

    - The model is read from `model.safetensors` only (accelerate falls back to a pickled
      `pytorch_model.bin`).
    - `optimizer.bin` (and `scaler.pt`) go through accelerate's `load`, `torch.load` with
      weights_only=True; so does `random_states_<process>.pkl`, with numpy's RNG state types
      allowed as safe globals (accelerate.utils.other.load; checked for accelerate 1.16).
    - `load_state` itself is not called: it reads every `custom_checkpoint_<i>.pkl` of the folder
      with weights_only=False (`load_custom_state`), and refuses a folder whose count of them
      differs from the registered objects. Checkpoints written before hold the LR scheduler there;
      that file is never read (the schedule is rebuilt from the step, `advance_schedule`).
    """
    from accelerate.checkpointing import load_accelerator_state
    from accelerate.utils import DistributedType

    if not (directory / "model.safetensors").is_file():
        raise ValueError(f"{directory}: no model.safetensors in this checkpoint; {SAFETENSORS_ONLY}")
    on_device = (accelerator.num_processes > 1 and getattr(accelerator, "multi_device", False)  # as load_state
                 and accelerator.distributed_type != getattr(DistributedType, "MULTI_XPU", None))
    restored = load_accelerator_state(str(directory), [model], [optimizer], [], [], accelerator.process_index,
                                      scaler=accelerator.scaler, map_location="on_device" if on_device else "cpu")
    if "step" in restored:
        accelerator.step = restored["step"]


def _write_card(config: TrainConfig, output_dir: Path, train_records: list[dict], eval_records: list[dict],
                settings: RewardSettings, processes: int = 1) -> None:
    """README.md model card (and the hub upload with --push_to_hub)."""
    results = output_dir / "eval_results.json"
    metrics = json.loads(results.read_text()) if results.is_file() else None
    if metrics:
        metrics.pop("step", None)
    steps = sum(len(r.get("labels", ())) for r in train_records)
    if config.objective in ("orm", "pairwise"):
        auto = "AutoModelForSequenceClassification"
    else:
        auto = "AutoModelForCausalLM" if settings.head == "plus_minus" else "AutoModelForTokenClassification"
    where = config.hub_model_id if config.push_to_hub and config.hub_model_id else output_dir
    usage = f"""import prm
scorer = prm.load("{where}")
scorer.score_steps("What is 2 + 3?", ["2 + 3 = 5", "The answer is 5"])  # one probability per step
"""
    # Heads in reward_heads.safetensors (the old layout, --likelihood_features, --adapter_only) are
    # read by no transformers class: the class of the head would load with a freshly made one.
    if (output_dir / HEADS_FILE).is_file():
        usage += ("\n# no transformers class holds this model's heads (reward_heads.safetensors): load it with prm.load"
                  + (f"\n# (which fetches the base model {config.model} and applies adapter/)" if config.adapter_only
                     else ""))
    else:
        usage += f"""
# or the plain transformers class (see docs/training.md, "Checkpoint layouts"):
from transformers import {auto}
model = {auto}.from_pretrained("{where}")"""
    objective = {"prm": "PRM: per-step BCE at each step's separator", "orm": "ORM: outcome BCE",
                 "joint": f"joint PRM + ORM (outcome weight {config.outcome_weight})",
                 "pairwise": "pairwise Bradley-Terry reward model"}[config.objective]
    finish_run(output_dir, config, command="train", kind="process reward model" if config.objective in ("prm", "joint")
               else "outcome reward model", base_model=config.model,
               data={"source": config.data, "eval_source": config.eval_data,
                     "training records": len(train_records), "held-out records": len(eval_records),
                     "labelled steps (training)": steps if steps else "n/a (outcome or pairwise records)",
                     "label sources": label_source_counts(config.data),
                     "step separator": repr(settings.separator), "aggregation": settings.aggregation},
               objective=f"{objective}; head {settings.head}, {settings.num_labels} label(s)",
               steps=f"{config.max_steps} optimizer steps, batch {config.batch_size}"
                     + (f" x {processes} processes" if processes > 1 else "")
                     + f" x {config.grad_accum} accumulation, lr {config.lr} ({config.lr_scheduler}), seed {config.seed}"
                     + (f", LoRA r={config.lora_r} " + ("(adapter only)" if config.adapter_only else "(merged)")
                        if config.lora_r else ""),
               metrics=metrics, usage=usage, config_file="train_config.json")
