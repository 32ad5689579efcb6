"""`prm label`: label the steps of every solution in a JSONL file.

Input, one JSON object a line, in either shape:

- step-labelled: ``{"prompt", "completions": [step, ...], "labels"?: [...], "reference"?}``;
- candidates: ``{"prompt", "completions": [solution text, ...], "reference"}``, each
  solution split into steps with `tasks.math.steps.split_steps`.

With ``--format auto`` a line that has "labels" is step-labelled and one without is
candidates; ``--format steps`` reads unlabelled step records. Every solution is labelled by
`verifiers.labelling.label_many` (symbolic checks, the answer against "reference", rollouts
through ``--policy`` where nothing is checkable) and written as a step-labelled record
``{"prompt", "completions", "labels", "label_sources", "reference", "line", "id"?}``.
A record's own labels fill the unverifiable steps when it has no reference. In consensus
mode a solution is cut before its first disagreeing step (and not written when that is the
first step). The label statistics are printed and written next to the output::

    prm label --input candidates.jsonl --output labelled.jsonl
    prm label --input candidates.jsonl --policy Qwen/Qwen2.5-Math-1.5B-Instruct --n_rollouts 8 --mode soft
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from prm.recipe import check_output_file, check_resume, resume_choice, run_fingerprint, start_output_file
from tasks.math.loaders import iter_jsonl
from tasks.math.records import candidates_from_record
from tasks.math.steps import split_steps
from tasks.math.types import RecordError, validate_step_example
from verifiers.labelling import MODES, LabelStats, label_many

FORMATS = ("auto", "steps", "candidates")
# Options that do not change the labels (a run may be resumed with other values of these).
# `device` as given is left out ("" and "cuda:0" may be the same run); with a policy, the
# fingerprint holds the device type the rollouts sample on.
NOT_IN_FINGERPRINT = ("output", "resume", "overwrite_output", "device", "trust_remote_code")


@dataclass
class LabelConfig:
    """Options of `prm label`."""

    input: str = field(metadata={"help": "JSONL of step-labelled records or candidates ({prompt, completions, reference})"})
    output: str = field(default="labelled.jsonl", metadata={"help": "Where the step-labelled JSONL goes"})
    format: str = field(default="auto", metadata={"help": "auto (labels present = steps, else candidates) | steps | candidates"})
    mode: str = field(default="hard", metadata={"help": "hard (any rollout right) | soft (fraction right) | consensus"})
    policy: str | None = field(default=None, metadata={"help": "Policy model (path, hub id or alias) for Monte Carlo rollouts"})
    n_rollouts: int = field(default=8, metadata={"help": "Rollouts per unverifiable step"})
    locate_silent_errors: bool = field(default=False, metadata={"help": "With --policy: when a wrong answer has no false claim, rollouts also judge the checked steps"})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of the rollouts"})
    max_new_tokens: int = field(default=256, metadata={"help": "Longest rollout, in tokens"})
    seed: int = field(default=0, metadata={"help": "Seed of the rollout sampler"})
    batch_solutions: int = field(default=16, metadata={"help": "Solutions whose rollouts go to the policy in one call"})
    step_style: str = field(default="auto", metadata={"help": "How candidate solutions split into steps (split_steps styles)"})
    device: str = field(default="", metadata={"help": "Torch device of the policy: cpu, cuda, cuda:1, ...; empty: cuda if available, else cpu"})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the hub"})
    resume: str | None = field(default=None, metadata={"help": "'latest': keep the lines already in --output and label only the rest; refused when --output was made from another input or settings, or with a policy on another device type"})
    overwrite_output: bool = field(default=False, metadata={"help": "Replace an existing --output (without it, or --resume latest, an existing output is refused)"})


@dataclass
class _Solution:
    line: int
    prompt: str
    steps: list[str]
    reference: str | None
    given_labels: list | None
    id: str | None


def _solutions_of(record: dict, fmt: str, step_style: str, where: dict) -> list[_Solution]:
    """The solutions one input line holds (one for a step record, several for candidates);
    the line is checked by `tasks.math.records.candidates_from_record` (the rules of `prm
    rerank` and `prm score`), and its labels, when present, by `validate_step_example`."""
    if fmt == "steps" and isinstance(record, dict) and "completions" not in record:
        raise RecordError("missing: --format steps reads step records {\"prompt\", \"completions\": [steps]}; "
                          "for this line (a GSM8K row?) use --format auto", field="completions", **where)
    candidates = candidates_from_record(record, **where)
    reference = candidates.reference
    if fmt == "steps" or (fmt == "auto" and "labels" in record):
        labels = None
        if record.get("labels") is not None:
            labels = validate_step_example(record, **where)["labels"]
        if reference is None and labels is None:
            raise RecordError("missing: needed to label the steps no check decides", field="reference", **where)
        return [_Solution(where["line"], candidates.prompt, candidates.completions, reference, labels, candidates.id)]

    if reference is None:
        raise RecordError("missing: candidates need a reference answer to be labelled", field="reference", **where)
    solutions = []
    for index, text in enumerate(candidates.completions):
        steps = split_steps(text, style=step_style)
        if not steps:
            raise RecordError(f"completion {index} has no steps", field="completions", **where)
        solutions.append(_Solution(where["line"], candidates.prompt, steps, reference, None, candidates.id))
    return solutions


def read_solutions(path: str | Path, fmt: str = "auto", step_style: str = "auto") -> list[_Solution]:
    """Every solution of a JSONL file; a malformed line raises `RecordError` (file, line, field)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input file not found: {path}")
    solutions = []
    for number, record in iter_jsonl(path):
        solutions += _solutions_of(record, fmt, step_style, {"path": str(path), "line": number})
    if not solutions:
        raise RecordError("no records", path=str(path))
    return solutions


def _lines_done(output: Path, solutions: list[_Solution]) -> int:
    """The last input line up to which `output` (a prm label output, in input order) is complete:
    every line before the last one it holds, and that one too when all its solutions are there
    (records go out one at a time, so the buffer can reach the disk inside a line; a consensus
    run may also have dropped some of a line's solutions, and then that line is labelled again).
    A half-written last line is left to `start_output_file`; any other line that is not a record
    raises an error naming the file and line."""
    per_line: dict[int, int] = {}
    for solution in solutions:
        per_line[solution.line] = per_line.get(solution.line, 0) + 1
    data = output.read_bytes() if output.is_file() else b""
    written: dict[int, int] = {}
    last = 0
    for number, text in enumerate(data[: data.rfind(b"\n") + 1].decode("utf-8", errors="replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)["line"]
        except (ValueError, TypeError, KeyError) as error:
            raise RecordError(f"not a record of prm label, so the run cannot be resumed ({error}); start again with "
                              "--overwrite_output", path=str(output), line=number) from None
        if not isinstance(line, int) or line not in per_line or line < last:
            raise RecordError(f"input line {line!r} is not the next line of this input, so the run cannot be "
                              "resumed; start again with --overwrite_output", path=str(output), line=number)
        written[line] = written.get(line, 0) + 1
        last = line
    if last and written[last] >= per_line[last]:
        return last
    # Records go out in input order, so every input line before `last` was labelled (a consensus
    # run writes nothing for a solution cut before its first step).
    return max((line for line in per_line if line < last), default=0)


def _keep_lines_up_to(output: Path, done: int) -> None:
    """Drop the records of input lines after `done` (a partly written line, labelled again)."""
    lines = output.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [text for text in lines if text.strip() and json.loads(text)["line"] <= done]
    if len(kept) != len(lines):
        output.write_text("".join(kept), encoding="utf-8")


def label_file(config: LabelConfig) -> dict:
    """Label every solution of `config.input`, write `config.output`, return the statistics."""
    from tqdm.auto import tqdm

    if config.mode not in MODES:
        raise ValueError(f"--mode must be one of {MODES}, got {config.mode!r}")
    if config.mode == "consensus" and not config.policy:
        raise ValueError("--mode consensus compares symbolic checks with rollouts: give --policy")
    if config.policy and config.max_new_tokens < 1:
        raise ValueError(f"--max_new_tokens must be >= 1, got {config.max_new_tokens}")
    solutions = read_solutions(config.input, config.format, config.step_style)
    output = Path(config.output)
    resume = resume_choice(config.resume)
    if resume not in (None, "latest"):
        raise ValueError(f"prm label --resume takes 'latest' (continue --output), got {config.resume!r}")
    check_output_file(output, overwrite=config.overwrite_output, resuming=bool(resume))
    fingerprint = run_fingerprint(config, ignore=NOT_IN_FINGERPRINT, data_fields=("input",),
                                  model_fields=("policy",))
    if config.policy:
        import torch

        # The rollouts' generator lives on the policy's device, and CPU and CUDA draw other
        # streams from one seed: a run resumed on another device type would mix two runs' labels.
        fingerprint["device"] = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu")).type
    resuming, done = bool(resume) and output.exists(), 0
    if resuming:
        # Checked before the policy loads (a fast refusal); the output is changed only after it did.
        check_resume(output.parent, fingerprint, run_file=output.name + ".run.json")
        done = _lines_done(output, solutions)

    policy = None
    if config.policy:
        from generation.policy import HFPolicy

        policy = HFPolicy.from_pretrained(
            config.policy, device=config.device or None, temperature=config.temperature,
            max_new_tokens=config.max_new_tokens, seed=config.seed, trust_remote_code=config.trust_remote_code,
        )

    # Cuts off a last line an interrupt left half-written (a fresh run starts an empty file) and
    # records what the output is made from.
    start_output_file(output, fingerprint, overwrite=config.overwrite_output, resume=resume)
    if resuming:
        _keep_lines_up_to(output, done)
        solutions = [s for s in solutions if s.line > done]
        print(f"resuming after input line {done}: {len(solutions)} solutions left")

    stats = LabelStats()
    batches = _batches_on_line_boundaries(solutions, max(1, config.batch_solutions))
    with output.open("a", encoding="utf-8") as sink, tqdm(total=len(solutions), desc="label", unit="solution") as bar:
        for batch in batches:
            results = label_many(
                [(s.prompt, s.steps) for s in batch], policy, config.n_rollouts, config.mode,
                references=[s.reference for s in batch], given_labels=[s.given_labels for s in batch],
                locate_silent_errors=config.locate_silent_errors,
            )
            for solution, result in zip(batch, results):
                stats.add(result, solution.given_labels)
                record = result.to_record(solution.prompt, solution.steps)
                if record is None:
                    continue
                record["label_sources"] = result.sources[: result.n_kept]
                record["reference"] = solution.reference
                record["line"] = solution.line
                if solution.id is not None:
                    record["id"] = solution.id
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            sink.flush()
            bar.update(len(batch))

    print(stats)
    summary = stats.as_dict()
    stats_path = output.with_name(output.stem + ".stats.json")
    stats_path.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(f"wrote {output} and {stats_path}")
    return summary


def _batches_on_line_boundaries(solutions: list[_Solution], size: int) -> list[list[_Solution]]:
    """Groups of about `size` solutions that never split one input line (so the output is flushed
    at line boundaries, and a resume after a finished batch labels nothing again)."""
    batches: list[list[_Solution]] = []
    for solution in solutions:
        starts_line = not batches or batches[-1][-1].line != solution.line
        if not batches or (starts_line and len(batches[-1]) >= size):
            batches.append([])
        batches[-1].append(solution)
    return batches
