"""Supervised fine-tuning (SFT) of a policy on reference solutions.

Each training text is the policy prompt, the reference solution (one step a line, ending
"The answer is X") and EOS; the loss covers the solution and EOS tokens only::

    Question: Tom has 3 apples and buys 4 more. How many apples does he have?
    Solution:                     <- prompt: no loss
    3 + 4 = 7                     <- loss
    The answer is 7               <- loss
    <|endoftext|>                 <- loss

`--model tiny:small` builds a fresh `generation.tiny` model with a tokenizer trained on the
training texts, which is how the demo gets a policy for the synthetic task; any path or
hub id fine-tunes that model instead. The result is an ordinary HF directory.

    prm sft --data synthetic:tiny --model tiny:small --output_dir runs/policy --max_steps 2000
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from generation.loading import build_policy, load_policy
from prm.outputs import OutputOptions, Trackers, finish_run, trackers_of
from tasks.math.prompts import format_solution, policy_prompt
from tasks.math.records import read_problems, without_overlap
from tasks.math.synthetic import synthetic_preset
from tasks.math.types import Problem, RecordError


@dataclass
class SFTConfig(OutputOptions):
    """Options of `prm sft` (also the Python API: `train_sft(SFTConfig(...))`)."""

    data: str = field(default="synthetic:tiny", metadata={"help": "synthetic:<preset>, or a JSONL of problems with reference steps (question, answer, steps; GSM8K; MATH), step-labelled records (only all-correct ones are used) or prompt-completion records"})
    model: str = field(default="tiny:small", metadata={"help": "path or hub id of a causal LM, or tiny:<size> for a fresh generation.tiny model with a tokenizer trained on the data"})
    output_dir: str = field(default="runs/sft", metadata={"help": "where the fine-tuned policy (HF dir) and checkpoints go"})
    n_train: int = field(default=4000, metadata={"help": "number of synthetic training problems (synthetic data only)"})
    n_eval: int = field(default=200, metadata={"help": "held-out synthetic problems for the final accuracy (0 = skip)"})
    max_steps: int = field(default=1500, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "sequences per optimizer step"})
    lr: float = field(default=3e-3, metadata={"help": "peak learning rate (AdamW), linear warmup then cosine decay"})
    warmup_steps: int = field(default=50, metadata={"help": "linear warmup steps"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_length: int = field(default=256, metadata={"help": "longer texts are truncated (tokens)"})
    vocab_size: int = field(default=512, metadata={"help": "tokenizer size for tiny:<size> models"})
    seed: int = field(default=0, metadata={"help": "seed for data order, model init and sampling"})
    save_every: int = field(default=500, metadata={"help": "checkpoint every this many steps (0 = only at the end)"})
    resume: bool = field(default=False, metadata={"help": "continue from output_dir/checkpoint if it exists"})
    log_every: int = field(default=50, metadata={"help": "append the mean loss to output_dir/metrics.jsonl (and the --report_to trackers) every this many steps"})
    eval_every: int = field(default=0, metadata={"help": "also log held-out accuracy every this many steps (0 = only at the end)"})
    eval_temperatures: str = field(default="0,0.7", metadata={"help": "comma-separated sampling temperatures for the final held-out accuracy"})
    max_new_tokens: int = field(default=96, metadata={"help": "generation length for the held-out accuracy"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow custom model code from the hub"})


# --------------------------------------------------------------------------- data


def load_sft_problems(data: str, n_train: int, seed: int) -> list[Problem]:
    """Problems with reference steps from `synthetic:<preset>` or a problems file, read by
    `tasks.math.records.read_problems` with steps required: `{"question", "answer", "steps"}`,
    GSM8K `{"question", "answer": "... #### X"}`, MATH `{"problem", "solution"}`, step-labelled
    records `{"prompt", "completions", "labels"}` (a reference solution only if every label is
    true; others are counted and reported, not trained on), or prompt-completion records
    `{"prompt", "completion", ...}` such as the rejection-sampling export
    (`search.export.write_sft_jsonl`), whose completion is split into steps.
    Raises `RecordError` naming file, line and field for a malformed line.
    """
    problems = read_problems(data, n_synthetic=n_train, seed=seed, require_answer=False, require_steps=True)
    correct = [p for p in problems if all(label is True or label == 1.0 for label in p.meta.get("labels", [True]))]
    if len(correct) < len(problems):
        print(f"{data}: {len(problems) - len(correct)} records with an incorrect step are not reference solutions; "
              "not used")
    if not correct:
        raise RecordError("no usable reference solutions", path=str(data))
    return correct


def sft_example(tokenizer, problem: Problem, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one problem: labels are -100 on the prompt tokens.

    Prompt and solution are tokenized separately, as generation sees them (the policy
    continues the prompt's ids).
    """
    prompt_ids = tokenizer(policy_prompt(problem.question), add_special_tokens=False).input_ids
    solution_ids = tokenizer(format_solution(list(problem.steps)), add_special_tokens=False).input_ids
    solution_ids = solution_ids + [tokenizer.eos_token_id]
    input_ids = (prompt_ids + solution_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + solution_ids)[:max_length]
    return input_ids, labels


def pad_batch(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad (input_ids, labels) pairs into tensors [B, T] with an attention mask."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


# --------------------------------------------------------------------------- models


# --------------------------------------------------------------------------- evaluation


def heldout_accuracy(model, tokenizer, problems: list[Problem], *, temperature: float, max_new_tokens: int,
                     seed: int = 0) -> float:
    """Fraction of `problems` whose sampled solution (greedy at temperature 0) reaches the reference
    answer; sampled through `generation.policy.HFPolicy`, as search and PPO sample."""
    from generation.policy import HFPolicy
    from verifiers import is_correct

    was_training = model.training
    model.eval()
    policy = HFPolicy(model, tokenizer, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                      batch_size=64, use_chat_template=False)
    completions = [texts[0] for texts in policy.complete([policy_prompt(p.question) for p in problems], 1)]
    model.train(was_training)
    return sum(is_correct(p.answer, c) for c, p in zip(completions, problems)) / max(len(problems), 1)


# --------------------------------------------------------------------------- recipe


def _learning_rate(step: int, config: SFTConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(config.max_steps - config.warmup_steps, 1)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def batch_indices(step: int, n_examples: int, batch_size: int, seed: int) -> list[int]:
    """The examples of step `step`: a seeded permutation per pass over the data, so the data
    order is a function of the step alone and a resumed run sees the same batches."""
    indices = []
    position = step * batch_size
    while len(indices) < batch_size:
        epoch, offset = divmod(position, n_examples)
        order = np.random.default_rng([seed, epoch]).permutation(n_examples)
        take = min(batch_size - len(indices), n_examples - offset)
        indices += order[offset : offset + take].tolist()
        position += take
    return indices


def train_sft(config: SFTConfig) -> Path:
    """Fine-tune a policy on reference solutions; returns the output directory.

    The output directory holds the final model and tokenizer (`from_pretrained`-ready),
    `metrics.jsonl` (loss every `log_every` steps, held-out accuracy at the end) and
    `checkpoint/` (model, optimizer, step) for `--resume`.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    output_dir = Path(config.output_dir)
    checkpoint_dir = output_dir / "checkpoint"
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    problems = load_sft_problems(config.data, config.n_train, config.seed)
    texts = [policy_prompt(p.question) + format_solution(list(p.steps)) for p in problems]
    resuming = config.resume and (checkpoint_dir / "state.pt").exists()
    if resuming:
        model, tokenizer = load_policy(str(checkpoint_dir), trust_remote_code=config.trust_remote_code)
    else:
        model, tokenizer = build_policy(config.model, texts, vocab_size=config.vocab_size, seed=config.seed,
                                        trust_remote_code=config.trust_remote_code)
    examples = [sft_example(tokenizer, p, config.max_length) for p in problems]

    heldout = _heldout_problems(config, problems)

    accelerator = Accelerator()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_step = 0
    if resuming:
        state = torch.load(checkpoint_dir / "state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        start_step = state["step"]
        torch.random.set_rng_state(state["torch_rng"])
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()

    output_dir.mkdir(parents=True, exist_ok=True)
    log_path = output_dir / "metrics.jsonl"
    trackers = Trackers(trackers_of(config) if accelerator.is_main_process else [], output_dir, command="sft",
                        config=asdict(config))
    running_loss, running_count = 0.0, 0
    progress = tqdm(range(start_step, config.max_steps), desc="sft", initial=start_step, total=config.max_steps,
                    disable=not accelerator.is_main_process)
    for step in progress:
        indices = batch_indices(step, len(examples), config.batch_size, config.seed)
        batch = {k: v.to(accelerator.device) for k, v in pad_batch([examples[i] for i in indices], tokenizer.pad_token_id).items()}
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config)
        loss = model(**batch).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        running_loss += loss.item()
        running_count += 1
        if (step + 1) % config.log_every == 0 or step + 1 == config.max_steps:
            mean_loss = running_loss / running_count
            progress.set_postfix(loss=f"{mean_loss:.3f}")
            if accelerator.is_main_process:
                with log_path.open("a") as handle:
                    handle.write(json.dumps({"step": step + 1, "loss": mean_loss, "elapsed_s": progress.format_dict["elapsed"]}) + "\n")
                trackers.log({"loss": mean_loss, "lr": _learning_rate(step, config)}, step + 1)
            running_loss, running_count = 0.0, 0
        if heldout and config.eval_every and (step + 1) % config.eval_every == 0 and step + 1 < config.max_steps \
                and accelerator.is_main_process:
            trackers.log(_log_accuracy(accelerator.unwrap_model(model), tokenizer, heldout, config, step + 1,
                                       progress.format_dict["elapsed"], log_path), step + 1)
        if config.save_every and (step + 1) % config.save_every == 0 and step + 1 < config.max_steps:
            _save_checkpoint(accelerator, model, tokenizer, optimizer, step + 1, checkpoint_dir)

    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        unwrapped.save_pretrained(output_dir, safe_serialization=True)
        tokenizer.save_pretrained(output_dir)
        (output_dir / "sft_config.json").write_text(json.dumps(asdict(config), indent=2))
    _save_checkpoint(accelerator, model, tokenizer, optimizer, config.max_steps, checkpoint_dir)

    final_metrics = None
    if heldout and accelerator.is_main_process:
        final_metrics = _log_accuracy(unwrapped, tokenizer, heldout, config, config.max_steps,
                                      progress.format_dict["elapsed"], log_path)
        trackers.log(final_metrics, config.max_steps)
    if accelerator.is_main_process:
        _write_card(config, output_dir, problems, heldout, final_metrics)
    trackers.close()
    return output_dir


def _heldout_problems(config: SFTConfig, train_problems: list[Problem]) -> list[Problem]:
    """Fresh synthetic problems (another seed stream) minus any question seen in training
    (how many is printed)."""
    preset = synthetic_preset(config.data)
    if config.n_eval <= 0 or preset is None:
        return []
    from tasks.math.synthetic import generate_problems

    fresh = generate_problems(config.n_eval, preset=preset, seed=config.seed + 1_000_003)
    return without_overlap(fresh, train_problems)


def _log_accuracy(model, tokenizer, heldout: list[Problem], config: SFTConfig, step: int, elapsed: float,
                  log_path: Path) -> dict:
    result = {"step": step, "elapsed_s": elapsed, "n_eval": len(heldout)}
    for temperature in (float(t) for t in config.eval_temperatures.split(",") if t.strip()):
        result[f"accuracy_T{temperature:g}"] = heldout_accuracy(
            model, tokenizer, heldout, temperature=temperature, max_new_tokens=config.max_new_tokens, seed=config.seed)
    print(json.dumps(result))
    with log_path.open("a") as handle:
        handle.write(json.dumps(result) + "\n")
    return result


def _save_checkpoint(accelerator, model, tokenizer, optimizer, step: int, checkpoint_dir: Path) -> None:
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    partial = checkpoint_dir.with_name(checkpoint_dir.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    accelerator.unwrap_model(model).save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    torch.save({"optimizer": optimizer.state_dict(), "step": step, "torch_rng": torch.random.get_rng_state()},
               partial / "state.pt")
    # Swap in atomically so an interrupted save never leaves a half-written checkpoint.
    if checkpoint_dir.exists():
        import shutil

        shutil.rmtree(checkpoint_dir)
    partial.rename(checkpoint_dir)


def _write_card(config: SFTConfig, output_dir: Path, problems: list[Problem], heldout: list[Problem],
                metrics: dict | None) -> None:
    """README.md model card (and the hub upload with --push_to_hub)."""
    metrics = {k: v for k, v in (metrics or {}).items() if k.startswith("accuracy")} or None
    usage = f"""from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("{output_dir}")
tokenizer = AutoTokenizer.from_pretrained("{output_dir}")
# prompts as tasks.math.prompts.policy_prompt writes them; one step a line, ending with the answer line"""
    finish_run(output_dir, config, command="sft", kind="math policy", base_model=config.model,
               data={"source": config.data, "training records": f"{len(problems)} reference solutions",
                     "reference steps": sum(len(p.steps) for p in problems),
                     "held-out records": len(heldout),
                     "label sources": {"reference solutions (all steps correct)": None}},
               objective="SFT: causal-LM loss on the reference solution and EOS (the prompt is masked)",
               steps=f"{config.max_steps} optimizer steps, batch {config.batch_size}, lr {config.lr}, seed {config.seed}",
               metrics=metrics, usage=usage, config_file="sft_config.json")
