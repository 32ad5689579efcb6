"""Records that flow through the toolkit, from labelling to training to search to PPO.

The three record shapes are TRL-compatible dicts, so hub data sets load directly::

    # step-labelled (PRM): one label per step; floats are soft labels in [0, 1]
    {"prompt": "Tom has 3 apples and buys 4. How many?",
     "completions": ["3 + 4 = 7", "The answer is 7"],
     "labels": [True, True]}

    # outcome (ORM)
    {"prompt": "...", "completion": "3 + 4 = 7\\nThe answer is 7", "label": True}

    # pairwise (Bradley-Terry); margin is optional
    {"prompt": "...", "chosen": "...", "rejected": "...", "margin": 1.0}

`Problem` is the task-side object: a question with its reference answer and steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypedDict, Union

Label = Union[bool, float]


class StepLabelledExample(TypedDict):
    prompt: str
    completions: list[str]
    labels: list[Label]


class _OutcomeRequired(TypedDict):
    prompt: str
    completion: str
    label: Label


class OutcomeExample(_OutcomeRequired, total=False):
    # The outcome view of a step-labelled record (`outcome_from_steps`) keeps the steps as they
    # were given: a step may contain the separator, so splitting `completion` again at it could
    # give other steps than the record's.
    steps: list[str]


class _PairwiseRequired(TypedDict):
    prompt: str
    chosen: str
    rejected: str


class PairwiseExample(_PairwiseRequired, total=False):
    margin: float


@dataclass(frozen=True)
class Problem:
    """A math problem with its reference solution.

    `steps` are the reference reasoning steps (None when the source has none);
    `answer` is the reference final answer as text ("18", "\\frac{1}{2}", "x = 3"); None only
    where the reader was told answers are optional (`prm search` problems).
    `meta` carries source-specific extras (difficulty, family, ...).
    """

    id: str
    question: str
    answer: str | None
    steps: tuple[str, ...] | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class RecordError(ValueError):
    """A record is malformed. The message names the file, line and field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, field: str | None = None):
        where = ", ".join(
            part
            for part in (
                f"{path}" if path else "",
                f"line {line}" if line is not None else "",
                f"field {field!r}" if field else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.path, self.line, self.field = path, line, field


def check_label(value: Any, *, field: str, path: str | None, line: int | None) -> Label:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and 0.0 <= number <= 1.0:
            # Soft labels stay floats; integer 0/1 become bools so hard labels look hard.
            return bool(number) if isinstance(value, int) else number
    raise RecordError(f"label must be a bool or a float in [0, 1], got {value!r}", path=path, line=line, field=field)


def _check_text(record: dict, key: str, *, path: str | None, line: int | None, allow_empty: bool = False) -> str:
    if key not in record:
        raise RecordError("missing", path=path, line=line, field=key)
    value = record[key]
    if not isinstance(value, str):
        raise RecordError(f"must be a string, got {type(value).__name__}", path=path, line=line, field=key)
    if not allow_empty and not value.strip():
        raise RecordError("is empty", path=path, line=line, field=key)
    return value


def validate_step_example(record: Any, *, path: str | None = None, line: int | None = None) -> StepLabelledExample:
    """Check a step-labelled record and return it normalised (labels as bool or float).

    Raises `RecordError` naming path, line and field on: a missing field, a non-string
    prompt or step, an empty solution, an empty step, or a label count that differs from
    the step count.
    """
    if not isinstance(record, dict):
        raise RecordError(f"record must be a JSON object, got {type(record).__name__}", path=path, line=line)
    prompt = _check_text(record, "prompt", path=path, line=line)
    if "completions" not in record:
        raise RecordError("missing", path=path, line=line, field="completions")
    steps = record["completions"]
    if not isinstance(steps, list) or not steps:
        raise RecordError("must be a non-empty list of steps", path=path, line=line, field="completions")
    for index, step in enumerate(steps):
        if not isinstance(step, str) or not step.strip():
            raise RecordError(f"step {index} must be a non-empty string", path=path, line=line, field="completions")
    if "labels" not in record:
        raise RecordError("missing", path=path, line=line, field="labels")
    labels = record["labels"]
    if not isinstance(labels, list):
        raise RecordError("must be a list", path=path, line=line, field="labels")
    if len(labels) != len(steps):
        raise RecordError(
            f"{len(labels)} labels for {len(steps)} steps", path=path, line=line, field="labels"
        )
    checked = [check_label(label, field="labels", path=path, line=line) for label in labels]
    check_outcome_agrees(record, checked, path=path, line=line)
    return {"prompt": prompt, "completions": list(steps), "labels": checked}


def first_error_labels(first_wrong: Any, n_steps: int, *, field: str, path: str | None, line: int | None) -> list[bool]:
    """Step labels from the index of the first wrong step (ProcessBench; -1: none): the steps
    before it True, it and every later step False (the benchmark does not judge steps after it)."""
    if isinstance(first_wrong, bool) or not isinstance(first_wrong, int) or not -1 <= first_wrong < n_steps:
        raise RecordError(f"must be -1 or a step index below {n_steps}, got {first_wrong!r}", path=path, line=line,
                          field=field)
    return [first_wrong < 0 or index < first_wrong for index in range(n_steps)]


def is_true_label(label: Label) -> bool:
    """A hard label, or a soft one thresholded at 0.5."""
    return label is True or (not isinstance(label, bool) and label >= 0.5)


def check_outcome_agrees(record: dict, step_labels: list[Label], *, path: str | None, line: int | None) -> None:
    """A record that gives step labels and an outcome "label" too: they must agree (the
    solution is right only if every step is); which one a reader took was otherwise silent."""
    if "label" not in record:
        return
    outcome = check_label(record["label"], field="label", path=path, line=line)
    steps_right = all(is_true_label(label) for label in step_labels)
    if is_true_label(outcome) != steps_right:
        raise RecordError(f"is {record['label']!r} but the step labels say the solution is "
                          f"{'right' if steps_right else 'wrong'}; give one of them", path=path, line=line, field="label")


def validate_outcome_example(record: Any, *, path: str | None = None, line: int | None = None) -> OutcomeExample:
    """Check an outcome record; errors name path, line and field."""
    if not isinstance(record, dict):
        raise RecordError(f"record must be a JSON object, got {type(record).__name__}", path=path, line=line)
    prompt = _check_text(record, "prompt", path=path, line=line)
    completion = _check_text(record, "completion", path=path, line=line)
    if "label" not in record:
        raise RecordError("missing", path=path, line=line, field="label")
    label = check_label(record["label"], field="label", path=path, line=line)
    return {"prompt": prompt, "completion": completion, "label": label}


def validate_pairwise_example(record: Any, *, path: str | None = None, line: int | None = None) -> PairwiseExample:
    """Check a pairwise record; errors name path, line and field."""
    if not isinstance(record, dict):
        raise RecordError(f"record must be a JSON object, got {type(record).__name__}", path=path, line=line)
    out: PairwiseExample = {
        "prompt": _check_text(record, "prompt", path=path, line=line),
        "chosen": _check_text(record, "chosen", path=path, line=line),
        "rejected": _check_text(record, "rejected", path=path, line=line),
    }
    if "margin" in record and record["margin"] is not None:
        margin = record["margin"]
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin):
            raise RecordError(f"must be a finite number, got {margin!r}", path=path, line=line, field="margin")
        out["margin"] = float(margin)
    return out


def outcome_from_steps(record: StepLabelledExample, separator: str = "\n") -> OutcomeExample:
    """The outcome view of a step-labelled record: the solution is right iff every step is.

    Soft labels give the minimum over steps (a solution is as good as its worst step).
    `completion` is the steps joined with `separator`; `steps` keeps the record's steps, which a
    reward model encodes as they are, as it does a step list it scores (nothing is split again).
    """
    labels = record["labels"]
    if all(isinstance(label, bool) for label in labels):
        label: Label = all(labels)
    else:
        label = float(min(float(x) for x in labels))
    steps = list(record["completions"])
    return {"prompt": record["prompt"], "completion": separator.join(steps), "label": label, "steps": steps}
