"""`prm score`: score the steps of every solution in a JSONL file with a reward model.

Two record kinds are read (a file may mix them):

- step-labelled ``{"prompt", "completions": [step, ...], "labels": [...]}``: the completions
  are the steps of one solution -> ``"step_scores": [p, ...]`` and ``"score"``.
- candidates ``{"prompt", "completions": [solution, ...]}`` (no labels): each completion is a
  whole solution, split into steps -> ``"step_scores": [[p, ...], ...]`` and ``"scores"``;
  the prompt is encoded once and shared by its candidates. Checked by
  `tasks.math.records.candidates_from_record`, as `prm rerank` and `prm label` check them (an
  empty candidate is an error naming file, line and field).

Every other field of a record is copied to the output unchanged.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from prm.recipe import check_output_file, run_fingerprint, start_output_file
from tasks.math.limits import TooLong
from tasks.math.loaders import iter_jsonl
from tasks.math.records import candidates_from_record
from tasks.math.steps import split_steps
from tasks.math.types import RecordError, validate_step_example


@dataclass
class ScoreConfig:
    """Options of `prm score`."""

    model: str = field(metadata={"help": "Reward model: a local directory or hub id (e.g. Qwen/Qwen2.5-Math-PRM-7B)"})
    input: str = field(metadata={"help": "JSONL of step-labelled records or {prompt, completions} candidates"})
    output: str = field(default="", metadata={"help": "Output JSONL; empty: <input>.scored.jsonl next to the input, or for a hub dataset owner/name[:split] <name>[.<split>].scored.jsonl in the current folder"})
    format: str = field(default="auto", metadata={"help": "auto | native | qwen-prm | math-shepherd | rlhflow"})
    aggregation: str = field(default="", metadata={"help": "min | prod | last | mean; empty: the model's own default"})
    batch_size: int = field(default=16, metadata={"help": "Sequences per forward pass"})
    device: str = field(default="", metadata={"help": "cpu, cuda, cuda:1, ...; empty: cuda if available, else cpu"})
    dtype: str = field(default="", metadata={"help": "float32 | bfloat16 | float16; empty: as saved"})
    step_style: str = field(default="", metadata={
        "help": "Split candidate solutions with tasks.math.steps.split_steps in this style; empty: at the "
                "model's step separator"})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the hub (off by default)"})
    overwrite_output: bool = field(default=False, metadata={"help": "Replace an existing --output (without it, or --resume latest, an existing output is refused)"})
    resume: str | None = field(default=None, metadata={"help": "'latest': continue an interrupted --output of the same run (same model, input and options)"})

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {self.batch_size}")
        # Decided here, while --input still names the hub dataset (the command reads its copy in
        # the datasets cache, and the output does not belong there).
        if not self.output:
            from commands.hub_data import is_hub_dataset

            if is_hub_dataset(self.input):
                self.output = hub_output_name(self.input)


def hub_output_name(dataset: str) -> str:
    """The default output of `prm score --input owner/name[:split]`: <name>[.<split>].scored.jsonl."""
    import re

    name, _, split = dataset.partition(":")
    parts = [name.rsplit("/", 1)[-1]] + ([split] if split else [])
    return ".".join(re.sub(r"[^\w.-]+", "_", part).strip("._") or "split" for part in parts) + ".scored.jsonl"


# Options that do not change what is written for a record.
NOT_IN_FINGERPRINT = ("output", "overwrite_output", "resume", "batch_size", "device")


def _read_records(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) for every non-blank line; malformed lines, or none, raise RecordError."""
    records = []
    for line_number, record in iter_jsonl(path):
        if "labels" in record:
            # Checked, but written back as given: a record's other fields, labels included, are
            # the user's (1 stays 1, not True).
            record = {**record, **validate_step_example(record, path=str(path), line=line_number),
                      "labels": record["labels"]}
        else:  # a candidates record, or a GSM8K row read as one
            candidate = candidates_from_record(record, path=str(path), line=line_number)
            record = {**record, "prompt": candidate.prompt, "completions": candidate.completions}
            if candidate.reference is not None:
                record["reference"] = candidate.reference
        records.append((line_number, record))
    if not records:  # as every other command: an empty input is a mistake, not an empty output
        raise RecordError("no records", path=str(path))
    return records


def score_file(config: ScoreConfig) -> Path:
    """Score `config.input` and write `config.output`; returns the output path."""
    from tqdm.auto import tqdm

    from prm.scoring import load

    source = Path(config.input)
    target = Path(config.output) if config.output else source.with_suffix(".scored.jsonl")
    records = _read_records(source)
    fingerprint = run_fingerprint(config, ignore=NOT_IN_FINGERPRINT, data_fields=("input",), model_fields=("model",))
    check_output_file(target, overwrite=config.overwrite_output, resuming=bool(config.resume))
    scorer = load(config.model, device=config.device or None, dtype=config.dtype or None, format=config.format,
                  trust_remote_code=config.trust_remote_code, batch_size=config.batch_size,
                  aggregation=config.aggregation or None)
    # Checked before the model loads (a fast refusal), claimed after it loaded (a failed load
    # leaves no empty output behind).
    done = start_output_file(target, fingerprint, overwrite=config.overwrite_output, resume=config.resume)
    if done:
        print(f"prm score: resuming {target} after {done} of {len(records)} records")

    def split(text: str) -> list[str]:
        if config.step_style:
            return split_steps(text, style=config.step_style)
        return split_steps(text, separator=scorer.encoder.separator)

    skipped = skipped_candidates = 0

    def skip(line: int, record: dict, error: TooLong) -> dict:
        nonlocal skipped
        skipped += 1
        print(f"prm score: warning: {source}, line {line}: skipped, {error}", file=sys.stderr)
        return {**record, "step_scores": None, ("score" if "labels" in record else "scores"): None,
                "skipped": str(error)}

    # Records go out in input order, a chunk at a time, flushed as written; the step-labelled
    # solutions of a chunk are batched together. A record too long for the model is written
    # with null scores and a warning naming its line; the other records are kept.
    chunk = max(config.batch_size * 8, 1)
    with target.open("a", encoding="utf-8") as handle, tqdm(total=len(records), initial=done, desc="prm score",
                                                            unit="record") as bar:
        for start in range(done, len(records), chunk):
            part = records[start: start + chunk]
            results: dict[int, dict] = {}
            labelled = []
            for line, record in part:
                if "labels" not in record:
                    continue
                error = _too_long(scorer, record["prompt"], record["completions"])
                if error is not None:
                    results[line] = skip(line, record, error)
                else:
                    labelled.append((line, record))
            scores = scorer.score_steps_batch([r["prompt"] for _, r in labelled], [r["completions"] for _, r in labelled])
            for (line, record), step_scores in zip(labelled, scores):
                results[line] = {**record, "step_scores": step_scores, "score": scorer.aggregate(step_scores)}
            for line, record in part:
                if "labels" in record:
                    continue
                solutions = []
                for index, completion in enumerate(record["completions"]):
                    steps = split(completion)
                    if not steps:
                        raise RecordError(f"completion {index} has no steps", path=str(source), line=line,
                                          field="completions")
                    solutions.append(steps)
                too_long = {}
                for index, steps in enumerate(solutions):
                    error = _too_long(scorer, record["prompt"], steps)
                    if error is not None:
                        too_long[index] = error
                if len(too_long) == len(solutions):
                    results[line] = skip(line, record, next(iter(too_long.values())))
                    continue
                fitting = [i for i in range(len(solutions)) if i not in too_long]
                scored = dict(zip(fitting, scorer.score_best_of_n(record["prompt"], [solutions[i] for i in fitting])))
                for index, error in too_long.items():
                    print(f"prm score: warning: {source}, line {line}: completion {index} skipped, {error}",
                          file=sys.stderr)
                skipped_candidates += len(too_long)
                step_scores = [scored.get(i) for i in range(len(solutions))]
                results[line] = {**record, "step_scores": step_scores,
                                 "scores": [None if s is None else scorer.aggregate(s) for s in step_scores],
                                 **({"skipped": {str(i): str(e) for i, e in too_long.items()}} if too_long else {})}
            for line, _ in part:
                handle.write(json.dumps(results[line]) + "\n")
            handle.flush()
            bar.update(len(part))
    if skipped:
        print(f"prm score: warning: {skipped} of {len(records)} records skipped as too long for the model "
              f"({scorer.max_positions} positions); their scores are null", file=sys.stderr)
    if skipped_candidates:
        total = sum(len(record["completions"]) for _, record in records if "labels" not in record)
        print(f"prm score: warning: {skipped_candidates} of {total} candidates skipped as too long for the model; "
              "their scores are null, the other candidates of their records are scored", file=sys.stderr)
    left_out = f" ({skipped} skipped)" if skipped else ""
    print(f"scored {len(records) - skipped} of {len(records)} records{left_out} ({scorer.forward_tokens} tokens "
          f"through the model) -> {target}")
    return target


def _too_long(scorer, prompt: str, steps: list[str]) -> TooLong | None:
    """Why `steps` cannot be scored by `scorer` (its positions), or None when they fit."""
    try:
        tokens = scorer.length(prompt, steps)
    except TooLong as error:
        return error
    if scorer.max_positions and tokens > scorer.max_positions:
        return TooLong(tokens, scorer.max_positions)
    return None
