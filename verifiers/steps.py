"""Checking the arithmetic and algebra inside reasoning steps.

`check_step` finds every claim in a step and checks it exactly:

- calculator annotations `<<48/2=24>>` (GSM8K style);
- equations in prose, `Natalia sold 48/2 = 24 clips`, `$12 x 5 = $60`, chains `a = b = c`
  (each neighbouring pair is one claim), `20% of 50 = 10`, `≈` for approximations;
- arithmetic told in words before the left side (`_prose_operation`): `twice 7 = 14`, `half of
  8 = 4`, `two-thirds of 27 = 18`, `three times 4 = 12`, `3 times as many as 4 = 12`, `the sum /
  product / difference / average of 3 and 4 = 7`, `5 less than 20 = 15`, `3 years older than 9 =
  12`, `20% more than 50 = 60`. A phrase we recognise but do not read (`3 times more than 4`,
  `twice the sum of ...`), or prose words before a lone number (`6 sets x every 2 hours = 12
  hours`), leave the claim unchecked, never false.

Rounding policy (explicit, so a verdict can be explained):

- Both sides are evaluated as exact rationals when possible (complex floats otherwise, e.g.
  with pi or non-square roots, compared to 1e-9 relative).
- A side written as a decimal literal with d >= 1 shown decimals (`0.33`, `66.67%`,
  `66.666...%`) is accepted when the other side rounds *or* truncates to it at d decimals:
  `1/3 = 0.33` and `2/3 = 0.66` are true; `2/3 = 0.65` is false.
- An integer shown for a non-integer value is false (`100/3 = 33`, `1/4 = 15`), except after
  `≈` / `\\approx`, where rounding to the shown digits or 1 % relative error is accepted, and
  for a whole quotient followed by its remainder (`100 / 3 = 33 each, with 1 remaining`: unchecked).
- `%` may be a unit label (`(3/4)*100 = 75%`, `3/21 * 100% = 14.28`), but not where a percentage
  is taken of a quantity (`10% of 50 = 500` and `$50 * 20% = $1000` are false), not when both
  sides carry `%` (`75% = 0.75%`), and not for a value below 1 shown as a percentage of itself
  with no factor 100 (`1/4 = 0.25%` is false). `T + p%` may be a percentage change (`$50 + 20% =
  $60`).
- A side that divides by zero claimed equal to a number is false (`6 / 0 = 0`).
- Claims whose sides contain variables (`x + 2x = 30`) are not arithmetic and are skipped; so are
  unit conversions between two bare quantities with different units (`1 hour = 60 minutes`),
  number words used as units (`2 dozen + 6 = 30`), quantities counted in thousands (`5 thousand
  dollars ... 5 * 3 = $15,000`), range labels (`Weeks 1-2`), and anything the parser refuses
  (limits, unknown words).

`check_transition(prev, step)` checks algebra between steps and `verify_solution` combines
both with the final-answer check into per-step verdicts.
"""

from __future__ import annotations

import cmath
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from verifiers.limits import DEFAULT_LIMITS, Deadline, LimitError, Limits, ParseError
from verifiers.parser import (
    FUNCTIONS,
    GREEK_WORDS,
    PLAIN_NUMBER,
    POWER_WORDS,
    STOP_WORDS,
    Node,
    functions_equal,
    NotExact,
    Token,
    evaluate_arithmetic,
    evaluate_complex,
    evaluate_exact,
    evaluate_plain_chain,
    free_symbols,
    number_value,
    parse_prefix,
    parse_tokens,
    space_hyphen_mixed_numbers,
    strip_invisible,
    to_sympy,
    tokenize,
)

MAX_STEP_CHARS = 20_000
_ANNOTATION = re.compile(r"<<([^<>]{0,2000})>>")
_CLAIM_RELATIONS = frozenset(["=", "≈"])
# A Markdown list marker at the start of a line ("- 3 * 4 = 12") is not a sign: the marker,
# then a space ("-3 + 5 = 2" keeps its minus). It becomes "; ", which ends the claim of the
# line before as a line break does not.
_LIST_MARKER = re.compile(r"(?m)^([ \t]*)[-*•][ \t]+(?=\S)")
# A line break between the end of one operand and the start of another ("= 36\n(36 + 4) / 2")
# ends a claim: read as a space, the lines ran together into one product ("36 (36 + 4)").
# A line that starts with an operator or "=" still continues the expression above it.
_LINE_BETWEEN_OPERANDS = re.compile(r"(?<=[0-9A-Za-z)\]%])[ \t]*\n(?=[ \t]*[0-9A-Za-z(\[$])")
_STOP_OPS = frozenset([",", "=", "≈", "<", ">", "<=", ">=", "!=", "..."])
_OPERATOR_WORDS = frozenset(["times", "of", "plus", "minus", "by", "divided", "multiplied"])
# One-letter words that are prose, not variables, when they stand before an equation.
_PROSE_LETTERS = frozenset(["a", "A", "I"])
_APPROX_WORDS = frozenset(["approximately", "about", "around", "roughly", "nearly", "approx"])
_MAX_LEFT_TOKENS = 80
# A word like these just before a claim's left side means the quantity it computes started
# earlier ("3 x the height of 12 inches = 36", "90 bulbs at $.50 = $45").
_TRUNCATING_WORDS = frozenset(["x", "X", "at", "per", "with"])
# Words that stand for arithmetic before a left side ("twice 7 = 14", "5 less than 20 = 15"):
# `_prose_operation` reads them or marks the claim unsure; the fast path never confirms after them.
_MULTIPLIER_WORDS = {"twice": 2, "double": 2, "triple": 3, "thrice": 3, "quadruple": 4}
_FRACTION_WORDS = {
    "half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4, "fourth": 4, "fourths": 4,
    "fifth": 5, "fifths": 5, "sixth": 6, "sixths": 6, "seventh": 7, "sevenths": 7, "eighth": 8, "eighths": 8,
    "ninth": 9, "ninths": 9, "tenth": 10, "tenths": 10,
}
_COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_COMBINING_WORDS = frozenset(["sum", "total", "product", "difference", "quotient", "average", "mean"])
# "A more than B" is B + A, "A less than B" is B - A; so are comparatives ("3 years older than 9").
_COMPARING_SIGNS = {
    "more": 1, "less": -1, "fewer": -1, "older": 1, "younger": -1, "longer": 1, "shorter": -1, "taller": 1,
    "heavier": 1, "lighter": -1, "bigger": 1, "larger": 1, "smaller": -1, "higher": 1, "lower": -1,
    "cheaper": -1, "faster": 1, "slower": -1, "greater": 1,
}
_COMPARING_WORDS = frozenset(_COMPARING_SIGNS)
_PROSE_TRIGGERS = frozenset(["of", "times", "as", "than", "and"]) | frozenset(_MULTIPLIER_WORDS)
_READ_TRIGGERS = _PROSE_TRIGGERS | {"the"}  # "half of the 36": the fast path confirms after "the"
# Before a read prose phrase, these mean it is itself part of a longer one ("twice the sum of 3 and 4").
_PROSE_CHAIN_WORDS = (frozenset(["than", "of", "times", "and", "as", "x", "X", "plus", "minus", "by", "half"])
                      | _COMPARING_WORDS | frozenset(_MULTIPLIER_WORDS))
# An operator a few prose words behind a left side means its quantity started earlier.
_WALK_OPERATOR_WORDS = frozenset(["x", "X", "times", "plus", "minus"])
# Words after which a lone quantity starts a claim of its own ("so 7 = 14" is false).
_CLAUSE_WORDS = frozenset(["so", "then", "thus", "hence", "therefore", "because", "since", "is", "are", "was",
                           "were", "be", "equals", "means", "gives", "makes", "that", "which", "now"])
# Words after a division's result that say it is a whole quotient ("= 33 stickers each, with 1 remaining").
_REMAINDER_WORDS = frozenset(["remainder", "remaining", "remain", "remains", "leftover", "left", "full", "whole",
                              "complete"])
# Words after a quotient's whole result that say it was rounded ("20 / 6 = 4 boxes, rounded up").
_ROUNDING_WORDS = frozenset(["round", "rounded", "rounding", "rounds"])
# Number words used as units change a side's value, which we read unchanged ("2 dozen + 6 = 30").
_NUMBER_UNIT_WORDS = frozenset(["dozen", "dozens", "hundred", "hundreds", "thousand", "thousands", "million",
                                "millions", "billion", "billions", "score", "gross"])
# Before the first number of "A more than B", a word that makes A a label or a date, not a
# quantity ("In 2019 more than 500 ...", "On day 3 more than 4 ...").
_LABEL_WORDS = frozenset("""in on at since from until till after before during by around day days week weeks month
    year years page chapter level grade round step part room floor game number no lap stage section question
    problem row seat bus route gate class unit lesson phase hour minute""".split())
# Words whose number is an index, which a dash after it separates from the text ("Step 4 - ...").
_INDEX_WORDS = frozenset(["step", "part", "case", "stage", "phase", "question", "problem", "exercise"])
_SCALE_WORDS = {"thousand": 1000, "thousands": 1000, "million": 10**6, "millions": 10**6,
                "billion": 10**9, "billions": 10**9}
_CLOCK_OR_ID = re.compile(r"0\d")
_OPEN_BRACKETS = frozenset("([{")
_CLOSE_BRACKETS = frozenset(")]}")


@dataclass(frozen=True)
class Claim:
    """One checkable statement found in a step.

    source: "annotation" (`<<a=b>>`) or "prose"; text: the claim as written;
    ok: True / False, or None when it could not be checked; reason: why.
    """

    source: str
    text: str
    ok: bool | None
    reason: str


@dataclass(frozen=True)
class StepVerdict:
    """Verdict for one step: ok is True / False / None (nothing checkable)."""

    ok: bool | None
    reason: str


@dataclass
class SolutionVerdict:
    """Per-step verdicts; first_wrong is the index of the first False step, -1 if none."""

    steps: list[StepVerdict]
    first_wrong: int
    answer: str | None = None
    answer_correct: bool | None = None
    claims: list[list[Claim]] = field(default_factory=list)


# -- values and comparison -------------------------------------------------------------------


def _value(node: Node, limits: Limits, deadline: Deadline) -> Fraction | complex:
    """Exact rational if possible, else a complex float. Raises on variables / refusals."""
    try:
        return evaluate_exact(node, limits, deadline)
    except NotExact:
        value = evaluate_complex(node, None, limits, deadline)
    if not cmath.isfinite(value):
        # inf = inf, nan: equality of such values says nothing about the arithmetic.
        raise NotExact("infinite or undefined value")
    return value


def _side_values(node: Node, toks: list[Token], limits: Limits, deadline: Deadline) -> list[Fraction | complex]:
    """The value of a side, and a second one where its notation is ambiguous: prose `500/ 1/10`
    is 500/(1/10) by the slash-fraction rule but 500/1/10 = 50 by the usual precedence."""
    values = [_value(node, limits, deadline)]
    if sum(1 for t in toks if t[1] == "/") >= 2:
        try:
            other = parse_tokens(toks, limits, deadline, slash_fractions=False)
        except ParseError:
            other = node
        if other != node:
            values.append(_value(other, limits, deadline))
    if len(toks) >= 4 and toks[-1][1] == "%" and toks[-2][0] == "num":
        change = _percent_change(toks, limits, deadline)
        if change is not None:
            values.append(change)
    names = {t[1] for t in toks if t[0] == "fn"}
    if "log" in names:
        # log without a base is ln to a mathematician, log10 in school ("log 100 = 2").
        values.append(_value(_rewrite(node, _common_log), limits, deadline))
    degrees = any(t[0] == "op" and t[1] == "°" for t in toks)
    if names & _TRIGONOMETRY:
        # "sin 30 = 1/2" is in degrees as often as not; "sin 30°" only ever is (the parser drops
        # the degree sign, so its radian reading is no reading at all).
        in_degrees = _value(_rewrite(node, _trigonometry_in_degrees), limits, deadline)
        values = [in_degrees] if degrees else [*values, in_degrees]
    elif degrees:
        values.append(values[0] * cmath.pi / 180)  # "30° = π/6"
    return values


_TRIGONOMETRY = frozenset(["sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan"])


def _rewrite(node: Node, replace) -> Node:
    """`node` with every subtree for which replace(subtree) is not None replaced by it."""
    new = replace(node)
    if new is not None:
        return new
    return tuple(_rewrite(c, replace) if isinstance(c, tuple) else
                 [(k, _rewrite(v, replace)) for k, v in c] if isinstance(c, list) else c for c in node)


def _common_log(node: Node) -> Node | None:
    if node[0] == "fn" and node[1] == "log":
        return ("mul", [(True, ("fn", "log", _rewrite(node[2], _common_log))),
                        (False, ("fn", "log", ("num", Fraction(10))))])
    return None


def _trigonometry_in_degrees(node: Node) -> Node | None:
    if node[0] != "fn" or node[1] not in _TRIGONOMETRY:
        return None
    argument = _rewrite(node[2], _trigonometry_in_degrees)
    if node[1].startswith("arc"):
        return ("mul", [(True, ("fn", node[1], argument)), (True, ("num", Fraction(180))), (False, ("const", "pi"))])
    return ("fn", node[1], ("mul", [(True, argument), (True, ("const", "pi")), (False, ("num", Fraction(180)))]))


def _percent_change(toks: list[Token], limits: Limits, deadline: Deadline) -> Fraction | complex | None:
    """A side `T + p%` / `T - p%` read as a calculator does, T changed by p percent
    (`$50 + 20% = $60`, "a 10% raise: $2000 + 10% = $2200"); None for any other side."""
    k = len(toks) - 3
    sign = toks[k]
    if not (sign[0] == "op" and sign[1] in ("+", "-") or sign[0] == "word" and sign[1] in ("plus", "minus")):
        return None
    if any(t[1] == "%" for t in toks[:k]):
        return None  # "50% + 25% = 75%": percentages added to each other
    try:
        base = _value(parse_tokens(toks[:k], limits, deadline), limits, deadline)
    except (ParseError, NotExact, ArithmeticError, ValueError):
        return None
    rate = number_value(toks[-2][1], limits) / 100
    return base * (1 + rate) if sign[1] in ("+", "plus") else base * (1 - rate)


def _compare_readings(left_values, right_values, left_toks, right_toks, approx: bool = False) -> tuple[bool, str]:
    """compare_sides over every reading of the two sides: true if any reading holds."""
    why = "values differ"
    for lv in left_values:
        for rv in right_values:
            ok, why = compare_sides(lv, rv, left_toks, right_toks, approx)
            if ok:
                if len(left_values) + len(right_values) > 2:
                    why += " (under one reading of an ambiguous notation)"
                return True, why
    return False, why


def _displayed_decimals(tokens: list[Token]) -> tuple[Fraction, bool] | None:
    """For a side that is one decimal literal (`0.33`, `$1.50`, `66.7%`, `-2.5 kg`), the size of
    its last shown digit and whether it was cut short with `...`; None for anything else."""
    literal = None
    percent = False
    ellipsis = False
    for kind, value, _ in tokens:
        if kind == "num":
            if literal is not None:
                return None
            literal = value
        elif kind == "op" and value == "%":
            percent = True
        elif kind == "op" and value == "...":
            ellipsis = True
        elif kind == "op" and value in ("-", "+"):
            if literal is not None:
                return None
        elif kind not in ("cur", "word"):
            return None
    if literal is None or "." not in literal or "e" in literal.lower():
        return None
    decimals = len(literal.split(".")[1])
    ulp = Fraction(1, 10**decimals) * (Fraction(1, 100) if percent else 1)
    return ulp, ellipsis


def _is_lone_quantity(tokens: list[Token]) -> bool:
    """One number with only units around it: `$24`, `24 clips`, `$15/hour`, `50%`."""
    nums = 0
    for i, t in enumerate(tokens):
        if t[0] == "num":
            nums += 1
        elif t[0] in ("fn", "const"):
            return False
        elif t[0] == "op" and t[1] not in ("%", "-", "..."):
            if t[1] == "/" and i + 1 < len(tokens) and tokens[i + 1][0] == "word":
                continue
            return False
    return nums == 1


def _units(tokens: list[Token]) -> frozenset[str]:
    """Unit words of a side (plural folded), with `$` for currency."""
    return frozenset(
        "$" if t[0] == "cur" else t[1].lower().rstrip("s")
        for t in tokens
        if t[0] == "cur" or (t[0] == "word" and len(t[1]) > 1 and t[1] not in _OPERATOR_WORDS
                             and t[1].lower() not in STOP_WORDS)
    )


def _close(a: Fraction | complex, b: Fraction | complex, tol: Fraction | float, strict: bool = False) -> bool:
    """|a - b| <= tol (< tol when strict), with float slack only for inexact values."""
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return abs(a - b) < tol if strict else abs(a - b) <= tol
    a, b = complex(a), complex(b)
    slack = 1e-12 * max(abs(a), abs(b))
    return abs(a - b) < float(tol) - slack if strict else abs(a - b) <= float(tol) + slack


def _larger(a: Fraction | complex, b: Fraction | complex) -> bool:
    """|a| > |b|, exactly for exact values (2/3 and 0.6666666666666666 are one double)."""
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return abs(a) > abs(b)
    return abs(complex(a)) > abs(complex(b))


def compare_sides(left: Fraction | complex, right: Fraction | complex, left_toks: list[Token],
                  right_toks: list[Token], approx: bool = False, percent_labels: bool = True) -> tuple[bool, str]:
    """Apply the rounding policy (module docstring) to two evaluated sides; percent_labels=False
    leaves out the reading of % as a unit label."""
    if isinstance(left, Fraction) and isinstance(right, Fraction):
        if left == right:
            return True, "exact"
    elif _close(left, right, 1e-9 * max(1.0, abs(complex(left)))):
        return True, "equal to 1e-9"
    for shown_toks, other in ((right_toks, left), (left_toks, right)):
        display = _displayed_decimals(shown_toks)
        if display is None:
            continue
        ulp, _ = display
        shown = right if shown_toks is right_toks else left
        if _close(other, shown, ulp / 2):
            return True, "equal after rounding to the shown decimals"
        # Truncation: the shown value is the true one cut after d decimals, so strictly less
        # than one unit of the last decimal away (1/5 = 0.1 is a whole unit off: false).
        if _close(other, shown, ulp, strict=True) and _larger(other, shown):
            return True, "equal after truncating to the shown decimals"
    left_percent, right_percent = (any(t[1] == "%" for t in toks) for toks in (left_toks, right_toks))
    if percent_labels and left_percent != right_percent and not _percent_of_a_quantity(left_toks) \
            and not _percent_of_a_quantity(right_toks) \
            and (abs(complex(right if left_percent else left)) >= 1
                 or _hundred_factor(left_toks) or _hundred_factor(right_toks)):
        # Prose uses % loosely: "(3/4)*100 = 75%", "50 - 20 = 30%", "3/21 * 100% = 14.28".
        # Not when a percentage is taken of a quantity ("10% of 50 = 500" is false), nor when
        # both sides carry % ("75% = 0.75%"), nor for a side below 1 shown as a percentage of
        # itself with no factor 100 anywhere ("1/4 = 0.25%": the classic slip).
        # A side scaled by 100 keeps its shown decimals only if its % was dropped with it
        # ("1/3 * 100 = 33.33%" is 33.33 to two decimals); an unscaled side keeps its own.
        hundred = Fraction(100)
        plain_left = [t for t in left_toks if t[1] != "%"] if left_percent else []
        plain_right = [t for t in right_toks if t[1] != "%"] if right_percent else []
        for a, b, a_toks, b_toks in ((left * hundred, right, plain_left, right_toks),
                                     (left, right * hundred, left_toks, plain_right)):
            ok, why = compare_sides(a, b, a_toks, b_toks, approx, percent_labels=False)
            if ok:
                return True, why + " (reading % as a unit label)"
    if approx:
        for shown in (right, left):
            if isinstance(shown, Fraction) and shown.denominator == 1:
                if _close(left if shown is right else right, shown, Fraction(1, 2)):
                    return True, "≈: equal after rounding to an integer"
        if _close(left, right, 0.01 * max(abs(complex(left)), abs(complex(right)))):
            return True, "≈: within 1 %"
    return False, "values differ"


_TIMES_WORDS = frozenset(["of", "x", "X", "times"])


def _hundred_factor(tokens: list[Token]) -> bool:
    """Does a side convert to or from a percentage with a factor 100 ("(3/4)*100", "100%")?"""
    for i, t in enumerate(tokens):
        if t[0] == "num" and number_value(t[1]) == 100:
            before = tokens[i - 1][1] if i > 0 else None
            after = tokens[i + 1][1] if i + 1 < len(tokens) else None
            if after == "%" or "*" in (before, after) or before in _TIMES_WORDS or after in _TIMES_WORDS:
                return True
    return False


def _percent_of_a_quantity(tokens: list[Token]) -> bool:
    """Does a side take a percentage of a quantity (`10% of 50`, `20% * 50`, `$50 x 20%`)? Then
    its `%` is arithmetic, not a unit label. `100%` is the label-like factor of `3/21 * 100%`;
    dividing by a percentage (`$7500/75%`, "every 1% is $100") reads as a label too."""
    for i, t in enumerate(tokens):
        if t[1] != "%" or t[0] != "op" or i == 0:
            continue
        number = tokens[i - 1]
        if number[0] != "num" or number_value(number[1]) == 100:
            continue
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        if after is not None and (after[1] == "*" or after[1] in _TIMES_WORDS) and i + 2 < len(tokens) \
                and (tokens[i + 2][0] in ("num", "cur", "const", "fn") or tokens[i + 2][1] in _OPEN_BRACKETS):
            return True  # "10% of 50", "20% * 50"
        before = tokens[i - 2] if i >= 2 else None
        if before is not None and (before[1] == "*" or before[1] in _TIMES_WORDS):
            return True  # "$50 * 20%"
    return False


# -- finding claims in prose -----------------------------------------------------------------


def _can_start(t: Token) -> bool:
    kind, value = t[0], t[1]
    if kind in ("num", "cur", "fn", "const"):
        return True
    if kind == "op":
        return value in ("(", "[", "-", "+", "frac", "|", "{")
    return kind == "word" and len(value) == 1 and value not in _PROSE_LETTERS


def _is_quantity_end(t: Token | None) -> bool:
    return t is not None and (t[0] == "num" or (t[0] == "op" and t[1] in ("%", ")", "/")))


def _valid_start(toks: list[Token], i: int) -> bool:
    """Can an expression begin at toks[i]? Not in the middle of a longer one: "(1/2) 1956",
    "80 000", "D1", "A^2" and "hats + 24" do not start at the number."""
    if not _can_start(toks[i]):
        return False
    if i == 0:
        return True
    prev = toks[i - 1]
    kind, value = prev[0], prev[1]
    if kind == "other" or (kind == "op" and value in _STOP_OPS):
        if i > 1 and toks[i - 2][0] == "num" and toks[i][0] == "num":
            if value == "," and (not toks[i][2] or len(toks[i][1]) == 3):
                return False  # "16,0000", "14, 400": a broken thousands separator
            if value == ":" and (not toks[i][2] or prev[2]):
                return False  # "6:00": a clock time; "3 : 4", "6 : 2": a ratio or a division
        return True
    if kind == "word":
        if value in _OPERATOR_WORDS or value in ("x", "X"):
            return False
        if toks[i][0] in ("num", "const") and not toks[i][2]:
            return False  # "D1": an identifier, not a number
        if value.lower() in _INDEX_WORDS and toks[i][0] == "num" and i + 1 < len(toks) and toks[i + 1][1] == "-":
            return False  # "Step 4 - 10 + 12 = 22": a step's number and a dash, not 4 - 10
        return toks[i][1] not in ("+", "-")
    return False


# LaTeX commands after which a new expression starts ("x = 2 \\Rightarrow 3 + 4 = 7"); after any
# other unknown command ("\\bmod", "\\pm", "\\overline") the left side is only part of one.
_CONNECTIVE_COMMANDS = frozenset(
    "therefore because Rightarrow rightarrow Longrightarrow longrightarrow implies impliedby iff Leftrightarrow "
    "Longleftrightarrow to mapsto item newline hline quad qquad colon".split()
)


def _truncated(toks: list[Token], start: int) -> bool:
    """Is the left side we found only the end of a longer quantity? An arithmetic operator
    behind a few unit words ("9 cups + drank 1 cup = ...") or, behind a prose word, at most two
    tokens back after an operand ("$25 + her original $98 = $123", "6 sets x every 2 hours =
    12 hours"; a hyphen, `12-pound`, is part of a word), or an operator word right before it
    ("3 x the height of 12 inches = 36", "90 bulbs at $.50 = $45"), or a LaTeX command that is
    not a connective ("7 \\bmod 3 = 1", "\\overline{3}") or a decimal point ("0.(3)") right before it."""
    if start > 0 and toks[start - 1][0] == "other":
        value = toks[start - 1][1]
        if value.startswith("\\") and value[1:].isalpha() and value[1:] not in _CONNECTIVE_COMMANDS:
            return True
        if value == "." and start > 1 and toks[start - 2][0] == "num" and not toks[start - 1][2] \
                and not toks[start][2]:
            return True
    if start > 0 and (toks[start - 1][0] == "word" and (
            toks[start - 1][1] in _OPERATOR_WORDS or toks[start - 1][1] in _TRUNCATING_WORDS)
            or toks[start - 1][1] == "@"):  # "5 @ $2 = $10": @ is "at"
        return True
    i = start - 1
    steps = 0
    passed_prose = False  # a stop word behind us: an operator counts only after an operand
    while i >= 0 and steps < 4:
        kind, value = toks[i][0], toks[i][1]
        if kind == "op" and value in ("+", "-", "*", "/", "^"):
            if _is_hyphen(toks, i):
                kind = "word"  # "12-pound bags because 4 x 13 = 52": a hyphenated word
            elif not passed_prose:
                return True
            else:
                # "$25 + her original $98 = $123"; not "2 * x which is 2 * $2 = $4"
                return steps <= 2 and i > 0 and _is_operand_end(toks[i - 1])
        elif kind == "word" and value in _WALK_OPERATOR_WORDS and passed_prose and steps <= 2 \
                and _follows_quantity(toks, i):
            return True  # "6 sets x every 2 hours = 12 hours"
        if kind == "word" and value.lower() in STOP_WORDS:
            passed_prose = True
        if kind == "cur" or kind == "word" or (kind == "other" and value in ("'", "’", ".")):
            i -= 1
            steps += 1
            continue
        return False
    return False


def _is_operand_end(t: Token) -> bool:
    return t[0] in ("num", "cur", "word") or (t[0] == "op" and t[1] in (")", "%"))


def _is_hyphen(toks: list[Token], i: int) -> bool:
    """Is toks[i] the hyphen of a compound (`12-pound`, `two-point`, `second-born`)?"""
    return (toks[i][1] == "-" and not toks[i][2] and i + 1 < len(toks) and toks[i + 1][0] == "word"
            and not toks[i + 1][2])


def _follows_quantity(toks: list[Token], i: int) -> bool:
    """Does toks[i] follow a quantity, perhaps with one unit word between (`6 sets x`, `3 x`)?"""
    if i > 0 and _is_quantity_end(toks[i - 1]):
        return True
    return i > 1 and toks[i - 1][0] == "word" and _is_quantity_end(toks[i - 2])


def _left_starts(toks: list[Token], eq: int) -> list[int]:
    """Candidate first tokens of the expression ending before toks[eq], earliest first."""
    starts = []
    i = eq - 1
    floor = max(0, eq - _MAX_LEFT_TOKENS)
    while i >= floor:
        kind, value, _ = toks[i]
        if kind == "other" or (kind == "op" and value in _STOP_OPS):
            break
        if _joins_mixed_number(toks, i, eq):
            i -= 1  # "1 and 1/4": a mixed number
            continue
        if kind == "word" and (len(value) > 1 or value in _PROSE_LETTERS) and value not in _OPERATOR_WORDS:
            # A longer word belongs to the expression only as a unit after a quantity
            # ("24 clips", "5 square feet"); prose words end the expression.
            if value.lower() in STOP_WORDS or value in _PROSE_LETTERS and toks[i][2]:
                break
            j = i
            while j > floor and i - j < 1 and toks[j - 1][0] == "word" and len(toks[j - 1][1]) > 1 \
                    and toks[j - 1][1].lower() not in STOP_WORDS and toks[j - 1][1] not in _OPERATOR_WORDS:
                j -= 1
            if not _is_quantity_end(toks[j - 1] if j > 0 else None):
                break
            i = j - 1
            continue
        if _valid_start(toks, i):
            starts.append(i)
        i -= 1
    starts.reverse()
    return starts


def _joins_mixed_number(toks: list[Token], i: int, eq: int) -> bool:
    """Is toks[i] the "and" of a mixed number ("1 and 1/4") in a left side ending before toks[eq]?"""
    kind, value, _ = toks[i]
    return kind == "word" and value == "and" and i > 0 and toks[i - 1][0] == "num" and i + 2 < eq \
        and toks[i + 1][0] in ("num", "cur") and (toks[i + 2][1] == "/" or i + 3 < len(toks) and toks[i + 3][1] == "/")


def _mixed_number_and(toks: list[Token], eq: int) -> int | None:
    """The "and" that `_left_starts` reads as part of a mixed number in the left side of toks[eq]."""
    for i in range(eq - 1, max(0, eq - _MAX_LEFT_TOKENS) - 1, -1):
        kind, value, _ = toks[i]
        if kind == "other" or (kind == "op" and value in _STOP_OPS):
            return None
        if _joins_mixed_number(toks, i, eq):
            return i
    return None


def _mixed_number_and_after(toks: list[Token], eq: int) -> int | None:
    """The first "and" of a mixed number ("= 5 and 2/5") on the right side of toks[eq]."""
    for i in range(eq + 1, min(len(toks), eq + 1 + _MAX_LEFT_TOKENS)):
        kind, value, _ = toks[i]
        if kind == "other" or (kind == "op" and (value in _STOP_OPS or value in _CLAIM_RELATIONS)):
            return None
        if _joins_mixed_number(toks, i, len(toks)):
            return i
    return None


def _claim_text(toks: list[Token]) -> str:
    out = []
    for kind, value, space in toks:
        if value == "frac":
            value = "\\frac"
        out.append((" " if space and out else "") + value)
    return "".join(out)


def _has_letters(node: Node) -> bool:
    """Variables, or e / i, which in prose are variables far more often than constants."""
    stack = [node]
    while stack:
        n = stack.pop()
        tag = n[0]
        if tag == "sym" or (tag == "const" and n[1] in ("E", "I")):
            return True
        for child in n[1:]:
            if isinstance(child, tuple):
                stack.append(child)
            elif isinstance(child, list):
                stack.extend(c for _, c in child)
    return False


def _parse_left(toks: list[Token], starts: list[int], eq: int, limits: Limits,
                deadline: Deadline) -> tuple[Node | None, int]:
    """(left side, its first token) of the relation at toks[eq]: the first of `starts` whose
    tokens up to `eq` parse; (None, -1) when none does."""
    for start in starts:
        try:
            return parse_tokens(toks[start:eq], limits, deadline), start
        except LimitError:
            raise
        except ParseError:
            continue
    return None, -1


def _check_relation(toks: list[Token], eq: int, limits: Limits, deadline: Deadline,
                    approx_context: bool) -> Claim | None:
    """The claim around the relation token toks[eq], or None when there is none. A spaced
    parenthesis after a number of the right side is a product or a note ("= 36 (3 packs)",
    "= 64 (2)"), and an "and" before a fraction a mixed number or a clause break ("5 * 2 = 10 and
    1/2 of 10 = 5"): the claim is false only when it is false both ways."""
    claim = _check_relation_of(toks, eq, limits, deadline, approx_context)
    if claim is not None and claim.ok is False:
        note = _note_after_result(toks, eq)
        if note is not None:
            without = _check_relation_of(toks[:note], eq, limits, deadline, approx_context)
            if without is not None and without.ok is not False:
                return without
        # "5 * 2 = 10 and 1/2 of 10 = 5": the "and" may join two clauses, not a mixed number.
        before, after = _mixed_number_and(toks, eq), _mixed_number_and_after(toks, eq)
        for joined in (j for j in (before, after) if j is not None):
            split = [*toks[:joined], ("other", ";", True), *toks[joined + 1:]]
            other = _check_relation_of(split, eq, limits, deadline, approx_context)
            if other is None or other.ok is not False:
                return Claim(claim.source, claim.text, None, "false as a mixed number 'N and a/b', "
                                                             "not as two clauses: not checked")
        # "3 * 4 = 12 * 2 = 24": a running total written as a chain, the result carried on. Its
        # next link is checked on its own; this one only as far as the carried result.
        carried = _carried_result(toks, eq)
        if carried is not None:
            first = _check_relation_of(toks[:carried], eq, limits, deadline, approx_context)
            if first is not None and first.ok:
                return Claim(claim.source, claim.text, None, "a running total written as a chain: "
                                                             "true up to the result carried on, not checked")
    return claim


def _carried_result(toks: list[Token], eq: int) -> int | None:
    """The end of the first number of toks[eq]'s right side, when that side goes on with an
    operator and then another "=" ("3 * 4 = 12 * 2 = 24", "= $15 + $2 = $17"); else None."""
    i = eq + 1
    while i < len(toks) and toks[i][0] == "cur":
        i += 1
    if i + 1 >= len(toks) or toks[i][0] != "num" or toks[i + 1][0] != "op" or toks[i + 1][1] in _STOP_OPS:
        return None
    for kind, value, _ in toks[i + 1:]:
        if kind == "op" and value in _CLAIM_RELATIONS:
            return i + 1
        if kind == "other" or (kind == "op" and value in _STOP_OPS):
            return None
    return None


def _note_after_result(toks: list[Token], eq: int) -> int | None:
    """Where a spaced "(" right after a number opens, on the right side of toks[eq]."""
    for i in range(eq + 2, len(toks)):
        kind, value, space = toks[i]
        if kind == "op" and value in _STOP_OPS:
            return None
        if kind == "op" and value == "(" and space and toks[i - 1][0] == "num":
            return i
    return None


def _check_relation_of(toks: list[Token], eq: int, limits: Limits, deadline: Deadline,
                       approx_context: bool) -> Claim | None:
    starts = _left_starts(toks, eq) or _start_after_word_operator(toks, eq)
    if not starts:
        return None
    try:
        right, end = parse_prefix(toks, eq + 1, limits, deadline)
    except (ParseError, IndexError):
        return None
    if end == eq + 1 or (end < len(toks) and (toks[end][0] == "num" or toks[end][1].lower() in POWER_WORDS
                                              or (toks[end][1] == ":" and (not toks[end][2] or _ratio_at(toks, end))))):
        return None  # nothing, or cut short ("= $16 000", "= 8:20", "= 6 : 8", "= 5 squared")
    left, start = _parse_left(toks, starts, eq, limits, deadline)
    if left is None:
        return None
    approx = approx_context or toks[eq][1] == "≈"
    if start > 0 and toks[start - 1][0] == "word" and toks[start - 1][1].lower() in _READ_TRIGGERS:
        prose = _prose_operation(toks, start, limits, deadline)
        if prose is _UNSURE:
            if _is_lone_quantity(toks[start:eq]):
                return Claim("prose", _claim_text(toks[start:end]), None,
                             "prose arithmetic before the left side that is not read: not checked")
            # An expression after it ("4 years younger than 1/2*30 = 15"): true if it holds as
            # written, never false.
            claim = _check_relation_as_read(toks, eq, starts, start, end, left, right, approx, limits, deadline)
            if claim is not None and claim.ok is False:
                return Claim("prose", claim.text, None, "prose arithmetic before the left side that is not read: "
                                                        "not checked")
            return claim
        if prose is not None:
            return _check_prose_claim(toks, eq, start, end, left, right, prose, approx, limits, deadline)
    return _check_relation_as_read(toks, eq, starts, start, end, left, right, approx, limits, deadline)


def _ratio_at(toks: list[Token], i: int) -> bool:
    """Is the colon toks[i] spaced between two numbers, a ratio or a division ("6 : 8")?"""
    return 0 < i < len(toks) - 1 and toks[i - 1][0] == "num" and toks[i + 1][0] == "num" and toks[i + 1][2]


def _check_relation_as_read(toks: list[Token], eq: int, starts: list[int], start: int, end: int, left: Node,
                            right: Node, approx: bool, limits: Limits, deadline: Deadline) -> Claim | None:
    """_check_relation for a left side toks[start:eq] read as it stands."""
    right_toks = toks[eq + 1 : end]
    if _truncated(toks, start):
        return None
    left_toks = toks[start:eq]
    text = _claim_text(toks[start:end])
    if any(t[0] == "num" and _CLOCK_OR_ID.match(t[1]) for t in toks[start:end]):
        return None  # "0900 - 0130": clock times and codes, not arithmetic
    if _has_letters(left) or _has_letters(right):
        return None
    left_lone, right_lone = _is_lone_quantity(left_toks), _is_lone_quantity(right_toks)
    left_units, right_units = _units(left_toks), _units(right_toks)
    if left_units and right_units and not (left_units & right_units):
        return Claim("prose", text, None, "unit conversion, not checked")
    if left_lone and right_lone and left_units != right_units:
        return Claim("prose", text, None, "unit conversion, not checked")
    if left_lone and not right_lone and (left_units or start != starts[0] or
                                         (start > 0 and toks[start - 1][0] == "word")):
        # "Area of 1 bedroom = 11 * 11", "2 kg = 2 * 1000": a label or a conversion.
        return Claim("prose", text, None, "labelled quantity, not checked")
    if left_lone and start != starts[0]:
        return None
    if _mixes_units(left_toks) or _mixes_units(right_toks):
        return Claim("prose", text, None, "adds quantities in different units, not checked")
    try:
        left_values = _values_or_none(left, left_toks, limits, deadline)
        right_values = _values_or_none(right, right_toks, limits, deadline)
    except LimitError as err:
        return Claim("prose", text, None, f"refused: {err}")
    except (NotExact, ParseError, ArithmeticError, ValueError):
        return None
    if left_values is None or right_values is None:
        return _division_by_zero_claim("prose", text, left_values, right_values)
    ok, why = _compare_readings(left_values, right_values, left_toks, right_toks, approx)
    if ok:
        return Claim("prose", text, True, why)
    if _true_with_earlier_quantity(toks, start, eq, right_values, right_toks, limits, deadline):
        return Claim("prose", text, None, "false as read, true if its first number is a label "
                                          "('day 1') of an earlier quantity: not checked")
    if left_lone and right_lone and start > 0 and toks[start - 1][0] == "word" \
            and toks[start - 1][1].lower() not in _CLAUSE_WORDS:
        # "6 sets x every 2 hours = 12 hours": a lone quantity after prose words is usually
        # the end of arithmetic told in words, which we did not read.
        return Claim("prose", text, None, "a lone quantity after prose words: not checked")
    alarm = _false_alarm(toks, start, eq, end, left_values, right_values, left_toks, limits, deadline)
    if alarm:
        return Claim("prose", text, None, alarm)
    return Claim("prose", text, False, why)


def _values_or_none(node: Node, toks: list[Token], limits: Limits, deadline: Deadline):
    """`_side_values`, or None for a side that divides by zero."""
    try:
        return _side_values(node, toks, limits, deadline)
    except ZeroDivisionError:
        return None


def _division_by_zero_claim(source: str, text: str, left_values, right_values) -> Claim:
    """A side that divides by zero has no value: claimed equal to a number it is false
    (`6 / 0 = 0`); with both sides undefined there is nothing to compare."""
    if left_values is None and right_values is None:
        return Claim(source, text, None, "division by zero on both sides")
    return Claim(source, text, False, "division by zero: undefined, not equal to a number")


def _start_after_word_operator(toks: list[Token], eq: int) -> list[int]:
    """For a left side whose first number follows `of` / `times` ("half of 8 = 4", "three times
    4 = 12"), which `_left_starts` does not start at: the token after that word."""
    i = eq - 1
    floor = max(0, eq - _MAX_LEFT_TOKENS)
    while i > floor:
        kind, value = toks[i][0], toks[i][1]
        if kind == "other" or (kind == "op" and value in _STOP_OPS):
            return []
        if kind == "word" and value in ("of", "times"):
            return [i + 1] if i + 1 < eq and _can_start(toks[i + 1]) else []
        i -= 1
    return []


def _approximates_pi(exact: list[Token], approximate: list[Token]) -> bool:
    """π on one side, and on the other a value written for it (3.14..., 22/7) and no π."""
    if not any(t[0] == "const" and t[1] == "pi" for t in exact) or \
            any(t[0] == "const" and t[1] == "pi" for t in approximate):
        return False
    return any(t[0] == "num" and t[1].startswith("3.14") or
               (t[1] == "22" and i + 2 < len(approximate) and approximate[i + 1][1] == "/" and approximate[i + 2][1] == "7")
               for i, t in enumerate(approximate))


def _false_alarm(toks: list[Token], start: int, eq: int, end: int, left_values, right_values,
                 left_toks: list[Token], limits: Limits, deadline: Deadline) -> str | None:
    """Why a claim that reads false is still not a false claim, or None. Each reason is one that
    GSM8K's reference solutions use (benchmarks/data/gsm8k_false_steps.jsonl):

    - a whole quotient with a remainder: `100 stickers / 3 friends = 33 stickers for each
      friend, with 1 remaining`, `13 / 6 = 2 full cycles`;
    - a quantity counted in thousands: `losing 5 thousand dollars ... 5 * 3 = $15,000`;
    - a prose `a / b / c` whose `b / c` is a fraction: `14 / 1 / 4 = 14 * 4`;
    - a range label: `Weeks 1-2 = 96 - 70`;
    - π written out as 3.14 or 22/7 on the other side: `π × 5^2 = 3.14 × 25`;
    - a number word as a unit, whose value we do not read: `2 dozen + 6 = 30`.
    """
    if any(t[0] == "word" and t[1].lower() in _NUMBER_UNIT_WORDS for t in toks[start:end]):
        return "a number word used as a unit ('2 dozen'), not checked"
    right_toks = toks[eq + 1 : end]
    if _approximates_pi(left_toks, right_toks) or _approximates_pi(right_toks, left_toks):
        return "π replaced by an approximation (3.14, 22/7), not checked"
    left, right = left_values[0], right_values[0]
    if not (isinstance(left, Fraction) and isinstance(right, Fraction)):
        return None
    slashes = sum(1 for t in left_toks if t[1] == "/" and t[0] == "op")
    if slashes and left > 0 and left.denominator != 1 and right == left.numerator // left.denominator \
            and any(t[0] == "word" and t[1].lower() in _REMAINDER_WORDS for t in toks[eq + 1 : end + 12]):
        return "a whole quotient with a remainder, not checked"
    if slashes and left > 0 and left.denominator != 1 and right in (math.floor(left), math.ceil(left)) \
            and any(t[0] == "word" and t[1].lower() in _ROUNDING_WORDS for t in toks[eq + 1 : end + 12]):
        return "a quotient rounded up or down as it says, not checked"
    scales = {_SCALE_WORDS[t[1].lower()] for t in toks if t[0] == "word" and t[1].lower() in _SCALE_WORDS}
    if scales and left and right and any(left * k == right or right * k == left for k in scales):
        return "a quantity counted in thousands or millions, not checked"
    if slashes >= 2 and _true_with_grouped_fraction(left_toks, right_values, toks[eq + 1 : end], limits, deadline):
        return "a / b / c where b / c may be a fraction: ambiguous, not checked"
    if len(left_toks) >= 3 and start > 0 and _word_at(toks, start - 1) not in (None, *STOP_WORDS):
        low, dash, high = left_toks[:3]
        if (low[0] == "num" and low[1].isdigit() and dash[1] == "-" and not dash[2] and high[0] == "num"
                and not high[2] and high[1].isdigit() and int(low[1]) < int(high[1])):
            return "a range label ('Weeks 1-2'), not arithmetic"
    return None


def _true_with_grouped_fraction(left_toks: list[Token], right_values, right_toks: list[Token], limits: Limits,
                                deadline: Deadline) -> bool:
    """Does the claim hold when a spaced `b / c` after a slash is the fraction b/c (`14 / 1 / 4`)?"""
    grouped = list(left_toks)
    changed = False
    for i in range(1, len(grouped) - 2):
        a, b, c = grouped[i], grouped[i + 1], grouped[i + 2]
        if grouped[i - 1][1] == "/" and a[0] == "num" and b[1] == "/" and c[0] == "num" and a[1].isdigit() \
                and c[1].isdigit() and int(c[1]) != 0:
            grouped[i + 1] = (b[0], b[1], False)
            grouped[i + 2] = (c[0], c[1], False)
            grouped[i] = (a[0], a[1], True)
            changed = True
    if not changed:
        return False
    try:
        value = _value(parse_tokens(grouped, limits, deadline), limits, deadline)
    except (ParseError, NotExact, ArithmeticError, ValueError):
        return False
    return _compare_readings([value], right_values, grouped, right_toks)[0]


# -- prose arithmetic before a left side ------------------------------------------------------
#
# "twice 7 = 14", "the sum of 3 and 4 = 7", "5 less than 20 = 15", "20% more than 50 = 60": the
# left side we find starts at the last number, and the words before it change its value.
# `_prose_operation` reads the common phrases; a phrase it recognises but cannot read makes the
# claim unsure (None), never false.

_UNSURE = "unsure"


@dataclass(frozen=True)
class _ProseReading:
    """A phrase read before a left side B: the claimed value is apply(B); the phrase starts at
    toks[begin]; operand: the tokens of its other quantity (for units), if any."""

    apply: Any
    begin: int
    operand: list
    what: str


def _word_at(toks: list[Token], i: int) -> str | None:
    if 0 <= i < len(toks) and toks[i][0] == "word":
        return toks[i][1].lower()
    return None


def _count_at(toks: list[Token], i: int) -> int | None:
    """A count written at toks[i]: a number word (`a`, `two`) or a small integer."""
    w = _word_at(toks, i)
    if w is not None:
        return _COUNT_WORDS.get(w)
    if 0 <= i < len(toks) and toks[i][0] == "num" and toks[i][1].isdigit() and len(toks[i][1]) <= 4:
        return int(toks[i][1])
    return None


def _multiplier_at(toks: list[Token], k: int, fractions: bool, multiples: bool) -> tuple[Fraction, int] | None:
    """A multiplier phrase ending at toks[k]: (factor, its first token). multiples: `twice`,
    `three times`, `3 times`; fractions: `half`, `a third`, `two-thirds`, `3 quarters`."""
    w = _word_at(toks, k)
    if w is None:
        return None
    if multiples and w in _MULTIPLIER_WORDS:
        return Fraction(_MULTIPLIER_WORDS[w]), k
    if multiples and w == "times":
        count = _count_at(toks, k - 1)
        return (Fraction(count), k - 1) if count else None
    if fractions and w in _FRACTION_WORDS:
        j = k - 1
        hyphen = j >= 0 and toks[j][0] == "op" and toks[j][1] == "-"
        count = _count_at(toks, j - 1 if hyphen else j)
        plural = w.endswith("s")
        if count is None:
            return (Fraction(1, 2), k) if w == "half" and not hyphen else None
        if count == 0 or (count == 1) == plural:
            return None  # "one thirds", "two third"
        return Fraction(count, _FRACTION_WORDS[w]), (j - 1 if hyphen else j)
    return None


def _operand_before(toks: list[Token], end: int, limits: Limits, deadline: Deadline) -> tuple[Node, int] | None:
    """The quantity that ends at toks[end - 1] (`3`, `$5`, `25%`, `5 apples`): (tree, first
    token), the longest that parses; None if there is none."""
    i = end - 1
    floor = max(0, end - 16)
    candidates = []
    while i >= floor:
        kind, value = toks[i][0], toks[i][1]
        if kind in ("num", "cur") or (kind == "op" and value in _OPEN_BRACKETS):
            candidates.append(i)
        elif kind == "op" and value in ("%", ")", "]", "}", "+", "-", "*", "/", "^"):
            pass
        elif kind == "word" and (value in ("x", "X") or (
                len(value) > 1 and value.lower() not in STOP_WORDS and value not in _OPERATOR_WORDS
                and i > 0 and _is_quantity_end(toks[i - 1]))):
            pass
        else:
            break
        i -= 1
    for first in reversed(candidates):  # the longest first
        try:
            return parse_tokens(toks[first:end], limits, deadline), first
        except LimitError:
            raise
        except ParseError:
            continue
    return None


def _operand_value(toks: list[Token], end: int, limits: Limits, deadline: Deadline):
    """(value, first token, tokens) of the quantity ending at toks[end - 1], or None."""
    found = _operand_before(toks, end, limits, deadline)
    if found is None or _has_letters(found[0]):
        return None
    try:
        return _value(found[0], limits, deadline), found[1], toks[found[1] : end]
    except (NotExact, ArithmeticError, ValueError):
        return None


def _prose_operation(toks: list[Token], start: int, limits: Limits, deadline: Deadline):
    """The prose phrase just before a left side starting at toks[start]: a `_ProseReading`,
    `_UNSURE` for one we recognise but do not read, or None when there is none.

    Read: `twice / double / triple / thrice / quadruple B`; `half of B`, `a third of B`,
    `two-thirds of B`; `three times B`; `twice / N times / half as many as B`; `A more / less /
    fewer than B` and `p% more / less than B`; `the sum / total / product / difference / quotient
    / average of A and B` (also `of A, C and B`, `difference between A and B`), `the sum of B`.
    Unsure: `N times more than B` (ambiguous), other comparisons (`older than`), a phrase that is
    itself inside a longer one (`twice the sum of ...`, `... = 3 more than 4`)."""
    p = start - 1
    w = _word_at(toks, p)
    if w == "the" and _word_at(toks, p - 1) == "of":
        p, w = p - 1, "of"  # "half of the 36 students"
    after_relation_ok = True
    if w in _MULTIPLIER_WORDS:
        factor = Fraction(_MULTIPLIER_WORDS[w])
        reading = _ProseReading(lambda v: factor * v, p, [], w)
    elif w == "of":
        head = _word_at(toks, p - 1)
        if head in ("sum", "total"):
            reading = _ProseReading(lambda v: v, p - 1, [], f"the {head} of")
        else:
            found = _multiplier_at(toks, p - 1, fractions=True, multiples=False)
            if found is None:
                return None
            factor, begin = found
            reading = _ProseReading(lambda v: factor * v, begin, [], f"{factor} of")
    elif w == "times":
        found = _multiplier_at(toks, p, fractions=False, multiples=True)
        if found is None:
            return _UNSURE  # "several times 4"
        factor, begin = found
        reading = _ProseReading(lambda v: factor * v, begin, [], f"{factor} times")
    elif w == "as":
        # "twice as many as", "3 times as many pages as": one or two words between the two "as"
        first_as = next((k for k in (p - 2, p - 3) if _word_at(toks, k) == "as"), None)
        if first_as is None or any(_word_at(toks, k) in (None, "as") for k in range(first_as + 1, p)):
            return None
        found = _multiplier_at(toks, first_as - 1, fractions=True, multiples=True)
        if found is None:
            return None  # "as many as 5": the same number
        factor, begin = found
        reading = _ProseReading(lambda v: factor * v, begin, [], f"{factor} times as many as")
    elif w == "than":
        comparing, a_end = _word_at(toks, p - 1), p - 1
        if comparing not in _COMPARING_SIGNS and _word_at(toks, p - 2) in ("more", "less"):
            comparing, a_end = _word_at(toks, p - 2), p - 2  # "$5 more expensive than $20"
        if comparing not in _COMPARING_SIGNS or _word_at(toks, a_end - 1) in _PROSE_CHAIN_WORDS:
            return _UNSURE  # "better than", "3 times more than"
        operand = _operand_value(toks, a_end, limits, deadline)
        if operand is None:
            return _UNSURE  # "a lot more than 20"
        a, begin, a_toks = operand
        if _word_at(toks, begin - 1) in _LABEL_WORDS:
            return _UNSURE
        sign = _COMPARING_SIGNS[comparing]
        if a_toks[-1][1] == "%" and _is_lone_quantity(a_toks):
            reading = _ProseReading(lambda v: v * (1 + sign * a), begin, a_toks, f"% {comparing} than")
        else:
            reading = _ProseReading(lambda v: v + sign * a, begin, a_toks, f"{comparing} than")
        after_relation_ok = False
    elif w == "and":
        reading = _combining_reading(toks, p, limits, deadline)
        if reading is None or reading is _UNSURE:
            return reading
        after_relation_ok = False
    else:
        return None
    if _phrase_continues_before(toks, reading.begin, after_relation_ok):
        return _UNSURE
    return reading


def _combining_reading(toks: list[Token], p: int, limits: Limits, deadline: Deadline):
    """`the sum of A and B` and its kin, `and` at toks[p]; see `_prose_operation`."""
    terms = []
    end = p - 1 if p > 0 and toks[p - 1][1] == "," else p  # "3, 4, and 5"
    while len(terms) < 10:
        operand = _operand_value(toks, end, limits, deadline)
        if operand is None:
            return None if not terms else _UNSURE
        terms.append(operand)
        first = operand[1]
        if first > 0 and toks[first - 1][0] == "op" and toks[first - 1][1] == ",":
            end = first - 1
            continue
        break
    first = terms[-1][1]
    link, head = _word_at(toks, first - 1), _word_at(toks, first - 2)
    if link not in ("of", "between") or head not in _COMBINING_WORDS:
        return None
    if link == "between" and head != "difference":
        return None
    values = [t[0] for t in reversed(terms)]
    operand_toks = [tok for t in terms for tok in t[2]]
    if head in ("sum", "total"):
        total = sum(values)
        apply = lambda v: total + v  # noqa: E731
    elif head == "product":
        product = 1
        for value in values:
            product *= value
        apply = lambda v: product * v  # noqa: E731
    elif head in ("average", "mean"):
        total, n = sum(values), len(values) + 1
        apply = lambda v: (total + v) / n  # noqa: E731
    elif len(values) > 1:
        return _UNSURE  # the difference of three numbers
    elif head == "difference":
        apply = lambda v: abs(values[0] - v)  # noqa: E731
    else:  # quotient
        apply = lambda v: values[0] / v  # noqa: E731
    return _ProseReading(apply, first - 2, operand_toks, f"the {head} {link}")


def _phrase_continues_before(toks: list[Token], begin: int, after_relation_ok: bool) -> bool:
    """Is a prose phrase starting at toks[begin] part of a longer one ("twice the sum of 3 and
    4", "5 + 3 more than 4"), or (unless after_relation_ok) does its first quantity end another
    claim ("2 + 1 = 3 more than 1 = 4")?"""
    j = begin - 1
    if _word_at(toks, j) in ("the", "a", "an"):
        j -= 1
    if j < 0:
        return False
    kind, value = toks[j][0], toks[j][1]
    if kind == "op" and value in ("+", "-", "*", "/", "^", "%"):
        return True
    if kind == "op" and value in _CLAIM_RELATIONS:
        return not after_relation_ok
    if kind == "word" and value.lower() in _PROSE_CHAIN_WORDS:
        return True
    return _truncated(toks, j + 1)


def _check_prose_claim(toks: list[Token], eq: int, start: int, end: int, left: Node, right: Node,
                       prose: _ProseReading, approx: bool, limits: Limits, deadline: Deadline) -> Claim | None:
    """A claim whose left side B follows a prose phrase read by `_prose_operation`. With B one
    quantity the reading decides (`twice 7 = 15` is false); with B an expression the phrase may
    or may not already be spelled out in it (`double 6 x 2 = 12`), so it is true when either
    reading holds and unchecked otherwise."""
    text = _claim_text(toks[prose.begin : end])
    left_toks, right_toks = toks[start:eq], toks[eq + 1 : end]
    if any(t[0] == "num" and _CLOCK_OR_ID.match(t[1]) for t in toks[prose.begin : end]):
        return None
    if _has_letters(left) or _has_letters(right):
        return None
    b_units, a_units, right_units = _units(left_toks), _units(prose.operand), _units(right_toks)
    if b_units and a_units and not _share_a_unit(b_units, a_units):
        return Claim("prose", text, None, "combines quantities in different units, not checked")
    left_units = b_units | a_units
    if left_units and right_units and not (left_units & right_units):
        return Claim("prose", text, None, "unit conversion, not checked")
    if _mixes_units(left_toks) or _mixes_units(right_toks):
        return Claim("prose", text, None, "adds quantities in different units, not checked")
    try:
        values = _side_values(left, left_toks, limits, deadline)
        right_values = _side_values(right, right_toks, limits, deadline)
        read_values = [prose.apply(v) for v in values]
    except LimitError as err:
        return Claim("prose", text, None, f"refused: {err}")
    except (NotExact, ParseError, ArithmeticError, ValueError, TypeError):
        return Claim("prose", text, None, "prose arithmetic not evaluated")
    ok, why = _compare_readings(read_values, right_values, [], right_toks, approx)
    if ok:
        return Claim("prose", text, True, f"{why} (reading '{prose.what}')")
    if not _is_lone_quantity(left_toks):
        if _compare_readings(values, right_values, left_toks, right_toks, approx)[0]:
            return Claim("prose", text, True, f"exact, the arithmetic of '{prose.what}' spelled out")
        return Claim("prose", text, None, f"'{prose.what}' before an expression: scope unclear, not checked")
    alarm = _false_alarm(toks, prose.begin, eq, end, read_values, right_values, [], limits, deadline)
    if alarm:
        return Claim("prose", text, None, alarm)
    return Claim("prose", text, False, f"{why} (reading '{prose.what}')")


def _mixes_units(toks: list[Token]) -> bool:
    """Does a side add or subtract quantities in different units (`4 pounds - 6 ounces`)?
    Such a sum needs a conversion we do not know, so its value is not the written one."""
    if not any(t[1] in ("+", "-") and t[0] == "op" for t in toks):
        return False  # one term
    term_units: list[frozenset[str]] = []
    depth = 0
    term_start = 0
    for i, t in enumerate(toks + [("op", "+", False)]):
        if t[0] != "op":
            continue
        if t[1] in _OPEN_BRACKETS:
            depth += 1
        elif t[1] in _CLOSE_BRACKETS:
            depth -= 1
        elif t[1] in ("+", "-") and depth == 0 and i > term_start:
            units = _units(toks[term_start:i])
            if units:
                term_units.append(units)
            term_start = i + 1
    return any(not _share_a_unit(a, b) for a in term_units for b in term_units)


def _share_a_unit(a: frozenset[str], b: frozenset[str]) -> bool:
    # Prefixes cover plurals and abbreviations: "sandwiche(s)" / "sandwich", "min" / "minute".
    return any(x.startswith(y) or y.startswith(x) for x in a for y in b)


def _true_with_earlier_quantity(toks: list[Token], start: int, eq: int, right_values, right_toks: list[Token],
                                limits: Limits, deadline: Deadline) -> bool:
    """For a false claim whose left side starts at a number right after a word: is it true
    when that number is a label (`10 pages per day on day 1 * 2 = 20`) and the quantity is
    the last number before it in the same phrase (only words between)?"""
    if toks[start][0] != "num" or start == 0 or toks[start - 1][0] != "word" or start + 1 >= eq:
        return False
    i = start - 1
    while i >= max(0, start - 8) and toks[i][0] == "word":
        i -= 1
    if i < 0 or toks[i][0] != "num" or start - i < 2:
        return False
    try:
        other = parse_tokens([toks[i]] + toks[start + 1 : eq], limits, deadline)
        value = _value(other, limits, deadline)
    except (ParseError, NotExact, ArithmeticError, ValueError):
        return False
    return _compare_readings([value], right_values, toks[start + 1 : eq], right_toks)[0]


def _check_annotation(body: str, limits: Limits, deadline: Deadline) -> Claim:
    text = f"<<{body}>>"
    sides = body.split("=")
    if len(sides) == 2:
        plain = evaluate_arithmetic(sides[0], limits)
        if plain is not None and plain == evaluate_arithmetic(sides[1], limits):
            return Claim("annotation", text, True, "exact")
    toks = tokenize(body)
    eqs = [i for i, t in enumerate(toks) if t[0] == "op" and t[1] == "="]
    if len(eqs) != 1:
        return Claim("annotation", text, None, "annotation without exactly one '='")
    eq = eqs[0]
    try:
        left = parse_tokens(toks[:eq], limits, deadline)
        right = parse_tokens(toks[eq + 1 :], limits, deadline)
        if free_symbols(left) or free_symbols(right):
            return Claim("annotation", text, None, "annotation with variables")
        left_values = _values_or_none(left, toks[:eq], limits, deadline)
        right_values = _values_or_none(right, toks[eq + 1 :], limits, deadline)
    except (ParseError, NotExact, ArithmeticError, ValueError) as err:
        return Claim("annotation", text, None, f"not parsed: {err}")
    if left_values is None or right_values is None:
        return _division_by_zero_claim("annotation", text, left_values, right_values)
    ok, why = _compare_readings(left_values, right_values, toks[:eq], toks[eq + 1 :])
    return Claim("annotation", text, ok, why)


# -- fast path: prose whose every claim is plain arithmetic that holds exactly -----------------
#
# Most prose equations (GSM8K: about nine in ten steps) are plain: "Natalia sold 48/2 = 24
# clips", `a op b op c = d`. `_plain_prose_holds` recognises them with one compiled regex over
# the text and evaluates them with ints and Fractions (the same digit and size limits), without
# tokenizing or parsing the step. It only ever confirms: when every relation in the prose is
# such a claim and each holds exactly, the prose needs no full reading; anything else (a false
# or rounded claim, a unit word on the left, an operator before the left side, a chain, `%`,
# `≈`, ...) is read in full by `_check_relation`, the one place where prose can be judged False.
# Calculator annotations are checked once either way (`_check_annotation` has its own plain
# shortcut).

_PLAIN_OPERAND = rf"\$?(?:{PLAIN_NUMBER})"
_PLAIN_CLAIM = re.compile(
    rf"(?<!\S)(?P<left>{_PLAIN_OPERAND}(?:\s*[-+*/×÷xX]\s*{_PLAIN_OPERAND})+)\s*=\s*\$?(?P<right>{PLAIN_NUMBER})"
    r"(?![\w%(/^!]|[.,:]\d)"
)
_PLAIN_NUMBER_AT = re.compile(PLAIN_NUMBER)
# Where a right side may end with its value unchanged: the end, or punctuation ending it.
_TAIL_END = re.compile(r"\s*(?:[.,;:?](?!\d)|$)")
_TAIL_WORD = re.compile(r"\s+([^\W\d_]+)")
_LAST_WORD = re.compile(r"([^\W\d_]+)\s*$")
_BEHIND_TOKEN = re.compile(r"[^\W\d_]+|\d|\S")
_COMPOUND_HYPHEN = re.compile(r"(?<=\S)-(?=[^\W\d_])")  # "12-pound": a word, not a minus (`_is_hyphen`)
_LEADING_ZERO = re.compile(r"(?<![\d.,])0\d")
_ARITHMETIC_CHARS = frozenset("+-*/^×÷−–")
_PASSABLE_CHARS = frozenset("$'’.")
# Words that change the value next to a number: never taken as units by the fast path.
_WORDS_THAT_ARE_MATH = frozenset(["plus", "minus", "times", "of", "divided", "multiplied", "by",
                                  "and", "pi", "inf", "infinity", "infty", "sqrt"]) | FUNCTIONS | GREEK_WORDS \
    | _PROSE_TRIGGERS


def _operator_behind(before: str) -> bool:
    """Is there an arithmetic operator behind the last few words before a left side ("9 cups +
    drank 1 + 1 = 2")? Then the quantity started earlier; the same walk as `_truncated`, one
    step longer, over characters instead of tokens."""
    steps = 0
    passed_prose = False
    for chunk in reversed(_BEHIND_TOKEN.findall(_COMPOUND_HYPHEN.sub(" ", before[-120:]))):
        if chunk in _ARITHMETIC_CHARS or chunk in _WALK_OPERATOR_WORDS:
            # Past a prose word `_truncated` stops after two tokens; characters never count more
            # steps than tokens (a hyphen is a token), so this bails whenever it would.
            return not passed_prose or steps <= 2
        if steps >= 5:
            return False
        if chunk[0].isalpha() or chunk in _PASSABLE_CHARS:
            passed_prose = passed_prose or chunk.lower() in STOP_WORDS
            steps += 1
            continue
        return False
    return False


def _plain_prose_holds(text: str, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Is every claim in prose (annotations removed) a plain-arithmetic one that holds exactly?
    True for prose without relations. Never raises."""
    if "≈" in text or "approx" in text:
        return False
    relations = text.count("=")
    if relations == 0:
        return True
    for m in _PLAIN_CLAIM.finditer(text):
        if not _plain_prose_claim_holds(text, m, limits):
            return False
        relations -= 1
    return relations == 0


def _plain_prose_claim_holds(text: str, m: re.Match, limits: Limits) -> bool:
    left = m.group("left")
    if "$" in left and text[m.start("right") - 1] != "$":
        return False  # "$3 x 4 = 12 apples": different units, the full reading decides
    if _LEADING_ZERO.search(m.group()):
        return False  # "0900 - 0130": clock times and codes
    start = m.start()
    before = text[:start].rstrip()
    if before:
        last = before[-1]
        if last.isalpha():
            word = _LAST_WORD.search(before, max(0, len(before) - 64)).group(1)
            if (len(word) == 1 or word in _OPERATOR_WORDS or word in _TRUNCATING_WORDS
                    or word.lower() in _WORDS_THAT_ARE_MATH):
                return False
        elif last not in ",.:;!?\"'":
            return False
        elif last == "," and before[:-1].rstrip()[-1:].isdigit() and not left.startswith("$") \
                and len(_PLAIN_NUMBER_AT.match(left).group()) == 3:
            return False  # "14, 400": a broken thousands separator
        if _operator_behind(before):
            return False
    if not _right_side_ends(text, m.end()):
        return False
    value = evaluate_plain_chain(left, limits)
    if value is None:
        return False
    try:
        return value == number_value(m.group("right"), limits)
    except LimitError:
        return False


def _right_side_ends(text: str, pos: int) -> bool:
    """Does a right side's number at text[:pos] end its expression with its value unchanged?
    Yes when only unit words follow up to the end or punctuation, or up to a prose word (the
    full reader stops at such a word: "= 30 more jumps than ..."); "and" right after the
    number may start a mixed number ("3 and 1/4")."""
    first = True
    while _TAIL_END.match(text, pos) is None:
        m = _TAIL_WORD.match(text, pos)
        if m is None:
            return False
        word = m.group(1)
        if word.lower() in STOP_WORDS and (len(word) > 1 or word in _PROSE_LETTERS):
            return not (first and word == "and")
        if len(word) == 1 or word.lower() in _WORDS_THAT_ARE_MATH:
            return False
        pos, first = m.end(), False
    return True


def find_claims(text: str, limits: Limits = DEFAULT_LIMITS) -> list[Claim]:
    """All claims in a step with their verdicts (see module docstring). Never raises."""
    try:
        return _find_claims(text, limits)
    except Exception as err:  # a verdict must never crash the caller
        return [Claim("prose", "", None, f"refused: {err}")]


def _find_claims(text: str, limits: Limits, confirm_plain_prose: bool = False) -> list[Claim]:
    """find_claims; with confirm_plain_prose, prose that `_plain_prose_holds` confirms is not
    read in full and stands as one true claim (check_step needs verdicts, not claim texts).
    A recipe-style `2-1/2` is 2 - 1/2 or 2½: a step false as read is read again with the mixed
    numbers, and those claims stand if none of them is false. An apostrophe between digits
    before three more is a thousands separator (121'599)."""
    if isinstance(text, str) and "'" in text:
        text = _APOSTROPHE_THOUSANDS.sub(",", text)  # Swiss 121'599 is 121,599
    claims = _find_claims_as_read(text, limits, confirm_plain_prose)
    if any(claim.ok is False for claim in claims) and isinstance(text, str) and "/" in text:
        spaced = space_hyphen_mixed_numbers(text)
        if spaced != text:
            mixed = _find_claims_as_read(spaced, limits, confirm_plain_prose)
            if not any(claim.ok is False for claim in mixed):
                return mixed
    return claims


_APOSTROPHE_THOUSANDS = re.compile(r"(?<=\d)'(?=\d{3}(?!\d))")


def _find_claims_as_read(text: str, limits: Limits, confirm_plain_prose: bool) -> list[Claim]:
    if not isinstance(text, str) or len(text) > MAX_STEP_CHARS:
        return [Claim("prose", "", None, f"step longer than {MAX_STEP_CHARS} characters")] if isinstance(text, str) else []
    if "=" not in text and "≈" not in text and "approx" not in text:
        return []
    text = _LINE_BETWEEN_OPERANDS.sub(";\n", _LIST_MARKER.sub(r"\1; ", strip_invisible(text)))
    deadline = Deadline(limits.time_budget)
    claims: list[Claim] = []
    annotated = "<<" in text
    if annotated:
        for m in _ANNOTATION.finditer(text):
            claims.append(_check_annotation(m.group(1), limits, deadline))
    if confirm_plain_prose:
        # Annotations removed without a space for the plain scanner: "= $<<2*5=10>>10" reads
        # "= $10", the same value and units as the full reading of "= $ 10".
        joined = _ANNOTATION.sub("", text) if annotated else text
        if _plain_prose_holds(joined, limits):
            if "=" in joined:
                claims.append(Claim("prose", "", True, "plain arithmetic, exact"))
            return claims
    toks = tokenize(_ANNOTATION.sub(" ", text) if annotated else text)
    if "percent" in text:
        toks = [("op", "%", t[2]) if t[0] == "word" and t[1].lower() == "percent" else t for t in toks]
    for i, t in enumerate(toks):
        if t[0] == "op" and t[1] in _CLAIM_RELATIONS:
            deadline.check()
            approx = i > 0 and toks[i - 1][0] == "word" and toks[i - 1][1].lower() in _APPROX_WORDS
            claim = _check_relation(toks, i, limits, deadline, approx)
            if claim is not None:
                claims.append(claim)
    return claims


def check_step(text: str) -> bool | None:
    """True if every claim in the step is true, False if any is false, None if none is checkable.

    >>> check_step("Natalia sold 48/2 = <<48/2=24>>24 clips in May.")
    True
    >>> check_step("1/4 = 15")
    False
    """
    try:
        claims = _find_claims(text, DEFAULT_LIMITS, confirm_plain_prose=True)
    except Exception:  # as find_claims: a refused step has nothing checkable
        return None
    verdict = None
    for claim in claims:
        if claim.ok is False:
            return False
        if claim.ok:
            verdict = True
    return verdict


# -- algebra between steps -------------------------------------------------------------------

_DELIMITERS = re.compile(r"\\[\[\]()]|\$\$")


def _main_math(text: str, limits: Limits, deadline: Deadline) -> tuple[str, Any] | None:
    """The mathematical content of an algebra step.

    Returns ("eq", [(left, right), ...]) for equations (several for `x = 2 or x = -2`),
    ("expr", tree) for an expression (a step starting with `=` continues the previous one:
    ("cont", tree)), or None.
    """
    text = _DELIMITERS.sub(" ", text)
    if len(text) > limits.max_chars:
        return None
    toks = tokenize(text)
    if not toks:
        return None
    if toks[0][0] == "op" and toks[0][1] == "=":
        node, end = parse_prefix(toks, 1, limits, deadline)
        return ("cont", node) if end > 1 else None
    eqs = [i for i, t in enumerate(toks) if t[0] == "op" and t[1] == "="]
    if not eqs:
        start = max((i + 1 for i, t in enumerate(toks) if t[0] == "other" and t[1] == ":"), default=0)
        try:
            return ("expr", parse_tokens(toks[start:], limits, deadline))
        except ParseError:
            return None
    equations = []
    i = 0
    while i < len(eqs):
        eq = eqs[i]
        left, _ = _parse_left(toks, _left_starts(toks, eq), eq, limits, deadline)
        right, end = parse_prefix(toks, eq + 1, limits, deadline)
        # A chain a = b = c states the equation a = c.
        while i + 1 < len(eqs) and eqs[i + 1] == end:
            i += 1
            right, end = parse_prefix(toks, end + 1, limits, deadline)
        if left is not None and end > eq + 1:
            equations.append((left, right))
        i += 1
    return ("eq", equations) if equations else None


def _poly_parts(left: Node, right: Node, limits: Limits, deadline: Deadline):
    import sympy

    expr = to_sympy(left, limits, deadline) - to_sympy(right, limits, deadline)
    numerator = sympy.fraction(sympy.together(expr))[0]
    symbols = sorted(numerator.free_symbols, key=lambda s: s.name)
    if not symbols:
        return None
    poly = sympy.Poly(numerator, *symbols)
    if poly.total_degree() > 12:
        raise LimitError("polynomial degree above 12")
    return poly


def _same_solutions(prev_eqs, step_eqs, limits: Limits, deadline: Deadline) -> bool | None:
    """Does the step's equation follow from the previous one? True when it keeps the solution
    set or is implied by it (`x = 3` -> `x^2 = 9`); False only when, in the same one unknown,
    it neither follows nor narrows the set (`2x + 3 = 7` -> `2x = 10`); None otherwise: a new
    unknown (`x = 4` -> `y = 8`), a second equation of a system, or a chosen root
    (`x^2 = 4` -> `x = 2`) is not a rewrite the checker can refute."""
    import sympy

    try:
        p1 = _product_poly(prev_eqs, limits, deadline)
        p2 = _product_poly(step_eqs, limits, deadline)
    except (sympy.PolynomialError, sympy.GeneratorsNeeded, ValueError, TypeError, NotImplementedError):
        return None
    if p1 is None or p2 is None or set(p1.gens) != set(p2.gens):
        return None
    gens = sorted(p1.gens, key=lambda s: s.name)
    p1, p2 = sympy.Poly(p1.as_expr(), *gens).sqf_part(), sympy.Poly(p2.as_expr(), *gens).sqf_part()
    if (p1 * p2.LC() - p2 * p1.LC()).is_zero:
        return True
    if len(gens) != 1 or p1.degree() > 8 or p2.degree() > 8:
        return None
    # Over the reals: x^3 = 8 -> x = 2 keeps the (real) solution set.
    before, after = set(p1.real_roots()), set(p2.real_roots())
    if not before:
        return None
    if before <= after:
        return True
    return None if after and after <= before else False


def _product_poly(equations, limits: Limits, deadline: Deadline):
    """One polynomial whose zero set is the union of the equations' solution sets
    (`x = 2 or x = -2` -> (x-2)(x+2)); a single equation is just its own polynomial."""
    product = None
    for left, right in equations:
        poly = _poly_parts(left, right, limits, deadline)
        if poly is None:
            return None
        product = poly if product is None else product.as_expr() * poly.as_expr()
    import sympy

    if product is not None and not isinstance(product, sympy.Poly):
        product = sympy.Poly(product, *sorted(product.free_symbols, key=lambda s: s.name))
    return product


def _without_unit_letter(equation):
    """`h = 4 h` is the value 4 in the unit h (hours), not the equation h = 4h."""
    left, right = equation
    if left[0] == "sym" and right[0] == "mul" and len(right[1]) == 2:
        (times_a, number), (times_b, unit) = right[1]
        if times_a and times_b and number[0] == "num" and unit == left:
            return left, number
    return equation


def _assigns_a_value(equation) -> bool:
    """`x = 4` or `4 = x`: one side a lone variable, the other free of variables."""
    left, right = equation
    return any(side[0] == "sym" and not free_symbols(other) for side, other in ((left, right), (right, left)))


_ELLIPSES = ("...", "…", "\\cdots", "\\ldots", "\\dots")


def _starts_a_case(before: list, after: list, limits: Limits, deadline: Deadline) -> bool:
    """Whether `after` (equations) may be a new case or instance of `before` rather than a
    rewrite of it, so that a lost solution is no error: `before` holds several equations (one
    branch of "x - 2 = 3 or x - 2 = -3", a system), or is an identity (a formula such as
    (x + 1)^2 = x^2 + 2x + 1, then one value), or `after` keeps its left side with another
    value (x - 2 = 3 -> x - 2 = -3, the other case of |x - 2| = 3)."""
    if len(before) > 1:
        return True
    left, right = before[-1]
    if functions_equal(left, right, limits, deadline):
        return True
    return any(new_left == left and new_right != right for new_left, new_right in after)


def check_transition(prev: str, step: str, limits: Limits = DEFAULT_LIMITS) -> bool | None:
    """Does `step` follow from `prev` algebraically?

    Equation -> equation (`_same_solutions`): True when the solution set is kept or implied
    (`2x + 3 = 7` -> `2x = 4`; `x^2 = 4` -> `x = 2 or x = -2`; `x = 3` -> `x^2 = 9`), False when
    in the same one unknown it is lost (-> `2x = 10`), None for a new unknown or a second
    equation (`x = 4` -> `y = 8`) and for a new value after a plain assignment (`Try n = 4` ->
    `Try n = 5`, a running total `t = 18` -> `t = 18 + 3 = 21`). Expression -> expression: the
    value must stay equal (`(x+1)^2` -> `x^2 + 2x + 1`), except that a labelled one
    (`Derivative: 2x + 2`) is a new quantity (None); a step starting with `=` continues the previous right-hand side. None
    when either step has no algebra we can compare.
    Never raises.
    """
    try:
        import sympy  # noqa: F401  -- imported before the clock starts: the first import is slow

        if any(mark in text for text in (prev, step) for mark in _ELLIPSES):
            return None  # "1 + 2 + ... + n" is no expression we read (it came out as n)
        deadline = Deadline(limits.time_budget)
        a = _main_math(prev, limits, deadline)
        b = _main_math(step, limits, deadline)
        if a is None or b is None:
            return None
        if b[0] == "eq":
            b = ("eq", [_without_unit_letter(equation) for equation in b[1]])
        if a[0] == "eq" and b[0] == "eq":
            symbols_a = set().union(*(free_symbols(l) | free_symbols(r) for l, r in a[1]))
            symbols_b = set().union(*(free_symbols(l) | free_symbols(r) for l, r in b[1]))
            if not symbols_a or not symbols_b:
                return None
            follows = _same_solutions(a[1][-1:], b[1], limits, deadline)
            # `n = 4` has no algebra to rewrite: a later value of n (a new case, a trial, a
            # running total: "If x = 9, then 2x = 18." -> "If x = 11, ...") is a new statement.
            if follows is False and (any(_assigns_a_value(equation) for equation in a[1])
                                     or _starts_a_case(a[1], b[1], limits, deadline)):
                return None
            return follows
        if b[0] == "cont":
            target = a[1][-1][1] if a[0] == "eq" else a[1]
            return functions_equal(target, b[1], limits, deadline)
        if a[0] in ("expr", "cont") and b[0] == "expr":
            if not (free_symbols(a[1]) or free_symbols(b[1])):
                return None
            equal = functions_equal(a[1], b[1], limits, deadline)
            # A labelled expression ("Derivative: 2x + 2") is a new quantity, not a rewrite.
            return None if equal is False and ":" in step else equal
        return None
    except Exception:  # a verdict must never crash the caller
        return None


# -- whole solutions -------------------------------------------------------------------------


def verify_solution(problem_or_question: Any, steps: list[str], reference: str | None = None) -> SolutionVerdict:
    """Per-step verdicts for a solution, and the index of its first wrong step.

    Each step is checked with `check_step`; consecutive algebra steps with `check_transition`;
    the final answer (extracted from the last steps) against `reference` (or the Problem's
    `answer`) with `answers_equivalent`. Never raises.
    """
    from verifiers.answers import answers_equivalent, extract_answer

    if reference is None:
        reference = getattr(problem_or_question, "answer", None)
    steps = [s if isinstance(s, str) else str(s) for s in (steps or [])]
    verdicts: list[StepVerdict] = []
    all_claims: list[list[Claim]] = []
    previous_algebra: str | None = None
    for step in steps:
        claims = find_claims(step)
        all_claims.append(claims)
        bad = [c for c in claims if c.ok is False]
        if bad:
            verdicts.append(StepVerdict(False, f"false claim: {bad[0].text} ({bad[0].reason})"))
            previous_algebra = None
            continue
        ok: bool | None = True if any(c.ok for c in claims) else None
        reason = "all claims true" if ok else "nothing checkable"
        if previous_algebra is not None:
            follows = check_transition(previous_algebra, step)
            if follows is False:
                verdicts.append(StepVerdict(False, "does not follow from the previous algebra step"))
                previous_algebra = step
                continue
            if follows:
                ok, reason = True, "follows from the previous algebra step"
        if _has_variables(step):
            previous_algebra = step
        verdicts.append(StepVerdict(ok, reason))
    answer = None
    answer_correct = None
    if steps:
        answer = extract_answer(steps[-1], fallback_last_number=False) or extract_answer("\n".join(steps))
        if reference is not None and answer is not None:
            answer_correct = answers_equivalent(str(reference), answer)
            if not answer_correct:
                verdicts[-1] = StepVerdict(False, f"final answer {answer!r} differs from reference {reference!r}")
            elif verdicts[-1].ok is None:
                verdicts[-1] = StepVerdict(True, "final answer matches the reference")
    first_wrong = next((i for i, v in enumerate(verdicts) if v.ok is False), -1)
    return SolutionVerdict(verdicts, first_wrong, answer, answer_correct, all_claims)


def _has_variables(step: str) -> bool:
    try:
        math = _main_math(step, DEFAULT_LIMITS, Deadline(DEFAULT_LIMITS.time_budget))
    except Exception:  # unparseable algebra is simply not algebra we can follow
        return False
    if math is None:
        return False
    if math[0] == "eq":
        return any(free_symbols(l) | free_symbols(r) for l, r in math[1])
    return bool(free_symbols(math[1]))
