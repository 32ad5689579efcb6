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
    prm sft --data synthetic:tiny --model tiny:small --output_dir runs/policy --max_steps 2000 --resume latest

Checkpoints (`checkpoints/step-N/`: model, tokenizer, optimizer, RNG state and the loss window)
are written every `--save_every` steps, every `--save_minutes` and on SIGINT / SIGTERM, and
`--resume` continues to the same result as a run that was never stopped.
"""

from __future__ import annotations

import json
import math
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from generation.loading import build_policy, load_policy
from generation.policy import prompt_ids
from prm.outputs import OutputOptions, finish_run, trackers_of
from prm.recipe import (
    MODEL_FILES,
    MetricsLogger,
    SaveClock,
    StopSignals,
    check_output_dir,
    check_resume,
    checkpoint_path,
    checkpoint_to_resume,
    interrupted,
    keep_log_until,
    resume_choice,
    run_fingerprint,
    save_or_stop,
    saved_atomically,
    saved_config,
    write_run_file,
)
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
    max_length: int = field(default=256, metadata={"help": "longer texts are truncated (tokens); a record whose prompt fills it is skipped, with a warning"})
    vocab_size: int = field(default=512, metadata={"help": "tokenizer size for tiny:<size> models"})
    seed: int = field(default=0, metadata={"help": "seed for data order, model init and sampling"})
    save_every: int = field(default=500, metadata={"help": "checkpoint every this many steps (0 = only by --save_minutes)"})
    save_minutes: float = field(default=10.0, metadata={"help": "also checkpoint when this many minutes passed since the last one (0 = off); SIGINT / SIGTERM always save one"})
    resume: str | None = field(default=None, metadata={"help": "checkpoint directory, or 'latest' (newest under output_dir/checkpoints); it must come from a run with the same settings and data"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "start afresh in a non-empty --output_dir (its checkpoints and logs are removed)"})
    log_every: int = field(default=50, metadata={"help": "append the mean loss to output_dir/metrics.jsonl (and the --report_to trackers) every this many steps"})
    eval_every: int = field(default=0, metadata={"help": "also log held-out accuracy every this many steps (0 = only at the end)"})
    eval_temperatures: str = field(default="0,0.7", metadata={"help": "comma-separated sampling temperatures for the final held-out accuracy"})
    max_new_tokens: int = field(default=96, metadata={"help": "generation length for the held-out accuracy"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow custom model code from the hub"})

    def __post_init__(self) -> None:
        super().__post_init__()  # --report_to: a missing tracker package fails here
        if self.save_every < 0 or self.save_minutes < 0:
            raise ValueError(f"--save_every and --save_minutes must be >= 0 (0 = off), got {self.save_every} "
                             f"and {self.save_minutes}")


# What a fresh run writes into --output_dir besides the model (removed by --overwrite_output_dir),
# and the options that do not change the trained model (a checkpoint may be resumed with other
# values of these: they only say where and how often to save, log and evaluate).
RUN_OUTPUTS = ("checkpoints", "metrics.jsonl", "sft_config.json", "tensorboard", "README.md", *MODEL_FILES)
NOT_IN_FINGERPRINT = ("output_dir", "resume", "overwrite_output_dir", "save_every", "save_minutes", "log_every",
                      "n_eval", "eval_every", "eval_temperatures", "max_new_tokens", "trust_remote_code",
                      "report_to", "push_to_hub", "hub_model_id", "hub_private_repo")


# --------------------------------------------------------------------------- data


def load_sft_problems(data: str, n_train: int, seed: int) -> list[Problem]:
    """Problems with reference steps from `synthetic:<preset>` or a problems file, read by
    `tasks.math.records.read_problems` with steps required: `{"question", "answer", "steps"}`,
    GSM8K `{"question", "answer": "... #### X"}`, MATH `{"problem", "solution"}`, step-labelled
    records `{"prompt", "completions", "labels"}` (a reference solution only if every label is
    true; others are counted and reported, not trained on), or prompt-completion records
    `{"prompt", "completion", "label"?}` (not with a false label) such as the rejection-sampling export
    (`search.export.write_sft_jsonl`), whose completion is split into steps.
    Raises `RecordError` naming file, line and field for a malformed line.
    """
    problems = read_problems(data, n_synthetic=n_train, seed=seed, require_answer=False, require_steps=True)
    correct = [p for p in problems
               if all(label is True or label == 1.0 for label in [*p.meta.get("labels", []), p.meta.get("label", True)])]
    if len(correct) < len(problems):
        print(f"{data}: {len(problems) - len(correct)} records with an incorrect step or a false label are not "
              "reference solutions; not used")
    if not correct:
        raise RecordError("no usable reference solutions", path=str(data))
    return correct


def sft_example(tokenizer, problem: Problem, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one problem: labels are -100 on the prompt tokens.

    Prompt and solution are tokenized separately, as generation sees them (the policy
    continues the prompt's ids).
    """
    # The ids the samplers read (`HFPolicy`'s default): through the chat template when the
    # tokenizer has one, a plain prompt with the tokenizer's BOS, so that PPO, search and
    # labelling sample the prompt trained here.
    prompt = prompt_ids(tokenizer, policy_prompt(problem.question), bool(getattr(tokenizer, "chat_template", None)))
    solution_ids = tokenizer(format_solution(list(problem.steps)), add_special_tokens=False).input_ids
    solution_ids = solution_ids + [tokenizer.eos_token_id]
    input_ids = (prompt + solution_ids)[:max_length]
    labels = ([-100] * len(prompt) + solution_ids)[:max_length]
    return input_ids, labels


def examples_that_fit(tokenizer, problems: list[Problem], max_length: int, source: str
                      ) -> tuple[list[Problem], list[tuple[list[int], list[int]]]]:
    """(problems, examples) without the problems whose prompt leaves no solution token within
    `max_length` (they would train on nothing, and a batch of only such rows has no loss): each
    is named in a warning and counted. Those cut partway through the solution are kept, and
    counted. `source`: the data the problems came from, for the warnings."""
    kept, examples, cut = [], [], 0
    for problem in problems:
        input_ids, labels = sft_example(tokenizer, problem, max_length)
        if all(label == -100 for label in labels):
            print(f"prm sft: warning: {source}, problem {problem.id}: skipped, its prompt leaves no solution token "
                  f"within --max_length {max_length}", file=sys.stderr)
            continue
        cut += labels[-1] != tokenizer.eos_token_id
        kept.append(problem)
        examples.append((input_ids, labels))
    if len(kept) < len(problems):
        print(f"prm sft: warning: {len(problems) - len(kept)} of {len(problems)} records skipped: their prompt "
              f"fills --max_length {max_length}", file=sys.stderr)
    if cut:
        print(f"prm sft: warning: {cut} of {len(kept)} solutions are cut at --max_length {max_length} and train "
              "without their end (raise --max_length to keep them)", file=sys.stderr)
    if not kept:
        raise ValueError(f"no record fits --max_length {max_length}")
    return kept, examples


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
                      batch_size=64)
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
    `checkpoints/step-N/` for `--resume`.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    output_dir = Path(config.output_dir)
    check_output_dir(output_dir, overwrite=config.overwrite_output_dir, resuming=resume_choice(config.resume) is not None,
                     written=RUN_OUTPUTS)
    fingerprint = run_fingerprint(config, ignore=NOT_IN_FINGERPRINT, data_fields=("data",))
    resume_dir = checkpoint_to_resume(output_dir, config.resume)
    if resume_dir is not None:
        check_resume(resume_dir, fingerprint)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    problems = load_sft_problems(config.data, config.n_train, config.seed)
    texts = [policy_prompt(p.question) + format_solution(list(p.steps)) for p in problems]
    if resume_dir is not None:
        model, tokenizer = load_policy(str(resume_dir), trust_remote_code=config.trust_remote_code, dtype=torch.float32)
    else:
        model, tokenizer = build_policy(config.model, texts, vocab_size=config.vocab_size, seed=config.seed,
                                        trust_remote_code=config.trust_remote_code, dtype=torch.float32)
    problems, examples = examples_that_fit(tokenizer, problems, config.max_length, config.data)

    heldout = _heldout_problems(config, problems)

    accelerator = Accelerator()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_step, running_loss, running_count = 0, 0.0, 0
    if resume_dir is not None:
        state = torch.load(resume_dir / "state.pt", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        start_step, running_loss, running_count = state["step"], state["running_loss"], state["running_count"]
        torch.random.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and len(state["cuda_rng"]):
            torch.cuda.set_rng_state(state["cuda_rng"])
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()

    logger = None
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if resume_dir is None:  # the options of the run; a resume keeps them (up to NOT_IN_FINGERPRINT)
            (output_dir / "sft_config.json").write_text(json.dumps(saved_config(config), indent=2))
        keep_log_until(output_dir / "metrics.jsonl", start_step)  # the steps after the checkpoint are redone
        logger = MetricsLogger(output_dir, trackers=trackers_of(config), command="sft", config=asdict(config))
    progress = tqdm(range(start_step, config.max_steps), desc="sft", initial=start_step, total=config.max_steps,
                    disable=not accelerator.is_main_process)
    clock = SaveClock(config.save_every, config.save_minutes)
    with StopSignals() as stop:
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

            done = step + 1
            running_loss += loss.item()
            running_count += 1
            if done % config.log_every == 0 or done == config.max_steps:
                mean_loss = running_loss / running_count
                progress.set_postfix(loss=f"{mean_loss:.3f}")
                if logger is not None:
                    logger.log(done, {"loss": mean_loss, "lr": _learning_rate(step, config),
                                      "elapsed_s": progress.format_dict["elapsed"]})
                running_loss, running_count = 0.0, 0
            if heldout and config.eval_every and done % config.eval_every == 0 and done < config.max_steps \
                    and logger is not None:
                _log_accuracy(accelerator.unwrap_model(model), tokenizer, heldout, config, done,
                              progress.format_dict["elapsed"], logger)
            save, stopping = save_or_stop(accelerator, stop, clock, done)
            if done < config.max_steps and save:
                saved_to = checkpoint_path(output_dir, done)
                _save_checkpoint(accelerator, model, tokenizer, optimizer,
                                 {"step": done, "running_loss": running_loss, "running_count": running_count},
                                 saved_to, fingerprint)
                clock.saved()
                if stopping:
                    progress.close()
                    raise interrupted(stop, done, config.max_steps, saved_to, "sft", config)

    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        unwrapped.save_pretrained(output_dir, safe_serialization=True)
        tokenizer.save_pretrained(output_dir)

    final_metrics = None
    if heldout and logger is not None:
        final_metrics = _log_accuracy(unwrapped, tokenizer, heldout, config, config.max_steps,
                                      progress.format_dict["elapsed"], logger)
    if logger is not None:
        _write_card(config, output_dir, problems, heldout, final_metrics)
        logger.close()
    accelerator.wait_for_everyone()
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
                  logger: MetricsLogger) -> dict:
    result = {"elapsed_s": elapsed, "n_eval": len(heldout)}
    for temperature in (float(t) for t in config.eval_temperatures.split(",") if t.strip()):
        result[f"accuracy_T{temperature:g}"] = heldout_accuracy(
            model, tokenizer, heldout, temperature=temperature, max_new_tokens=config.max_new_tokens, seed=config.seed)
    print(json.dumps({"step": step, **result}))
    logger.log(step, result)
    return result


def _save_checkpoint(accelerator, model, tokenizer, optimizer, state: dict, directory: Path,
                     fingerprint: dict) -> None:
    """Model, tokenizer, optimizer, RNG state and `state` (step, loss window) into `directory`,
    with the run's fingerprint, written whole or not at all (`saved_atomically`)."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with saved_atomically(directory) as partial:
            accelerator.unwrap_model(model).save_pretrained(partial, safe_serialization=True)
            tokenizer.save_pretrained(partial)
            cuda_rng = torch.cuda.get_rng_state() if torch.cuda.is_available() else torch.empty(0, dtype=torch.uint8)
            torch.save({**state, "optimizer": optimizer.state_dict(), "torch_rng": torch.random.get_rng_state(),
                        "cuda_rng": cuda_rng}, partial / "state.pt")
            write_run_file(partial, fingerprint)
    accelerator.wait_for_everyone()


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
