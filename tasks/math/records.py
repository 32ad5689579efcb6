"""One reader and validator per record kind, with the same rules in every command.

| kind | fields | validator | reader |
|---|---|---|---|
| step-labelled | `{"prompt", "completions": [step, ...], "labels"}` | `types.validate_step_example` | `read_reward_records(source, "step")` |
| outcome | `{"prompt", "completion", "label"}` | `types.validate_outcome_example` | `read_reward_records(source, "outcome")` |
| pairwise | `{"prompt", "chosen", "rejected", "margin"?}` | `types.validate_pairwise_example` | `read_reward_records(source, "pairwise")` |
| problem | see `problem_from_record` | `problem_from_record` | `read_problems` |
| candidates | `{"prompt", "completions": [solution, ...], "reference"?, "id"?}` | `candidates_from_record` | `read_candidates` |

Every error is a `RecordError` whose one-line message names the file, the line and the field;
no reader drops or reorders a record. Lines are read by `loaders.iter_jsonl` (bad JSON and
non-UTF-8 bytes are errors naming file and line).

Problems come from `synthetic[:PRESET]` (`synthetic.synthetic_preset`) or a file, so `prm
search`, `prm eval-search`, `prm sft` and `prm ppo` read the same problem files.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.math.loaders import IS_A_DIRECTORY, boxed_answer, iter_jsonl, load_step_dataset
from tasks.math.prompts import answer_step
from tasks.math.steps import join_steps, split_gsm8k, split_steps
from tasks.math.types import (
    Problem,
    RecordError,
    check_label,
    check_outcome_agrees,
    first_error_labels,
    outcome_from_steps,
    validate_outcome_example,
    validate_pairwise_example,
    validate_step_example,
)

REWARD_KINDS = ("step", "outcome", "pairwise")
QUESTION_KEYS = ("question", "prompt", "problem")
# A source named like a file is one, never a hub id, even when it is missing.
LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".txt", ".gz")


# --------------------------------------------------------------------------- reward-model records


def read_reward_records(source: str | os.PathLike, kind: str, *, n_synthetic: int = 2000, seed: int = 0,
                        separator: str = "\n") -> list[dict]:
    """Validated training records of `kind` from a JSONL / JSON file, a hub id
    `owner/name[:split]` (through `loaders.load_step_dataset`; split `train` by default) or
    `synthetic[:PRESET]` (`n_synthetic` problems, half of their solutions corrupted; pairwise:
    each correct solution against a corrupted one).

    step: step-labelled records; outcome: outcome records, or step-labelled records as their
    outcome view (`outcome_from_steps`, which keeps the steps as "steps" too); pairwise:
    `{prompt, chosen, rejected, margin?}`. Steps joined into one solution (those views,
    synthetic pairs) are joined with `separator`.
    A bad record raises `RecordError` with file, line and field; a source with no record too.
    """
    from tasks.math.synthetic import generate_problems, step_labelled_records, synthetic_preset

    if kind not in REWARD_KINDS:
        raise ValueError(f"kind must be one of {REWARD_KINDS}, got {kind!r}")
    source = os.fspath(source)
    preset = synthetic_preset(source)
    if preset is not None:
        problems = generate_problems(n_synthetic, preset, seed=seed)
        if kind == "pairwise":
            correct = step_labelled_records(problems, corrupt_fraction=0.0, seed=seed)
            wrong = step_labelled_records(problems, corrupt_fraction=1.0, seed=seed)
            return [{"prompt": c["prompt"], "chosen": join_steps(c["completions"], separator),
                     "rejected": join_steps(w["completions"], separator)} for c, w in zip(correct, wrong)]
        records = step_labelled_records(problems, corrupt_fraction=0.5, seed=seed)
        return [outcome_from_steps(r, separator) for r in records] if kind == "outcome" else records
    if Path(source).exists():
        rows = ((row, source, line) for line, row in iter_jsonl(source))
    elif source.lower().endswith(LOCAL_SUFFIXES) or source.startswith((".", "/", "~")):
        raise FileNotFoundError(f"{source}: no such file")
    else:
        # owner/name[:split], as every other command reads a hub id (commands/hub_data.py)
        dataset_id, _, split = source.partition(":")
        rows = ((dict(row), source, index)
                for index, row in enumerate(load_step_dataset(dataset_id, split=split or "train"), 1))
    records = []
    for row, path, line in rows:
        if kind == "pairwise":
            records.append(validate_pairwise_example(row, path=path, line=line))
        elif kind == "outcome" and isinstance(row, dict) and "completion" in row:
            records.append(validate_outcome_example(row, path=path, line=line))
        elif kind == "outcome":
            records.append(outcome_from_steps(validate_step_example(row, path=path, line=line), separator))
        else:
            records.append(validate_step_example(row, path=path, line=line))
    if not records:
        raise RecordError("no records", path=source)
    return records


# --------------------------------------------------------------------------- problems


def problem_from_record(record: Any, *, path: str, line: int, require_answer: bool = True,
                        require_steps: bool = False) -> Problem:
    """A `Problem` from one record of a problems file.

    The question is the first of "question", "prompt", "problem" present (a non-empty string;
    two of them with different texts is an error). The reference answer is "reference", else
    "answer": a string or a number (read as text; a bool is an error). A GSM8K answer (solution
    lines, then "#### X") gives the answer X and the lines as steps (plus "The answer is X");
    when both "reference" and "answer" are given they must agree.

    Reference steps, where the record has them (used by `prm sft`):
    - "steps": a non-empty list of non-empty strings;
    - TRL stepwise `{"prompt", "completions", "labels"}`: the completions, checked by
      `validate_step_example`; `meta["labels"]` keeps the labels (SFT trains only on records
      whose every label is true); a candidates record (completions, no labels) has no steps;
    - prompt-completion `{"prompt", "completion", "label"?}` (the rejection-sampling export, an
      outcome record): the completion split with `split_steps`; `meta["label"]` keeps the label
      (SFT leaves out a solution labelled false);
    - MATH `{"problem", "solution", "answer"?}`: the solution split with `split_steps`, the
      answer the last `\\boxed{}` when there is no "answer".

    require_answer: a record without an answer is an error (else `answer` is None);
    require_steps: a record without reference steps is an error (else `steps` is None).
    """
    where = {"path": path, "line": line}
    if not isinstance(record, dict):
        raise RecordError(f"record must be a JSON object, got {type(record).__name__}", **where)
    present = [key for key in QUESTION_KEYS if key in record]
    if not present:
        raise RecordError("missing (a problem needs 'question', 'prompt' or 'problem')", field="question", **where)
    key = present[0]
    question = record[key]
    if not isinstance(question, str) or not question.strip():
        raise RecordError(f"must be a non-empty string, got {question!r:.60}", field=key, **where)
    for other in present[1:]:
        if record[other] != question:
            raise RecordError(f"differs from {key!r}; give the question once", field=other, **where)

    answer, steps = _reference_answer(record, where)
    steps, meta = _reference_steps(record, key, where, steps)
    if answer is None and key == "problem" and isinstance(record.get("solution"), str):  # MATH
        answer = boxed_answer(record["solution"])
    if require_answer and answer is None:
        raise RecordError("missing (a problem needs 'reference' or 'answer', a string or a number)",
                          field="answer", **where)
    if require_steps and steps is None:
        raise RecordError("missing: reference steps are needed ('steps', 'completions' with 'labels', "
                          "'completion', or a GSM8K '####' answer)", field="steps", **where)
    record_id = record.get("id")
    return Problem(id=str(record_id) if record_id is not None else f"{Path(path).name}:{line}",
                   question=question, answer=answer, steps=None if steps is None else tuple(steps),
                   source=Path(path).name, meta=meta)


def _reference_answer(record: dict, where: dict) -> tuple[str | None, list[str] | None]:
    """(answer, steps of a GSM8K answer or None): "reference", else "answer"; a GSM8K
    "... #### X" answer gives X and its lines; both fields given must agree."""
    reference = _answer_text(record, "reference", where)
    answer = record.get("answer")
    if isinstance(answer, str) and split_gsm8k(answer)[1] is not None:
        lines, final = split_gsm8k(answer)
        if not final:
            raise RecordError("empty answer after '####'", field="answer", **where)
        if reference is not None and reference.strip() != final.strip():
            raise RecordError(f"'#### {final}' disagrees with 'reference' {reference!r}; keep one", field="answer",
                              **where)
        return final, (lines + [answer_step(final)] if lines else None)
    answer = _answer_text(record, "answer", where)
    if reference is not None and answer not in (None, reference):
        raise RecordError(f"disagrees with 'reference' {reference!r}; keep one", field="answer", **where)
    return reference if reference is not None else answer, None


def _reference_steps(record: dict, key: str, where: dict, steps: list[str] | None
                     ) -> tuple[list[str] | None, dict[str, Any]]:
    """(reference steps or `steps` when the record has none of its own, meta)."""
    if "steps" in record:
        given = record["steps"]
        if not isinstance(given, list) or not given or not all(isinstance(s, str) and s.strip() for s in given):
            raise RecordError("must be a non-empty list of non-empty strings", field="steps", **where)
        return list(given), _steps_label_meta(record, len(given), where)
    if "completions" in record and "labels" in record:
        example = validate_step_example(record, **where)
        return example["completions"], {"labels": example["labels"]}
    for text_key in ("completion",) + (("solution",) if key == "problem" else ()):
        if text_key in record:
            text = record[text_key]
            if not isinstance(text, str) or not split_steps(text):
                raise RecordError("must be a non-empty string", field=text_key, **where)
            if "labels" in record:
                raise RecordError(f"step labels need 'completions' (a list of steps), not one '{text_key}' text; "
                                  "label a whole solution with 'label'", field="labels", **where)
            steps = split_steps(text)
            if "label" in record:  # an outcome record: meta["label"] says whether the solution is right
                return steps, {"label": check_label(record["label"], field="label", **where)}
            return steps, {}
    if steps is not None and "label" in record:  # a GSM8K-format solution with its verdict
        return steps, {"label": check_label(record["label"], field="label", **where)}
    return steps, {}


def _steps_label_meta(record: dict, n_steps: int, where: dict) -> dict[str, Any]:
    """meta of a record with "steps": its "labels" (one per step), its outcome "label", or a
    ProcessBench "label" (the index of the first wrong step, -1 for none, with
    "final_answer_correct") as step labels; labels that disagree are an error."""
    meta: dict[str, Any] = {}
    if "labels" in record:
        labels = record["labels"]
        if not isinstance(labels, list) or len(labels) != n_steps:
            count = len(labels) if isinstance(labels, list) else type(labels).__name__
            raise RecordError(f"{count} labels for {n_steps} steps", field="labels", **where)
        meta["labels"] = [check_label(label, field="labels", **where) for label in labels]
    label = record.get("label")
    processbench = "final_answer_correct" in record or (
        isinstance(label, int) and not isinstance(label, bool) and label not in (0, 1))
    if "label" in record and processbench:
        derived = first_error_labels(label, n_steps, field="label", **where)
        if meta.get("labels", derived) != derived:
            raise RecordError("disagrees with 'labels'; give one of them", field="label", **where)
        meta["labels"] = derived
    elif "label" in record:
        if "labels" in record:
            check_outcome_agrees(record, meta["labels"], **where)
        meta["label"] = check_label(label, field="label", **where)
    if record.get("final_answer_correct") is False:
        meta["label"] = False
    return meta


def _answer_text(record: dict, key: str, where: dict) -> str | None:
    """record[key] as text (None when absent or null); a bool, an empty string or anything
    but a string or a number is an error."""
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RecordError(f"must be a string or a number, got {value!r:.60}", field=key, **where)
    if isinstance(value, str) and not value.strip():
        raise RecordError("is empty", field=key, **where)
    if isinstance(value, float) and not math.isfinite(value):  # json reads bare NaN and Infinity
        raise RecordError(f"must be a finite number, got {value}", field=key, **where)
    return str(value)


def read_problems(source: str | os.PathLike, *, limit: int = 0, n_synthetic: int = 16, seed: int = 0,
                  preset: str = "tiny", require_answer: bool = True, require_steps: bool = False) -> list[Problem]:
    """Problems from `synthetic[:PRESET]` (`n_synthetic` generated with `seed`; bare
    "synthetic" uses `preset`) or from a JSONL / JSON file of records `problem_from_record`
    reads. `limit` keeps the first problems (0: all). A missing file, a malformed line or a
    file with no problem raises (file, line, field)."""
    from tasks.math.synthetic import generate_problems, synthetic_preset

    name = synthetic_preset(os.fspath(source), default=preset)
    if name is not None:
        problems = generate_problems(n_synthetic, preset=name, seed=seed)
    else:
        path = Path(source)
        if path.is_dir():
            raise RecordError(IS_A_DIRECTORY, path=str(path))
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such problems file (or use synthetic:<preset>)")
        problems = [problem_from_record(record, path=str(path), line=number, require_answer=require_answer,
                                        require_steps=require_steps)
                    for number, record in iter_jsonl(path)]
        if not problems:
            raise RecordError("no problems", path=str(path))
    return problems[:limit] if limit else problems


def without_overlap(heldout: list[Problem], train: list[Problem], *, what: str = "held-out") -> list[Problem]:
    """`heldout` without the problems whose question is also a training question; how many
    were left out is printed, never silent."""
    seen = {problem.question for problem in train}
    kept = [problem for problem in heldout if problem.question not in seen]
    if len(kept) < len(heldout):
        print(f"warning: {len(heldout) - len(kept)} of {len(heldout)} {what} problems are also training problems; "
              f"left out of evaluation ({len(kept)} kept)")
    return kept


# --------------------------------------------------------------------------- candidates


@dataclass
class CandidateRecord:
    """One line of a candidates file: a prompt and N whole solutions (or, for `prm label
    --format steps`, the steps of one solution)."""

    prompt: str
    completions: list[str]
    reference: str | None
    line: int
    id: str | None = None


def candidates_from_record(record: Any, *, path: str, line: int) -> CandidateRecord:
    """Check `{"prompt", "completions": [solution, ...], "reference"?, "id"?}`.

    `prompt` is a non-empty string; `completions` a non-empty list of non-empty strings; an
    empty (or blank) completion is an error naming file, line and field "completions", in
    every command (`prm rerank`, `prm score`, `prm label`): it has no step to score or label,
    and dropping it would shift the indices of the others. `reference` is a string or a
    number (read as text), else "answer" (both given must agree). Other fields are the caller's.

    A GSM8K row `{"question", "answer": "...\\n#### 72"}` is one candidate: its solution lines
    (calculator annotations kept) and "The answer is 72", with 72 as the reference.
    """
    where = {"path": path, "line": line}
    if not isinstance(record, dict):
        raise RecordError(f"record must be a JSON object, got {type(record).__name__}", **where)
    if "completions" not in record and isinstance(record.get("question"), str) and isinstance(record.get("answer"), str):
        lines, answer = split_gsm8k(record["answer"])
        if answer is not None:
            record = {**{k: v for k, v in record.items() if k != "answer"}, "prompt": record["question"],
                      "completions": [join_steps(lines + [answer_step(answer)])], "reference": answer}
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problem = "missing" if "prompt" not in record else f"must be a non-empty string, got {prompt!r:.60}"
        raise RecordError(problem, field="prompt", **where)
    if "completions" not in record:
        raise RecordError("missing", field="completions", **where)
    completions = record["completions"]
    if not isinstance(completions, list) or not completions:
        raise RecordError("must be a non-empty list of solution texts", field="completions", **where)
    for index, completion in enumerate(completions):
        if not isinstance(completion, str):
            raise RecordError(f"completion {index} must be a string, got {type(completion).__name__}",
                              field="completions", **where)
        if not completion.strip():
            raise RecordError(f"completion {index} is empty", field="completions", **where)
    record_id = record.get("id")
    reference, answer = _answer_text(record, "reference", where), _answer_text(record, "answer", where)
    if reference is not None and answer not in (None, reference):
        raise RecordError(f"disagrees with 'reference' {reference!r}; keep one", field="answer", **where)
    return CandidateRecord(prompt, list(completions), reference if reference is not None else answer, line,
                           None if record_id is None else str(record_id))


def read_candidates(path: str | os.PathLike) -> list[CandidateRecord]:
    """Every line of a candidates file (`candidates_from_record`); a missing file, one with no
    record, or a step-labelled record (`labels`) raises."""
    path = Path(path)
    if path.is_dir():
        raise RecordError(IS_A_DIRECTORY, path=str(path))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such candidates file")
    records = []
    for number, record in iter_jsonl(path):
        if isinstance(record, dict) and "labels" in record:
            # Its completions are one solution's steps: each would be ranked as a whole solution.
            raise RecordError("a step-labelled record (completions = the steps of one solution), not candidates",
                              path=str(path), line=number, field="labels")
        records.append(candidates_from_record(record, path=str(path), line=number))
    if not records:
        raise RecordError("no records", path=str(path))
    return records
