"""Split a written solution into steps, and join steps back.

Styles (`split_steps(text, style)`):

* "lines"        one step a line (the toolkit's own format, `STEP_SEPARATOR = "\\n"`)
* "blank"        steps separated by blank lines (a step may span several lines)
* "step_prefix"  "Step 1: ... Step 2: ..." (the prefix stays in the step)
* "gsm8k"        GSM8K reference solutions: one step a line, `<<48/2=24>>` calculator
                 annotations kept, the final "#### 72" line is the answer, not a step
* "shepherd"     Math-Shepherd: each step ends with the tag "ки"
* "auto"         picks one of the above from the text

A list or tuple of steps (PRM800K, ProcessBench, TRL data) is returned as a list of its
stripped steps, whatever the style.

Round trip: for steps that are non-empty, have no surrounding whitespace and do not
contain the separator, `split_steps(join_steps(steps, sep), style) == steps`, with
sep "\\n" for "lines", "gsm8k" and "step_prefix", "\\n\\n" for "blank"; and for text that
is such a join, `join_steps(split_steps(text, style), sep) == text`. Math-Shepherd text is
rebuilt with `join_shepherd`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

STEP_STYLES = ("lines", "blank", "step_prefix", "gsm8k", "shepherd")
SHEPHERD_TAG = "ки"
_GSM8K_ANSWER = re.compile(r"^[ \t]*####[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_CALCULATOR = re.compile(r"<<[^<>]*>>")
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")
# "Step 3:" at the start of the text or after whitespace; "Step 3." too
_STEP_PREFIX = re.compile(r"(?<!\S)step[ \t]*(\d+)[ \t]*[:.]", re.IGNORECASE)


def split_steps(text: str | Sequence[str], style: str = "auto", *, separator: str | None = None) -> list[str]:
    """The steps of a solution, each stripped, empty ones left out.

    text: a solution as one string, or a list/tuple of steps.
    style: one of `STEP_STYLES` or "auto".
    separator: split at exactly this string instead (a reward model's step separator, the
        inverse of `join_steps(steps, separator)`); the style is then not used.
    """
    if not isinstance(text, str):
        return [step.strip() for step in text if step.strip()]
    if separator is not None:
        return _nonempty(text.split(separator))
    if style == "auto":
        style = detect_style(text)
    if style == "lines":
        return _nonempty(text.split("\n"))
    if style == "blank":
        return _nonempty(_BLANK_LINE.split(text.replace("\r\n", "\n")))
    if style == "step_prefix":
        return _split_step_prefix(text)
    if style == "gsm8k":
        return split_gsm8k(text)[0]
    if style == "shepherd":
        return _nonempty(text.split(SHEPHERD_TAG))
    raise ValueError(f"unknown step style {style!r}; choose one of {STEP_STYLES} or 'auto'")


def join_steps(steps: Sequence[str], separator: str = "\n") -> str:
    """The steps as one text, `separator` between them (the inverse of `split_steps`)."""
    return separator.join(steps)


def join_shepherd(steps: Sequence[str]) -> str:
    """Math-Shepherd text: every step followed by " ки", steps on separate lines."""
    return "\n".join(f"{step} {SHEPHERD_TAG}" for step in steps)


def detect_style(text: str) -> str:
    """The style `split_steps(text, "auto")` uses, in this order: a Math-Shepherd tag, a
    GSM8K "####" line or calculator annotation, two or more numbered "Step k:" prefixes, a
    blank line between steps, else one step a line."""
    text = text.strip()
    if SHEPHERD_TAG in text:
        return "shepherd"
    if _GSM8K_ANSWER.search(text) or _CALCULATOR.search(text):
        return "gsm8k"
    if len(_step_prefix_starts(text)) >= 2:
        return "step_prefix"
    if _BLANK_LINE.search(text.replace("\r\n", "\n")):
        return "blank"
    return "lines"


def split_gsm8k(text: str) -> tuple[list[str], str | None]:
    """(steps, answer) of a GSM8K solution: the lines before the last "#### X" line, and X
    (None when there is no such line; then every line is a step)."""
    matches = list(_GSM8K_ANSWER.finditer(text))
    if not matches:
        return _nonempty(text.split("\n")), None
    last = matches[-1]
    return _nonempty(text[: last.start()].split("\n")), last.group(1)


def strip_calculator_annotations(text: str) -> str:
    """GSM8K text without its `<<48/2=24>>` annotations (the visible result stays)."""
    return _CALCULATOR.sub("", text)


def _split_step_prefix(text: str) -> list[str]:
    starts = _step_prefix_starts(text)
    if not starts:
        return _nonempty([text])
    bounds = ([0] if text[: starts[0]].strip() else []) + starts + [len(text)]
    return _nonempty(text[begin:end] for begin, end in zip(bounds, bounds[1:]))


def _step_prefix_starts(text: str) -> list[int]:
    """Offsets of the "Step k:" prefixes that number the steps in order (k, k+1, ...), so
    that a "step 2:" quoted inside a step does not start a new one."""
    starts, expected = [], None
    for match in _STEP_PREFIX.finditer(text):
        number = int(match.group(1))
        if expected is None or number == expected:
            starts.append(match.start())
            expected = number + 1
    return starts


def _nonempty(pieces) -> list[str]:
    return [piece.strip() for piece in pieces if piece.strip()]
