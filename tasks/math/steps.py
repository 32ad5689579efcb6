"""Split a written solution into steps, and join steps back.

Styles (`split_steps(text, style)`):

* "lines"        one step a line (the toolkit's own format, `STEP_SEPARATOR = "\\n"`); display
                 math over several lines (`\\[ ... \\]`, `$$ ... $$`, `\\begin{..} ... \\end{..}`)
                 stays in one step
* "blank"        steps separated by blank lines (a step may span several lines)
* "step_prefix"  "Step 1: ... Step 2: ..." (the prefix stays in the step; also "#### Step 1:" and
                 "**Step 1:**"; "Step 1." only at a line start); a last "The answer is X" line
                 is a step of its own
* "gsm8k"        GSM8K reference solutions: one step a line, `<<48/2=24>>` calculator
                 annotations kept, the final "#### 72" line is the answer, not a step (a
                 "####" line with text after it is a Markdown header, kept as a step)
* "shepherd"     Math-Shepherd: each step ends with the tag "ки"
* "auto"         picks one of the above from the text

A list or tuple of steps (PRM800K, ProcessBench, TRL data) is returned as a list of its
stripped steps, whatever the style.

Round trip: for steps that are non-empty, have no surrounding whitespace and do not
contain the separator (nor display-math delimiters, for "lines"), `split_steps(join_steps(steps, sep), style) == steps`, with
sep "\\n" for "lines", "gsm8k" and "step_prefix", "\\n\\n" for "blank"; and for text that
is such a join, `join_steps(split_steps(text, style), sep) == text`. Math-Shepherd text is
rebuilt with `join_shepherd`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

STEP_STYLES = ("lines", "blank", "step_prefix", "gsm8k", "shepherd")
SHEPHERD_TAG = "ки"
# GSM8K's answer: a "#### 72" line that ends the text (a "#### Step 2" line with text after it
# is a Markdown header).
_GSM8K_ANSWER = re.compile(r"(?:^|\n)[ \t]*####[ \t]*([^\n]*?)[ \t]*\s*\Z")
_CALCULATOR = re.compile(r"<<[^<>]*>>")
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")
# "Step 3:" at the start of the text or after whitespace, also as a Markdown header or in bold
# ("#### Step 3:", "**Step 3:**"); "Step 3." only where a line starts (in prose it is a reference).
_STEP_PREFIX = re.compile(r"(?<!\S)(?:#{1,6}[ \t]*)?(?:\*\*)?step[ \t]*(\d+)[ \t]*([:.])", re.IGNORECASE)
# A last line of its own that states the answer ("The answer is 10"), in the step_prefix style.
_ANSWER_LINE = re.compile(r"\n[ \t]*((?:the )?(?:final )?answer(?: is)?\b[^\n]*)\s*\Z", re.IGNORECASE)
# Display math that may span lines: a "lines" step does not end inside it.
# An opening \[ not preceded by another backslash: \\[2pt] is a line break with spacing.
_DISPLAY_DELIMITERS = ((re.compile(r"(?<!\\)\\\["), re.compile(r"(?<!\\)\\\]")),
                       (re.compile(r"\\begin\{"), re.compile(r"\\end\{")))
MAX_DISPLAY_LINES, MAX_UNCLOSED = 50, 20


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
        return _nonempty(_lines_keeping_display_math(text))
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
    last = _GSM8K_ANSWER.search(text)
    if last is None:
        return _nonempty(text.split("\n")), None
    return _nonempty(text[: last.start()].split("\n")), last.group(1)


def strip_calculator_annotations(text: str) -> str:
    """GSM8K text without its `<<48/2=24>>` annotations (the visible result stays)."""
    return _CALCULATOR.sub("", text)


def _split_step_prefix(text: str) -> list[str]:
    starts = _step_prefix_starts(text)
    if not starts:
        return _nonempty([text])
    answer = _ANSWER_LINE.search(text, starts[-1])
    end = answer.start() if answer else len(text)
    bounds = ([0] if text[: starts[0]].strip() else []) + starts + [end]
    return _nonempty([*(text[begin:stop] for begin, stop in zip(bounds, bounds[1:])), text[end:]])


def _lines_keeping_display_math(text: str) -> list[str]:
    """The lines of `text`, except that a display-math block opened on one line and closed on a
    later one (`\\[ ... \\]`, `$$ ... $$`, `\\begin{..} ... \\end{..}`) stays one piece; a block
    still open after MAX_DISPLAY_LINES lines, or at the end, is left as separate lines."""
    lines = text.split("\n")
    return ["\n".join(lines[first:last + 1]) for first, last in display_math_groups(lines)]


def display_math_groups(lines: Sequence[str]) -> list[tuple[int, int]]:
    """(first, last) line indices of the pieces of `lines` (one step a line): each line alone,
    except a display-math block opened on one line and closed on a later one, which is one
    piece (`split_steps(..., "lines")`; PPO groups its per-line steps the same way)."""
    if not any("$$" in line or "\\[" in line or "\\begin{" in line for line in lines):
        return [(i, i) for i in range(len(lines))]
    counts = [_display_counts(line) for line in lines]
    groups, i, unclosed = [], 0, 0
    while i < len(lines):
        open_now, end = counts[i], i
        # Bounded work on any input: after a few blocks that never close, the rest is plain lines.
        while _display_open(open_now) and unclosed < MAX_UNCLOSED and end + 1 < min(len(lines), i + MAX_DISPLAY_LINES):
            end += 1
            open_now = tuple(a + b for a, b in zip(open_now, counts[end]))
        if end > i and not _display_open(open_now):
            groups.append((i, end))
            i = end + 1
            continue
        unclosed += _display_open(counts[i])
        groups.append((i, i))
        i += 1
    return groups


def _display_counts(line: str) -> tuple[int, int, int]:
    """("$$" marks, "\\[" opened minus closed, "\\begin" minus "\\end") of one line."""
    (open_bracket, close_bracket), (begin, end) = _DISPLAY_DELIMITERS
    dollars = line.replace("\\$", "\0")  # an escaped dollar ("$\\$$2") is no delimiter
    return (dollars.count("$$"), len(open_bracket.findall(line)) - len(close_bracket.findall(line)),
            len(begin.findall(line)) - len(end.findall(line)))


def _display_open(counts) -> bool:
    """Do these counts leave display math open?"""
    dollars, brackets, environments = counts
    return dollars % 2 == 1 or brackets > 0 or environments > 0


def _step_prefix_starts(text: str) -> list[int]:
    """Offsets of the "Step k:" prefixes that number the steps in order (k, k+1, ...), so
    that a "step 2:" quoted inside a step does not start a new one."""
    starts, expected = [], None
    for match in _STEP_PREFIX.finditer(text):
        number = int(match.group(1))
        if match.group(2) == "." and text[:match.start()].rstrip(" \t")[-1:] not in ("", "\n"):
            continue  # "in step 2. we add": a reference in prose
        if expected is None or number == expected:
            starts.append(match.start())
            expected = number + 1
    return starts


def _nonempty(pieces) -> list[str]:
    return [piece.strip() for piece in pieces if piece.strip()]
