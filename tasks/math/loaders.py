"""Loaders: each source becomes a `datasets.Dataset` of step-labelled records.

Every loader takes a local file (`.jsonl`, or `.json` holding a list of objects) or a hub
id (read through `datasets.load_dataset`, so it needs a network) and returns the columns

    id: str, prompt: str, completions: list[str], labels: list[bool] (or list[float]),
    reference: str | None   (the reference final answer, where the source has one)

Sources: GSM8K, MATH-style `{"problem", "solution"}`, PRM800K (phase 1 and 2 raw
labels), Math-Shepherd (`input`/`label` with "ки" and "+"/"-"), TRL stepwise records
(identity), ProcessBench. `load_step_dataset` recognises the source from the fields.

Bad input: a malformed line (bad JSON, a missing field, a label count that differs from
the step count, an empty solution) raises `RecordError` naming the file, line and field.
With `skip_invalid=True` such lines are skipped instead; the count is logged as a warning
and kept with the dataset: `load_report(dataset)` returns it (stored as JSON in
`dataset.info.description`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from tasks.math.prompts import answer_step
from tasks.math.steps import SHEPHERD_TAG, split_gsm8k, split_steps, strip_calculator_annotations
from tasks.math.types import RecordError, first_error_labels, validate_step_example

logger = logging.getLogger(__name__)

NEUTRAL_POLICIES = ("positive", "negative", "half")
_MAX_KEPT_ERRORS = 20

# A converter turns one source row into zero or more step-labelled records (dicts with
# prompt, completions, labels and optionally id, reference), raising RecordError; what it
# cuts from a row it keeps counts of in the load's report.
Converter = Callable[..., list[dict[str, Any]]]


@dataclass
class LoadReport:
    """What a load did: records made, lines skipped (with the first error messages), records
    cut short (PRM800K: at an unrated step) and the steps that cut left out."""

    source: str
    location: str
    rows: int = 0
    records: int = 0
    skipped_invalid: int = 0
    skipped_unlabelled: int = 0
    records_cut: int = 0
    steps_cut: int = 0
    errors: list[str] = field(default_factory=list)


def load_report(dataset) -> dict[str, Any]:
    """The `LoadReport` of a dataset made by these loaders, as a dict ({} if none)."""
    try:
        report = json.loads(dataset.info.description or "")
    except json.JSONDecodeError:
        return {}
    return report.get("load_report", {}) if isinstance(report, dict) else {}


# --------------------------------------------------------------------------- reading


def iter_jsonl(
    path: str | os.PathLike, *, skip_invalid: bool = False, report: LoadReport | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each record of a `.jsonl` file (one JSON object a line;
    blank lines skipped) or of a `.json` file holding a list of objects (the record's
    position stands in for the line number).

    A line that is not valid JSON or not a JSON object raises `RecordError` (file, line).
    With `skip_invalid` it is skipped instead and counted in `report`; without a `report`
    of the caller's, the count is logged as a warning once the file is read. Checking the
    fields of each object is the caller's job.
    """
    path = os.fspath(path)
    own_report = report is None
    if report is None:
        report = LoadReport(source="jsonl", location=path)
    for number, row, problem in _parse_file(path):
        if problem is None and not isinstance(row, dict):
            problem = RecordError(f"must be a JSON object, got {type(row).__name__}", path=path, line=number)
        if problem is not None:
            if not skip_invalid:
                raise problem
            _note_skip(report, problem)
            continue
        yield number, row
    if own_report:
        _log_skips(report)


IS_A_DIRECTORY = "is a directory, not a JSONL or JSON file"


class _KeyTwice(ValueError):
    """A JSON object names a key twice (json keeps the last value without a word)."""


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) < len(pairs):
        seen: set[str] = set()
        key = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise _KeyTwice(f"key {key!r} appears twice in one object")
    return record


def read_jsonl(path: str | os.PathLike, *, skip_invalid: bool = False) -> list[dict[str, Any]]:
    """The objects `iter_jsonl` yields, as a list."""
    return [row for _, row in iter_jsonl(path, skip_invalid=skip_invalid)]


def _parse_file(path: str) -> Iterator[tuple[int, Any, RecordError | None]]:
    """(line number, parsed value, None) or (line number, None, the parse error) for each
    record of a local JSONL/JSON file."""
    if os.path.isdir(path):
        raise RecordError(IS_A_DIRECTORY, path=path)
    if path.endswith(".json"):
        with open(path, "rb") as handle:
            raw = handle.read()
        try:
            data = json.loads(raw.decode("utf-8-sig"), object_pairs_hook=_object_without_repeats)
        except UnicodeDecodeError as error:
            raise RecordError(f"not UTF-8 text (byte {raw[error.start]:#04x})", path=path,
                              line=raw[: error.start].count(b"\n") + 1) from None
        except json.JSONDecodeError as error:
            hint = ("; the file holds one JSON object a line: name it .jsonl"
                    if error.msg == "Extra data" and raw.lstrip()[:1] == b"{" else "")
            raise RecordError(f"invalid JSON: {error.msg}{hint}", path=path, line=error.lineno) from None
        except _KeyTwice as error:
            raise RecordError(f"invalid JSON: {error}", path=path) from None
        except RecursionError:
            raise RecordError("invalid JSON: nested too deeply", path=path) from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise RecordError("a .json file must hold a list of records", path=path)
        for number, row in enumerate(data, 1):
            yield number, row, None
        return
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a byte order mark starts the file
            except UnicodeDecodeError as error:
                yield number, None, RecordError(f"not UTF-8 text (byte {raw[error.start]:#04x})", path=path,
                                                line=number)
                continue
            if not text.strip():
                continue
            try:
                row = json.loads(text, object_pairs_hook=_object_without_repeats)
            except _KeyTwice as error:
                yield number, None, RecordError(f"invalid JSON: {error}", path=path, line=number)
                continue
            except json.JSONDecodeError as error:
                yield number, None, RecordError(
                    f"invalid JSON: {error.msg} (character {error.pos + 1})", path=path, line=number
                )
                continue
            except RecursionError:
                yield number, None, RecordError("invalid JSON: nested too deeply", path=path, line=number)
                continue
            yield number, row, None


def _open_rows(
    path_or_id: str | os.PathLike, *, split: str, name: str | None, skip_invalid: bool, report: LoadReport
) -> Iterator[tuple[int, Any]]:
    """Rows of a local file, or of a hub dataset through `datasets.load_dataset`
    (row numbers stand in for line numbers)."""
    path = os.fspath(path_or_id)
    if os.path.isfile(path) and path.endswith((".jsonl", ".json")):
        return iter_jsonl(path, skip_invalid=skip_invalid, report=report)
    import datasets

    if os.path.isfile(path):
        builder = {".parquet": "parquet", ".csv": "csv"}.get(os.path.splitext(path)[1])
        if builder is None:
            raise ValueError(f"{path}: unsupported file type; use .jsonl, .json, .parquet or .csv")
        hub = datasets.load_dataset(builder, data_files=path, split="train")
    else:
        hub = datasets.load_dataset(path, name=name, split=split)
        report.location = f"{path}[{split}]"
    return enumerate(hub, 1)


# --------------------------------------------------------------------------- building


def _build(
    source: str,
    rows: Iterator[tuple[int, Any]],
    convert: Converter,
    report: LoadReport,
    skip_invalid: bool,
    **options: Any,
):
    """Convert, validate and collect rows into a Dataset, honouring `skip_invalid`."""
    from datasets import Dataset, DatasetInfo, Features, List, Value

    records: list[dict[str, Any]] = []
    where = report.location
    for line, row in rows:
        report.rows += 1
        try:
            if not isinstance(row, dict):
                raise RecordError(f"must be a JSON object, got {type(row).__name__}", path=where, line=line)
            converted = convert(row, where=where, line=line, report=report, **options)
            if not converted:
                report.skipped_unlabelled += 1
                continue
            for offset, record in enumerate(converted):
                checked = validate_step_example(record, path=where, line=line)
                suffix = f"-{offset}" if len(converted) > 1 else ""
                record_id = record.get("id")
                checked["id"] = (f"{source}-{line}" if record_id in (None, "") else str(record_id)) + suffix
                reference = record.get("reference")
                checked["reference"] = None if reference is None else str(reference)
                records.append(checked)
        except RecordError as problem:
            if not skip_invalid:
                raise
            _note_skip(report, problem)
    report.records = len(records)
    _log_skips(report)

    soft = any(isinstance(label, float) for record in records for label in record["labels"])
    if soft:  # one column type: hard labels become 0.0 / 1.0 next to soft ones
        for record in records:
            record["labels"] = [float(label) for label in record["labels"]]
    features = Features(
        {
            "id": Value("string"),
            "prompt": Value("string"),
            "completions": List(Value("string")),
            "labels": List(Value("float64" if soft else "bool")),
            "reference": Value("string"),
        }
    )
    columns = {name: [record[name] for record in records] for name in features}
    info = DatasetInfo(description=json.dumps({"load_report": asdict(report)}), features=features)
    return Dataset.from_dict(columns, info=info)


def _note_skip(report: LoadReport, problem: RecordError) -> None:
    report.skipped_invalid += 1
    if len(report.errors) < _MAX_KEPT_ERRORS:
        report.errors.append(str(problem))


def _log_skips(report: LoadReport) -> None:
    if report.skipped_invalid:
        logger.warning(
            "%s: skipped %d invalid record(s) (skip_invalid=True); first: %s",
            report.location, report.skipped_invalid, report.errors[0],
        )
    if report.skipped_unlabelled:
        logger.warning(
            "%s: skipped %d record(s) with no labelled step (e.g. PRM800K bad_problem / give_up)",
            report.location, report.skipped_unlabelled,
        )
    if report.records_cut:
        logger.warning(
            "%s: cut %d record(s) at an unrated step (%d step(s) not written): the labelled prefix ends there",
            report.location, report.records_cut, report.steps_cut,
        )


def _load(source, convert, path_or_id, *, split, name, skip_invalid, **options):
    report = LoadReport(source=source, location=os.fspath(path_or_id))
    rows = _open_rows(path_or_id, split=split, name=name, skip_invalid=skip_invalid, report=report)
    return _build(source, rows, convert, report, skip_invalid, **options)


def _field(row: dict, key: str, where: str, line: int, kind: type | tuple = str, label: str | None = None) -> Any:
    """row[key], checked present, of the right type and (for text) not empty."""
    name = label or key
    if key not in row or row[key] is None:
        raise RecordError("missing", path=where, line=line, field=name)
    value = row[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RecordError(f"must be {expected}, got {type(value).__name__}", path=where, line=line, field=name)
    if isinstance(value, str) and not value.strip():
        raise RecordError("is empty", path=where, line=line, field=name)
    return value


# --------------------------------------------------------------------------- GSM8K


def _refuse_a_verdict(row, where, line, kind: str) -> None:
    """A reference-solution row (GSM8K, MATH) is correct by definition; one that carries a verdict
    is a model's solution, whose every step would otherwise be labelled true."""
    for key in ("label", "labels", "correct"):
        if key in row:
            raise RecordError(f"a {kind} row is a reference solution (every step true); a solution with a verdict "
                              "is an outcome record {\"prompt\", \"completion\", \"label\"} or a step record "
                              "{\"prompt\", \"completions\", \"labels\"}", path=where, line=line, field=key)


def _convert_gsm8k(row, *, where, line, report, with_answer_step: bool, keep_annotations: bool):
    _refuse_a_verdict(row, where, line, "GSM8K")
    question = _field(row, "question", where, line)
    solution = _field(row, "answer", where, line)
    steps, answer = split_gsm8k(solution)
    if answer is None or not answer:
        raise RecordError("no final '#### <answer>' line", path=where, line=line, field="answer")
    if not steps:
        raise RecordError("empty solution: no step before '####'", path=where, line=line, field="answer")
    if not keep_annotations:
        steps = [strip_calculator_annotations(step) for step in steps]
    if with_answer_step:
        steps.append(answer_step(answer))
    return [{"id": row.get("id"), "prompt": question, "completions": steps, "labels": [True] * len(steps),
             "reference": answer}]


def load_gsm8k(
    path_or_id: str | os.PathLike = "openai/gsm8k",
    *,
    split: str = "train",
    name: str | None = "main",
    skip_invalid: bool = False,
    with_answer_step: bool = True,
    keep_annotations: bool = True,
):
    """GSM8K `{"question", "answer"}` reference solutions, every step labelled True.

    Steps are the answer's lines; the final "#### X" line gives `reference` X and, with
    `with_answer_step`, becomes the step "The answer is X" (the toolkit's answer format).
    `<<48/2=24>>` calculator annotations stay unless `keep_annotations=False`.
    """
    return _load("gsm8k", _convert_gsm8k, path_or_id, split=split, name=name, skip_invalid=skip_invalid,
                 with_answer_step=with_answer_step, keep_annotations=keep_annotations)


# --------------------------------------------------------------------------- MATH


def boxed_answer(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, braces matched
    (`\\{` does not count), or None. `\\boxed 5` (no braces) gives "5"."""
    starts = [(i, len(marker)) for marker in ("\\boxed", "\\fbox") for i in _find_all(text, marker)]
    if not starts:
        return None
    start, length = max(starts)
    position = start + length
    while position < len(text) and text[position] == " ":
        position += 1
    if position >= len(text):
        return None
    if text[position] != "{":
        end = position
        while end < len(text) and text[end] not in " $\n":
            end += 1
        return text[position:end] or None
    depth, index = 0, position
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[position + 1 : index]
        index += 1
    return None  # unbalanced


def _find_all(text: str, marker: str) -> list[int]:
    found, index = [], text.find(marker)
    while index >= 0:
        found.append(index)
        index = text.find(marker, index + 1)
    return found


def _convert_math(row, *, where, line, report, style: str):
    _refuse_a_verdict(row, where, line, "MATH")
    problem = _field(row, "problem", where, line)
    solution = _field(row, "solution", where, line)
    answer = row.get("answer")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool) and math.isfinite(answer):
        answer = str(answer)  # as the problems reader reads a numeric answer
    reference = answer if isinstance(answer, str) and answer.strip() else boxed_answer(solution)
    if reference is None:
        raise RecordError("no \\boxed{} answer (and no 'answer' field)", path=where, line=line, field="solution")
    steps = split_steps(solution, style)
    return [{"id": row.get("unique_id") or row.get("id"), "prompt": problem, "completions": steps,
             "labels": [True] * len(steps), "reference": reference}]


def load_math(
    path_or_id: str | os.PathLike = "HuggingFaceH4/MATH-500",
    *,
    split: str = "test",
    name: str | None = None,
    skip_invalid: bool = False,
    style: str = "auto",
):
    """MATH-style `{"problem", "solution"}` reference solutions, every step True.

    `reference` is the row's "answer" field when present, else the last `\\boxed{}` of the
    solution; steps are split with `split_steps(solution, style)`.
    """
    return _load("math", _convert_math, path_or_id, split=split, name=name, skip_invalid=skip_invalid, style=style)


# --------------------------------------------------------------------------- PRM800K


def _convert_prm800k(row, *, where, line, report: LoadReport, neutral: str, alternatives: bool):
    question = _field(row, "question", where, line, dict)
    problem = _field(question, "problem", where, line, label="question.problem")
    label = _field(row, "label", where, line, dict)
    steps = _field(label, "steps", where, line, list, label="label.steps")
    rating_to_label = {1: True, -1: False, 0: {"positive": True, "negative": False, "half": 0.5}[neutral]}

    def rated(completion, name):
        if not isinstance(completion, dict):
            raise RecordError("must be an object with text and rating", path=where, line=line, field=name)
        text = _field(completion, "text", where, line, label=f"{name}.text")
        rating = completion.get("rating")
        if rating is not None and (isinstance(rating, bool) or rating not in rating_to_label):
            raise RecordError(f"rating must be -1, 0, 1 or null, got {rating!r}", path=where, line=line,
                              field=f"{name}.rating")
        return text, None if rating is None else rating_to_label[rating], rating

    texts, labels, records = [], [], []
    steps_cut = 0
    for number, step in enumerate(steps):
        name = f"label.steps[{number}]"
        if not isinstance(step, dict):
            raise RecordError("must be an object", path=where, line=line, field=name)
        completions = step.get("completions") or []
        if not isinstance(completions, list):
            raise RecordError("must be a list", path=where, line=line, field=f"{name}.completions")
        options = [rated(c, f"{name}.completions[{k}]") for k, c in enumerate(completions)]
        chosen, human = step.get("chosen_completion"), step.get("human_completion")
        if chosen is not None and (isinstance(chosen, bool) or not isinstance(chosen, int)
                                   or not 0 <= chosen < len(options)):
            raise RecordError(f"index {chosen!r} out of range for {len(options)} completions", path=where,
                              line=line, field=f"{name}.chosen_completion")
        if chosen is not None:
            taken = chosen
            text, step_label, rating = options[chosen]
        elif human is not None:
            # phase 1: every completion was rated -1 and the labeler wrote a correct step
            taken = None
            text = human.get("text") if isinstance(human, dict) else human
            if not isinstance(text, str) or not text.strip():
                raise RecordError("must hold a step text", path=where, line=line, field=f"{name}.human_completion")
            step_label, rating = True, None
        else:
            # the end of the trajectory: the first rated-wrong completion (found_error) closes it
            wrong = [k for k, (_, _, rating) in enumerate(options) if rating == -1]
            taken = wrong[0] if wrong else None
            text, step_label, rating = options[taken] if taken is not None else (None, None, None)
        if alternatives:
            for k, (alt_text, alt_label, _) in enumerate(options):
                if k != taken and alt_label is not None:
                    records.append({"prompt": problem, "completions": texts + [alt_text],
                                    "labels": labels + [alt_label]})
        if text is None or step_label is None:
            # unrated or unfinished: the labelled prefix ends here. An unchosen last step is the
            # trajectory's own end; an unrated chosen step, or any step after, is data cut.
            if chosen is not None or number + 1 < len(steps):
                steps_cut = len(steps) - number
            break
        texts.append(text)
        labels.append(step_label)
        if rating == -1:
            # the first step rated -1 closes the record, a chosen one too (a labeler may pick a
            # -1 completion and go on): no step follows a -1, as the first-error labels promise
            break
    reference = question.get("ground_truth_answer")
    if not texts:
        if label.get("finish_reason") in ("bad_problem", "give_up"):
            return []  # nothing labelled: counted and reported, not an error
        raise RecordError("no labelled step", path=where, line=line, field="label.steps")
    if steps_cut:
        report.records_cut += 1
        report.steps_cut += steps_cut
    main = {"prompt": problem, "completions": texts, "labels": labels}
    return [{**record, "reference": reference} for record in [main] + records]


def load_prm800k(
    path_or_id: str | os.PathLike,
    *,
    split: str = "train",
    name: str | None = None,
    skip_invalid: bool = False,
    neutral: str = "positive",
    alternatives: bool = False,
):
    """PRM800K raw labels (phase 1 or phase 2 `.jsonl` from github.com/openai/prm800k).

    One record per labelled trajectory: the chosen completion of each step (or the
    labeler's own step in phase 1), up to and including the first step rated -1 (phase 2
    stops there; a chosen completion rated -1 ends the record too, though the trajectory
    goes on), so no step follows one rated -1. Ratings: +1 -> True, -1 -> False, 0 ->
    `neutral`: "positive" (True, as the paper's PRM training treats it), "negative" (False)
    or "half" (0.5, soft labels).
    With `alternatives`, every other rated completion of a step adds a record (the prefix
    plus that completion), as TRL's conversion does. Lines whose labeler marked the
    problem bad or gave up before rating any step are skipped and counted. A chosen step
    left unrated ends its record there too: such records and the steps they leave out are
    counted (`records_cut`, `steps_cut` in `load_report`) and logged as a warning.
    """
    if neutral not in NEUTRAL_POLICIES:
        raise ValueError(f"neutral must be one of {NEUTRAL_POLICIES}, got {neutral!r}")
    return _load("prm800k", _convert_prm800k, path_or_id, split=split, name=name, skip_invalid=skip_invalid,
                 neutral=neutral, alternatives=alternatives)


# --------------------------------------------------------------------------- Math-Shepherd


def _convert_shepherd(row, *, where, line, report):
    text = _field(row, "input", where, line)
    marks = _field(row, "label", where, line)
    pieces = text.split(SHEPHERD_TAG)
    labels, position = [], 0
    for piece in pieces[:-1]:
        # the label text is the input with each tag replaced by "+" or "-"
        if marks[position : position + len(piece)] != piece or position + len(piece) >= len(marks):
            raise RecordError("does not match the input with its step tags replaced by +/-", path=where,
                              line=line, field="label")
        mark = marks[position + len(piece)]
        if mark not in "+-":
            raise RecordError(f"expected '+' or '-' where the input has {SHEPHERD_TAG!r}, got {mark!r}",
                              path=where, line=line, field="label")
        labels.append(mark == "+")
        position += len(piece) + 1
    if marks[position:] != pieces[-1]:
        raise RecordError("does not match the input after its last step tag", path=where, line=line, field="label")
    # The last "Step 1:" before the first tag: a question may say "step 1:" itself.
    first_tag = text.find(SHEPHERD_TAG)
    start = text.lower().rfind("step 1:", 0, first_tag if first_tag >= 0 else len(text))
    if start < 0:  # a tag before any "Step 1:" (in the question): the tag count below says so
        start = text.lower().find("step 1:")
    if start < 0:
        raise RecordError("no 'Step 1:' separating the question from the steps", path=where, line=line,
                          field="input")
    question, solution = text[:start].strip(), text[start:]
    steps = split_steps(solution, "shepherd")
    if not question:
        raise RecordError("no question before 'Step 1:'", path=where, line=line, field="input")
    if len(steps) != len(labels):
        raise RecordError(f"{len(labels)} step tags for {len(steps)} steps (a tag in the question?)", path=where,
                          line=line, field="label")
    return [{"id": row.get("id"), "prompt": question, "completions": steps, "labels": labels}]


def load_math_shepherd(
    path_or_id: str | os.PathLike = "peiyi9979/Math-Shepherd",
    *,
    split: str = "train",
    name: str | None = None,
    skip_invalid: bool = False,
):
    """Math-Shepherd `{"input", "label"}`: the input is the question then "Step k: ... ки"
    steps; the label is the same text with each "ки" replaced by "+" (correct) or "-".
    Steps keep their "Step k:" prefix (as TRL's `trl-lib/math_shepherd` does)."""
    return _load("math_shepherd", _convert_shepherd, path_or_id, split=split, name=name,
                 skip_invalid=skip_invalid)


# --------------------------------------------------------------------------- TRL stepwise


def _convert_trl(row, *, where, line, report):
    reference = row.get("reference")
    if reference is None:
        reference = row.get("answer")
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        reference = str(reference)  # as the problems reader reads a numeric answer
    return [{**row, "reference": reference if isinstance(reference, str) else None}]


def load_trl_stepwise(
    path_or_id: str | os.PathLike = "trl-lib/math_shepherd",
    *,
    split: str = "train",
    name: str | None = None,
    skip_invalid: bool = False,
):
    """TRL stepwise-supervision records `{"prompt", "completions", "labels"}`, validated
    and passed through (plus `id`, and `reference` from a "reference"/"answer" field)."""
    return _load("trl", _convert_trl, path_or_id, split=split, name=name, skip_invalid=skip_invalid)


# --------------------------------------------------------------------------- ProcessBench


def _convert_processbench(row, *, where, line, report):
    problem = _field(row, "problem", where, line)
    steps = _field(row, "steps", where, line, list)
    labels = first_error_labels(_field(row, "label", where, line, int), len(steps), field="label", path=where,
                                line=line)
    return [{"id": row.get("id"), "prompt": problem, "completions": steps, "labels": labels}]


def load_processbench(
    path_or_id: str | os.PathLike = "Qwen/ProcessBench",
    *,
    split: str = "gsm8k",
    name: str | None = None,
    skip_invalid: bool = False,
):
    """ProcessBench `{"id", "problem", "steps", "label"}` where `label` is the index of the
    first wrong step (-1: none): steps before it are True, it and every later step False
    (the benchmark does not judge steps after the first error)."""
    return _load("processbench", _convert_processbench, path_or_id, split=split, name=name,
                 skip_invalid=skip_invalid)


# --------------------------------------------------------------------------- autodetect

_CONVERTERS: dict[str, tuple[Converter, dict[str, Any]]] = {
    "gsm8k": (_convert_gsm8k, {"with_answer_step": True, "keep_annotations": True}),
    "math": (_convert_math, {"style": "auto"}),
    "prm800k": (_convert_prm800k, {"neutral": "positive", "alternatives": False}),
    "math_shepherd": (_convert_shepherd, {}),
    "trl": (_convert_trl, {}),
    "processbench": (_convert_processbench, {}),
}


def detect_source(row: dict[str, Any]) -> str | None:
    """The source whose fields `row` has: a key of the loaders above, or None."""
    keys = set(row)
    if {"prompt", "completions", "labels"} <= keys:
        return "trl"
    if {"input", "label"} <= keys:
        return "math_shepherd"
    if {"question", "label"} <= keys and isinstance(row.get("label"), dict):
        return "prm800k"
    if {"problem", "steps", "label"} <= keys:
        return "processbench"
    if {"problem", "solution"} <= keys:
        return "math"
    if {"question", "answer"} <= keys:
        return "gsm8k"
    return None


def load_step_dataset(
    path_or_id: str | os.PathLike,
    *,
    split: str = "train",
    name: str | None = None,
    skip_invalid: bool = False,
    **options: Any,
):
    """Any of the sources above, recognised from the fields of its first record.

    `options` go to the source's converter (e.g. `neutral="half"` for PRM800K).
    """
    report = LoadReport(source="auto", location=os.fspath(path_or_id))
    rows = list(_open_rows(path_or_id, split=split, name=name, skip_invalid=skip_invalid, report=report))
    source = next((detect_source(row) for _, row in rows if isinstance(row, dict)), None)
    if source is None:
        raise RecordError("cannot tell the source from the fields of the first record", path=report.location,
                          line=rows[0][0] if rows else None)
    convert, defaults = _CONVERTERS[source]
    unknown = set(options) - set(defaults)
    if unknown:
        raise TypeError(f"options {sorted(unknown)} do not apply to {source} data")
    if source == "prm800k" and options.get("neutral", "positive") not in NEUTRAL_POLICIES:
        raise ValueError(f"neutral must be one of {NEUTRAL_POLICIES}")
    report.source = source
    return _build(source, iter(rows), convert, report, skip_invalid, **{**defaults, **options})
