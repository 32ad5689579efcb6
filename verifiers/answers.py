"""Final-answer extraction and equivalence, for plain text and LaTeX.

`extract_answer` finds the final answer in a solution; `answers_equivalent` decides whether
two answers mean the same thing. Both accept any input, never raise and never run the text:
values come from our own parser (`verifiers.parser`), compared exactly as rationals, or
numerically (complex floats at seeded random points when there are variables).

Equivalence policy (what counts as "the same answer"):

- numbers in any format: `1,000` = `1000` = `1000.0` = `$1,000` = `1000 dollars`,
  `\\frac{1}{2}` = `1/2` = `0.5`, mixed `2\\frac{1}{2}` = `2 1/2` = `2.5`,
  `1.5e3` = `1.5 \\times 10^3` = `1500`; radicals and pi by value (`\\sqrt{8}` = `2\\sqrt{2}`).
- a decimal with >= 4 shown decimals equals a value that is not a short decimal itself when it
  is that value rounded or truncated (`1/3` = `0.3333`, `\\pi` = `3.1416`); shorter
  approximations are different answers (`\\pi` != `3.14`, `1/3` != `0.33`, `0.5` != `0.54`).
- percent: `50%` equals both `50` and `0.5` (answers are written both ways); `50` != `0.5`.
- degrees: `30^\\circ` equals `30` and `\\pi/6`.
- units and currency are dropped: `5 \\text{ cm}^2` = `5`.
- `x = 3` = `3`; `x = 3, y = 4` = `(3, 4)`.
- `\\{1, 2\\}` = `\\{2, 1\\}` and bare lists `1, 2` = `2, 1` (order-insensitive); tuples and
  intervals keep order and bracket kind: `(1, 2]` != `[1, 2]`; unions of intervals compare as
  sets; `\\pm` expands to both values; matrices (`pmatrix`, `bmatrix`, ...) compare entry-wise.
- expressions with variables are equal when equal as functions (`x^2 - 1` = `(x-1)(x+1)`).
- anything else compares as normalised text (case, spaces, `\\text{}`, punctuation ignored).
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from fractions import Fraction

from verifiers.limits import DEFAULT_LIMITS, Deadline, LimitError, Limits, ParseError
from verifiers.parser import NotExact, Node, evaluate_complex, evaluate_exact, free_symbols, parse_tree

MAX_ANSWER_CHARS = 2_000
_SCAN_TAIL = 20_000

# -- extraction ------------------------------------------------------------------------------

_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:is|:|=|would\s+be|will\s+be)\s*:?[ \t]*([^\n]*)", re.IGNORECASE
)
_A_COLON = re.compile(r"(?:^|\n)[ \t]*A[ \t]*:[ \t]*([^\n]*)")
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")


def _balanced(text: str, open_at: int) -> str | None:
    """Content of the brace group opening at text[open_at] == '{' (nested braces kept)."""
    depth = 0
    for i in range(open_at, min(len(text), open_at + MAX_ANSWER_CHARS * 5)):
        ch = text[i]
        if ch == "{" and text[i - 1] != "\\":
            depth += 1
        elif ch == "}" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    return None


def _boxed(text: str) -> str | None:
    for command in ("\\boxed", "\\fbox"):
        at = text.rfind(command)
        tries = 0
        while at != -1 and tries < 8:  # a few unclosed boxes at the end are skipped, not thousands
            tries += 1
            i = at + len(command)
            while i < len(text) and text[i] == " ":
                i += 1
            if i < len(text) and text[i] == "{":
                content = _balanced(text, i)
                if content is not None:
                    return content.strip()
            elif i < len(text):
                m = re.match(r"[^\s$]+", text[i : i + 200])
                if m:
                    return m.group()
            at = text.rfind(command, 0, at)
    return None


def _clean_sentence(answer: str) -> str:
    answer = answer.strip()
    boxed = _boxed(answer)
    if boxed is not None:
        return boxed
    answer = re.sub(r"[.。]+\s*$", "", answer).strip()
    if len(answer) >= 2 and answer[0] == "$" and answer[-1] == "$" and answer.count("$") == 2:
        answer = answer[1:-1].strip()
    return answer


def extract_answer(text: str, *, fallback_last_number: bool = True) -> str | None:
    """The final answer in a solution, or None.

    Looks for, in order: the last `\\boxed{...}` (nested braces allowed), `#### 18`,
    "The (final) answer is ...", `Answer: ...`, `A: ...`; then, if `fallback_last_number`,
    the last number in the text. Never raises.

    >>> extract_answer("so $x = \\\\boxed{\\\\frac{1}{2}}$.")
    '\\\\frac{1}{2}'
    >>> extract_answer("48 + 24 = 72\\n#### 72")
    '72'
    """
    if not isinstance(text, str) or not text:
        return None
    try:
        boxed = _boxed(text)
        if boxed is not None:
            return boxed
        tail = text[-_SCAN_TAIL:]
        for pattern in (_HASHES, _ANSWER_IS, _A_COLON):
            last = None
            for last in pattern.finditer(tail):
                pass
            if last is not None:
                answer = _clean_sentence(last.group(1))
                if answer:
                    return answer[:MAX_ANSWER_CHARS]
        if fallback_last_number:
            last = None
            for last in _LAST_NUMBER.finditer(tail[-2000:]):
                pass
            if last is not None:
                return re.sub(r"\s+", "", last.group()).rstrip(",")
    except Exception:  # extraction must never crash the caller
        return None
    return None


# -- normalisation ---------------------------------------------------------------------------

_SUPERSCRIPTS = str.maketrans({"⁰": "^0", "¹": "^1", "²": "^2", "³": "^3", "⁴": "^4", "⁵": "^5",
                               "⁶": "^6", "⁷": "^7", "⁸": "^8", "⁹": "^9", "⁻": "^-"})
_LAYOUT = re.compile(r"(?<!\\)\\[,!;: ]|\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])|\\displaystyle|\\limits|~")
_TEXT_CMD = re.compile(
    r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|rm|operatorname)\s*\{([^{}]*)\}(\s*\^\s*\{?\d\}?)?"
)
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree|\bdegrees?\b")
_PERCENT = re.compile(r"\\?%|\bpercent\b")
_ASSIGNMENT = re.compile(r"^\s*\\?[A-Za-z]\w*(?:_\{?\w+\}?)?\s*(?:=|\\in)\s*")
_UNIT_WORDS = re.compile(
    r"(?<=[\d}\s])\s*(?:square\s+|cubic\s+)?(?:units?|dollars?|cents?|cm|mm|km|m|meters?|metres?|inches|inch|in|"
    r"feet|foot|ft|yards?|miles?|mph|hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|years?|"
    r"grams?|g|kg|pounds?|lbs?|ounces?|oz|liters?|litres?|ml|gallons?|degrees?)\b(?:\s*\^\s*\{?\d\}?)?\.?"
)
# "7 km/h", "12 widgets": a word (or rate) after the final number.
_TRAILING_UNIT = re.compile(r"(?<=[\d}])\s+(?:[A-Za-z]{2,}(?:/[A-Za-z]+)?|[A-Za-z]/[A-Za-z]+)(?:\^\d)?\s*$")
_MATRIX = re.compile(r"\\begin\{([pbBvV]?matrix|array)\}(?:\{[^{}]*\})?(.*?)\\end\{\1\}", re.DOTALL)


def _normalise(text: str) -> str:
    text = text.translate(_SUPERSCRIPTS)
    text = unicodedata.normalize("NFKC", text).replace("⁄", "/")
    text = text.strip()
    boxed = _boxed(text)
    if boxed is not None:
        text = boxed
    # Math delimiters around the whole answer.
    for left, right in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            text = text[len(left) : len(text) - len(right)].strip()
    text = _LAYOUT.sub(" ", text)
    text = re.sub(r"\\(?:emptyset|varnothing)|\\\{\s*\\\}", "∅", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\$", "$")
    text = re.sub(r"[.\s]+$", "", text)
    return text.strip()


# -- values ----------------------------------------------------------------------------------

Value = Fraction | complex | Node  # exact, numeric, or a tree with variables


def _short_decimal(value: Fraction, decimals: int) -> bool:
    return (value * 10**decimals).denominator == 1


def _decimals_shown(text: str) -> int:
    m = re.fullmatch(r"\s*[-+]?\$?\s*\d[\d,]*\.(\d+)\s*", text)
    return len(m.group(1)) if m else 0


class _Scalar:
    """One answer value with the readings it allows (50% -> 0.5 or 50; 30° -> 30 or pi/6)."""

    __slots__ = ("readings", "decimals", "text")

    def __init__(self, readings: list, decimals: int, text: str):
        self.readings = readings
        self.decimals = decimals
        self.text = text


def _scalar(text: str, limits: Limits, deadline: Deadline) -> _Scalar | None:
    percent = bool(_PERCENT.search(text))
    degrees = bool(_DEGREES.search(text))
    body = _PERCENT.sub(" ", text)
    body = _DEGREES.sub(" ", body)
    body = _TEXT_CMD.sub(lambda m: " " + m.group(1) + " " if re.search(r"\d", m.group(1)) else " ", body)
    if re.search(r"\d", body):
        body = _TRAILING_UNIT.sub("", body)
        body = _UNIT_WORDS.sub(" ", body)
    body = body.replace("$", " ").strip()
    body = _ASSIGNMENT.sub("", body) if re.match(r"^\s*\\?[A-Za-z]", body) and "=" in body else body
    if not body:
        return None
    try:
        node = parse_tree(body, limits, deadline, relation=False)
    except (ParseError, IndexError, RecursionError):
        return None
    value = _evaluate(node, limits, deadline)
    if value is None:
        return None
    readings = [value]
    if percent and not isinstance(value, tuple):
        readings.append(value / 100 if isinstance(value, Fraction) else value / 100)
    if degrees and not isinstance(value, tuple):
        readings.append(complex(value) * math.pi / 180)
    return _Scalar(readings, _decimals_shown(body), body)


def _evaluate(node: Node, limits: Limits, deadline: Deadline) -> Value | None:
    if free_symbols(node):
        return node
    try:
        return evaluate_exact(node, limits, deadline)
    except NotExact:
        pass
    except (ZeroDivisionError, LimitError, ArithmeticError, ValueError):
        return None
    try:
        value = evaluate_complex(node, None, limits, deadline)
    except (NotExact, ArithmeticError, ValueError, KeyError, TypeError):
        return None
    if value != value:  # NaN never equals anything
        return None
    return value


def _values_equal(a: Value, b: Value, a_decimals: int, b_decimals: int, limits: Limits, deadline: Deadline) -> bool:
    a_tree, b_tree = isinstance(a, tuple), isinstance(b, tuple)
    if a_tree or b_tree:
        return _functions_equal(a if a_tree else ("num", a), b if b_tree else ("num", b), limits, deadline)
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        if a == b:
            return True
    else:
        ca, cb = complex(a), complex(b)
        if ca == cb:
            return True
        if math.isinf(abs(ca)) or math.isinf(abs(cb)):
            return False
        if abs(ca - cb) <= 1e-9 * max(abs(ca), abs(cb)):
            return True
    # A rounded decimal against a value that is not itself a short decimal.
    for shown, other, decimals in ((a, b, a_decimals), (b, a, b_decimals)):
        if decimals >= 4 and isinstance(shown, Fraction):
            if isinstance(other, Fraction) and _short_decimal(other, decimals):
                continue
            if isinstance(other, complex) and other.imag != 0:
                continue
            real = other if isinstance(other, Fraction) else other.real
            ulp = 10.0**-decimals
            if abs(float(real) - float(shown)) <= ulp / 2 + 1e-12 or (
                    abs(float(real) - float(shown)) < ulp and abs(float(real)) > abs(float(shown))):
                return True
    return False


def _functions_equal(a: Node, b: Node, limits: Limits, deadline: Deadline) -> bool:
    names = sorted(free_symbols(a) | free_symbols(b))
    rng = random.Random(7)
    agreed = 0
    for _ in range(5):
        env = {n: complex(rng.uniform(0.3, 2.0), rng.uniform(-1.0, 1.0)) for n in names}
        try:
            va = evaluate_complex(a, env, limits, deadline)
            vb = evaluate_complex(b, env, limits, deadline)
        except (NotExact, ArithmeticError, ValueError, KeyError, TypeError):
            continue
        if va != va or vb != vb:
            continue
        if abs(va - vb) > 1e-8 * max(1.0, abs(va), abs(vb)):
            return False
        agreed += 1
    return agreed >= 3


def _scalars_equal(a: _Scalar, b: _Scalar, limits: Limits, deadline: Deadline) -> bool:
    for ra in a.readings:
        for rb in b.readings:
            if _values_equal(ra, rb, a.decimals, b.decimals, limits, deadline):
                return True
    return False


# -- structure -------------------------------------------------------------------------------


def _split_top(text: str, separator: str) -> list[str]:
    """Split at separators outside brackets; commas of thousands (`1,000`) are not separators."""
    parts, depth, start = [], 0, 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(separator, i):
            if separator == "," and i > 0 and text[i - 1].isdigit() and re.match(r",\d{3}(?!\d)", text[i : i + 5]):
                i += 1
                continue
            parts.append(text[start:i])
            start = i + len(separator)
            i = start
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


class _Structure:
    """kind: "scalar" | "tuple" | "set" | "list" | "interval" | "union" | "matrix" | "text"."""

    __slots__ = ("kind", "items", "brackets", "raw")

    def __init__(self, kind: str, items: list, brackets: str = "", raw: str = ""):
        self.kind = kind
        self.items = items
        self.brackets = brackets
        self.raw = raw


def _structure(text: str, limits: Limits, deadline: Deadline, depth: int = 0) -> _Structure:
    deadline.check()
    if depth > 6:
        raise LimitError("answer nested too deeply")
    m = _MATRIX.search(text)
    if m and m.start() < 3:
        rows = [r for r in re.split(r"\\\\", m.group(2)) if r.strip()]
        cells = [[_structure(c.strip(), limits, deadline, depth + 1) for c in r.split("&")] for r in rows]
        return _Structure("matrix", cells)
    if "\\cup" in text or "∪" in text:
        parts = [p.strip() for p in re.split(r"\\cup|∪", text)]
        return _Structure("union", [_structure(p, limits, deadline, depth + 1) for p in parts])
    if "\\pm" in text or "±" in text:
        plus = re.sub(r"\\pm|±", "+", text, count=1)
        minus = re.sub(r"\\pm|±", "-", text, count=1)
        return _Structure("set", [_structure(plus, limits, deadline, depth + 1),
                                  _structure(minus, limits, deadline, depth + 1)])
    stripped = text
    brackets = ""
    if text.startswith("\\{") and text.endswith("\\}"):
        stripped, brackets = text[2:-2], "{}"
    elif len(text) >= 2 and text[0] in "([" and text[-1] in ")]" and _split_top(text[1:-1], ",")[0] != text[1:-1]:
        stripped, brackets = text[1:-1], text[0] + text[-1]
    parts = _split_top(stripped, ",")
    if len(parts) == 1 and not brackets:
        parts = _split_top(stripped, ";") if ";" in stripped else parts
    if len(parts) > 1 or brackets == "{}":
        items = [_structure(_ASSIGNMENT.sub("", p) if "=" in p else p, limits, deadline, depth + 1)
                 for p in parts if p or brackets]
        if brackets == "{}":
            return _Structure("set", items, brackets)
        if not brackets:
            return _Structure("list", items)
        if brackets in ("[)", "(]") or (len(items) == 2 and any(
                i.kind == "scalar" and any(isinstance(r, complex) and abs(r) == float("inf") for r in i.items[0].readings)
                for i in items)):
            return _Structure("interval", items, brackets)
        return _Structure("tuple", items, brackets)
    scalar = _scalar(text, limits, deadline)
    if scalar is not None:
        return _Structure("scalar", [scalar], raw=text)
    return _Structure("text", [_text_key(text)], raw=text)


def _text_key(text: str) -> str:
    text = _TEXT_CMD.sub(lambda m: m.group(1), text)
    text = re.sub(r"\\[a-zA-Z]+", lambda m: m.group()[1:], text)
    text = text.lower()
    text = re.sub(r"^(?:the\s+)?(?:answer\s+is\s*:?)", "", text)
    return re.sub(r"[\s{}()$.,:;!?'\"`*_\\]+", "", text)


def _equal(a: _Structure, b: _Structure, limits: Limits, deadline: Deadline) -> bool:
    deadline.check()
    if a.kind == "scalar" and b.kind == "scalar":
        return _scalars_equal(a.items[0], b.items[0], limits, deadline)
    if a.kind == "text" or b.kind == "text":
        # "\\text{(C)}" vs "C", "\\text{yes}" vs "yes": the other side may have parsed as letters.
        key_a = a.items[0] if a.kind == "text" else (_text_key(a.raw) if a.kind == "scalar" else None)
        key_b = b.items[0] if b.kind == "text" else (_text_key(b.raw) if b.kind == "scalar" else None)
        return bool(key_a) and key_a == key_b
    if a.kind == "matrix" or b.kind == "matrix":
        if a.kind != b.kind or len(a.items) != len(b.items):
            return False
        return all(len(ra) == len(rb) and all(_equal(x, y, limits, deadline) for x, y in zip(ra, rb))
                   for ra, rb in zip(a.items, b.items))
    if a.kind == "scalar" or b.kind == "scalar":
        return False
    if len(a.items) != len(b.items):
        return False
    ordered = {"tuple", "interval"}
    if a.kind in ordered and b.kind in ordered:
        if a.brackets != b.brackets:
            return False
        return all(_equal(x, y, limits, deadline) for x, y in zip(a.items, b.items))
    if (a.kind in ordered) != (b.kind in ordered) and "list" not in (a.kind, b.kind):
        return False
    if a.kind in ordered or b.kind in ordered:
        # A bare list against a tuple: same order required.
        return all(_equal(x, y, limits, deadline) for x, y in zip(a.items, b.items))
    # sets, bare lists, unions: order-insensitive matching.
    unused = list(b.items)
    for x in a.items:
        for j, y in enumerate(unused):
            if _equal(x, y, limits, deadline):
                del unused[j]
                break
        else:
            return False
    return True


def answers_equivalent(gold: str, pred: str, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Do two final answers mean the same thing? See the module docstring for the policy.

    >>> answers_equivalent("\\\\frac{1}{2}", "0.5")
    True
    >>> answers_equivalent("\\\\{1, 2\\\\}", "\\\\{2, 1\\\\}")
    True
    Any input returns a bool within the time budget; never raises.
    """
    try:
        if not isinstance(gold, str) or not isinstance(pred, str):
            return False
        if gold.strip() == pred.strip():
            return bool(gold.strip())
        if len(gold) > MAX_ANSWER_CHARS * 5 or len(pred) > MAX_ANSWER_CHARS * 5:
            return False
        a, b = _normalise(gold), _normalise(pred)
        if not a or not b:
            return False
        if a == b:
            return True
        if len(a) > MAX_ANSWER_CHARS or len(b) > MAX_ANSWER_CHARS:
            return False
        deadline = Deadline(limits.time_budget)
        return _equal(_structure(a, limits, deadline), _structure(b, limits, deadline), limits, deadline)
    except Exception:  # any input gets an answer; refusals and oddities are "not equivalent"
        return False
