"""GSM8K corruptions: wrong solutions with an exact first wrong step, made from reference text.

The synthetic task (`tasks.math.synthetic`) re-derives a corrupted solution from the
structure it generated. GSM8K has no such structure, only text whose computations carry
calculator annotations::

    Natalia sold 48/2 = <<48/2=24>>24 clips in May.
    Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.
    #### 72

`corrupt_gsm8k` changes one computation of a reference solution (taken as correct) and
replays the rest: every later computation that uses a changed value is re-computed, in its
annotation and in its visible expression, the number written after it and any other
mention of the value follow, and so does the final answer. A computation is an annotation
or a plain equation written in prose without one (`so 42 minutes + 10 minutes = 52
minutes`). The kinds are the synthetic task's word-problem kinds:

* `arithmetic_slip`: one annotation's result is off by 1 or 2 (or 10, for whole results
  of 20 and more; 1 or 2 units of the last decimal for a decimal under 10), shown with the
  reference's decimals (0.82 -> 0.80, not 0.8), in the annotation and the text
  (`48/2 = <<48/2=26>>26`); later steps are true given 26. The slipped step is the only
  false one. Slips strike annotations only, which a checker always reads.
* `wrong_number`: one operand that comes from the question (a number of the question that
  is not an earlier result) becomes another number of the question, or failing that a
  neighbour (v ± 1), in the annotation and in the visible expression
  (`48/3 = <<48/3=16>>16`); every computation stays true, the step uses the wrong number.
* `wrong_operation`: one binary operator changes (`48*2 = <<48*2=96>>96`), in the annotation
  and in the visible expression; every computation stays true.
* `dropped_step`: one step that computes something is removed. Each value it computed is
  replaced, from there on, by its *stale* value: the first operand of its computation that
  an earlier computation produced (the amount before the step), else its first operand.
  `first_wrong` is the index, in the corrupted list, of the first step whose text differs
  from the reference's, i.e. the first step that uses a value of the dropped step. When the
  next step uses it (the common case) that is the index where the dropped step was; when a
  later one does, the steps in between are reference steps, true and in order, and stay
  labelled True. So the label is exact either way.

The synthetic `wrong_algebra_move` has no GSM8K counterpart (no equations are solved).

For `arithmetic_slip`, `wrong_number` and `wrong_operation`, `first_wrong` is the index of
the changed step (the steps before it are the reference's). Every corruption changes the
final answer; a draw that would not, or that would make an amount negative (or fractional
where the reference's is whole), divide by zero, or give a non-terminating decimal (or one
of more than 4 places), is re-drawn. A step the replay cannot follow is never changed (a
draw that would change it is re-drawn): one with an unparseable annotation, an equation
that is not plain (a chain `a = b = c`, a fraction on the right, `50% x 20`), or a visible
expression that does not write the annotation's numbers and operators in order
(`4 x 2 = <<8=8>>8`). A kind that fits nowhere in a solution gives None. Sites and
details are tried in an order drawn from `rng`, every one until one works, so the result
is deterministic for a seed, and a kind "applies" exactly when some site works.

Value tracking is by value: a number equal to the result of the latest computation that
produced that value is read as that result. A number of the question that happens to
equal a changed result therefore changes too; that only adds later errors, after the
first wrong step, so the labels stay exact.

`gsm8k_corruption_records` turns problems into a PRM data set (the reference plus k
corruptions each), and `holdout_split` holds out problems for evaluation with a fixed seed.
References are taken as correct: 34 of the 7,473 GSM8K train references have a step that
`verifiers.check_step` reads as false; filter them with it where that matters (this layer
does not import verifiers).
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tasks.math.prompts import ANSWER_PREFIX, answer_step
from tasks.math.steps import split_gsm8k
from tasks.math.synthetic import CorruptedSolution
from tasks.math.types import Problem

GSM8K_ERROR_KINDS: tuple[str, ...] = ("arithmetic_slip", "wrong_operation", "wrong_number", "dropped_step")
DEFAULT_HOLDOUT = 500

_ANNOTATION = re.compile(r"<<([^<>]*)>>")
# A number in prose: 1,000 and 12.5 and .5; not the digits inside a longer number
_NUMBER = re.compile(r"(?<![\d.])(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?!\d)|(?<![\d.])\.\d+(?!\d)")
_EXPR_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|([-+*/()]))")
# "= <<", "= $<<": the text before it is the visible side of the annotation
_VISIBLE_EQUALS = re.compile(r"=\s*\$?\s*$")
_SHOWN_RESULT = re.compile(r"\s*\$?\s*(" + _NUMBER.pattern + ")")
_RELATION = re.compile(r"=|≈")
_VISIBLE_OPS = {"+": "+", "-": "-−–", "*": "*xX×", "/": "/÷"}  # the first is how a new one is written
_OPERATOR_WORDS = {"x": "*", "times": "*", "plus": "+", "minus": "-"}
_WORD = re.compile(r"[A-Za-z][A-Za-z']*")
# what may not follow the result of a prose equation: an operator, "=", a fraction's "/"
_CONTINUES = re.compile(r"\s*%?\s*(?:[-+*/×÷=≈−–]|[xX](?![A-Za-z])|times\b)")
_OPERATIONS = ("+", "-", "*", "/")
_SLIPS = (-2, -1, 1, 2)
_MAX_DECIMALS = 4


@dataclass(frozen=True)
class GSM8KCorruption(CorruptedSolution):
    """A `CorruptedSolution` of a GSM8K problem; `detail` says what changed, e.g.
    "step 0: 48/2=24 -> result 26", "step 1: 48+24=72: + -> *", "step 0 dropped" (step
    indices of the reference)."""

    detail: str = ""


class _Infeasible(Exception):
    """A drawn corruption breaks a rule (negative amount, same answer, uncomputable step)."""


# --------------------------------------------------------------------------- problems


def gsm8k_problem(row: Problem | dict[str, Any], index: int = 0, prefix: str = "gsm8k") -> Problem:
    """A `Problem` from a GSM8K row: a raw `{"question", "answer"}` row, a `load_gsm8k`
    record (`prompt`, `completions` with annotations, `reference`), or a `Problem` (returned
    as is). Its steps are the solution's lines (annotations kept) and "The answer is X".
    The id is the row's "id" if it has one, else f"{prefix}-{index}"."""
    if isinstance(row, Problem):
        return row
    if "question" in row and "answer" in row:
        lines, answer = split_gsm8k(row["answer"])
        if answer is None:
            raise ValueError(f"row {index}: the GSM8K answer has no '#### X' line")
        question = row["question"]
    elif "prompt" in row and "completions" in row:
        lines, answer = list(row["completions"]), row.get("reference")
        if lines and lines[-1].startswith(ANSWER_PREFIX):
            answer = answer or lines[-1][len(ANSWER_PREFIX):]
            lines = lines[:-1]
        if not answer:
            raise ValueError(f"row {index}: a step record needs a 'reference' answer")
        question = row["prompt"]
    else:
        raise ValueError(f"row {index}: expected GSM8K fields 'question'/'answer' or 'prompt'/'completions'")
    return Problem(
        id=str(row.get("id") or f"{prefix}-{index}"),
        question=question,
        answer=str(answer),
        steps=tuple(lines) + (answer_step(str(answer)),),
        source="gsm8k",
    )


def gsm8k_problems(rows: Iterable[Problem | dict[str, Any]], prefix: str = "gsm8k") -> list[Problem]:
    """`gsm8k_problem` of every row, ids f"{prefix}-{index}" where a row has none."""
    return [gsm8k_problem(row, index, prefix) for index, row in enumerate(rows)]


def holdout_split(problems: Sequence[Any], n_eval: int = DEFAULT_HOLDOUT, seed: int = 0) -> tuple[list, list]:
    """(train, held_out): `n_eval` problems drawn with `seed` are held out for evaluation.

    The draw depends only on (len(problems), n_eval, seed), and both parts keep the input
    order, so the same file and seed always hold out the same problems. Split problems
    before corrupting them, so that no corruption of a held-out problem reaches training.
    """
    if not 0 <= n_eval <= len(problems):
        raise ValueError(f"n_eval must be in 0..{len(problems)}, got {n_eval}")
    held = set(random.Random(f"gsm8k-holdout/{seed}").sample(range(len(problems)), n_eval))
    train = [problem for index, problem in enumerate(problems) if index not in held]
    return train, [problem for index, problem in enumerate(problems) if index in held]


# --------------------------------------------------------------------------- parsing


@dataclass
class _Calc:
    """One computation of a step: a calculator annotation, or an equation written in prose
    without one ("so 42 minutes + 10 minutes = 52 minutes", `prose`), whose tokens and
    result are then the prose itself."""

    span: tuple[int, int]  # of "<<...>>" (of the equation, for prose) in the step text
    tokens: list[tuple[str, int, int]] | None  # (token, start, end) in the step text; None: unparseable
    result: Fraction | None
    result_span: tuple[int, int] | None  # of the stated result
    exact: bool = False  # the expression evaluates to the stated result
    visible: list[tuple[int, int]] | None = None  # the visible expression, token by token, when aligned
    shown: tuple[int, int] | None = None  # the number written right after ">>", when it equals the result
    prose: bool = False


@dataclass
class _Step:
    text: str
    calcs: list[_Calc]
    numbers: list[tuple[int, int, Fraction]]  # prose numbers (outside annotations)
    opaque: bool  # has an equation in prose the replay cannot recompute, or an unparseable annotation
    results: list[Fraction] = field(default_factory=list)


def _value(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def _parse_expression(body: str, offset: int) -> tuple[list[tuple[str, int, int]], Fraction, tuple[int, int]] | None:
    if body.count("=") != 1:
        return None
    expression, result_text = body.split("=")
    tokens, position = [], 0
    while position < len(expression):
        match = _EXPR_TOKEN.match(expression, position)
        if match is None:
            if expression[position:].strip():
                return None
            break
        group = 1 if match.group(1) else 2
        tokens.append((match.group(group), offset + match.start(group), offset + match.end(group)))
        position = match.end()
    stripped = result_text.strip()
    if not tokens or not re.fullmatch(r"-?(?:\d+(?:\.\d+)?|\.\d+)", stripped):
        return None
    start = offset + len(expression) + 1 + result_text.index(stripped)
    return tokens, Fraction(stripped), (start, start + len(stripped))


def _parse_step(text: str) -> _Step:
    calcs: list[_Calc] = []
    opaque = False
    prose_start = 0
    prose_pieces: list[tuple[int, int]] = []
    for match in _ANNOTATION.finditer(text):
        prose_pieces.append((prose_start, match.start()))
        parsed = _parse_expression(match.group(1), match.start(1))
        if parsed is None:
            calcs.append(_Calc(match.span(), None, None, None))
            opaque = True
        else:
            tokens, result, result_span = parsed
            calc = _Calc(match.span(), tokens, result, result_span)
            try:
                calc.exact = _evaluate([token for token, _, _ in tokens]) == result
            except (_Infeasible, ZeroDivisionError):
                calc.exact = False
            calcs.append(calc)
        prose_start = match.end()
    prose_pieces.append((prose_start, len(text)))
    for index, calc in enumerate(calcs):
        if calc.tokens is None:
            continue
        previous_end = calcs[index - 1].span[1] if index else 0
        before = text[previous_end:calc.span[0]]
        equals = _VISIBLE_EQUALS.search(before)
        if equals:
            calc.visible = _align(text, previous_end, previous_end + equals.start(), calc.tokens)
            # a visible side the replay cannot follow ("4 x 2 = <<8=8>>8") would go stale
            opaque = opaque or calc.visible is None
        next_start = calcs[index + 1].span[0] if index + 1 < len(calcs) else len(text)
        shown = _SHOWN_RESULT.match(text, calc.span[1], next_start)
        if shown and _value(shown.group(1)) == calc.result:
            calc.shown = shown.span(1)
    claims: list[_Calc] = []
    for begin, end in prose_pieces:
        left = begin
        for relation in _RELATION.finditer(text, begin, end):
            after = text[relation.end():end]
            if end < len(text) and text.startswith("<<", end) and re.fullmatch(r"\s*\$?\s*", after):
                continue  # the visible side of the annotation that follows
            claim = _prose_claim(text, left, relation.start(), end) if relation.group() == "=" else None
            if claim is None:
                opaque = True  # an equation the replay cannot recompute
                break
            claims.append(claim)
            left = claim.result_span[1]
    covered = [claim.span for claim in claims]
    numbers = [
        (match.start(), match.end(), _value(match.group()))
        for begin, end in prose_pieces
        for match in _NUMBER.finditer(text, begin, end)
        if not any(low <= match.start() < high for low, high in covered)
    ]
    calcs = sorted(calcs + claims, key=lambda calc: calc.span[0])
    step = _Step(text, calcs, numbers, opaque)
    step.results = [calc.result for calc in calcs if calc.result is not None]
    return step


def _prose_claim(text: str, begin: int, equals: int, end: int) -> _Calc | None:
    """The equation `left = result` written in prose with its "=" at `equals` (left side in
    text[begin:equals], result up to `end`), as a computation, or None where it is not a
    plain true one (no operator, a chain "a = b = c", a fraction or expression on the right,
    a false or unparseable left side)."""
    visible = _visible_tokens(text, begin, equals)
    collected: list[tuple[str, int, int]] = []
    index = len(visible) - 1
    while index >= 0:
        if _skippable(text, visible, index):
            index -= 1
            continue
        kind, start, stop = visible[index]
        if kind not in ("number", "op", "paren"):
            break
        if collected and _ends_operand(text, visible[index]) and _starts_operand(text, collected[-1]):
            break  # "3 kids and 7 - 2": the 3 is not part of the expression
        collected.append(visible[index])
        index -= 1
    collected.reverse()
    while collected and not _starts_operand(text, collected[0]):
        collected.pop(0)
    if not any(kind == "op" for kind, _, _ in collected):
        return None
    tokens = []
    for kind, start, stop in collected:
        written = text[start:stop]
        token = _format(_value(written)) if kind == "number" else _op_of(written) if kind == "op" else written
        tokens.append((token, start, stop))
    if _percent_product(text, [(start, stop) for _, start, stop in tokens], tokens):
        return None
    right = _SHOWN_RESULT.match(text, equals + 1, end)
    if right is None or _CONTINUES.match(text, right.end(1), end):
        return None
    result = _value(right.group(1))
    try:
        if _evaluate([token for token, _, _ in tokens]) != result:
            return None
    except (_Infeasible, ZeroDivisionError):
        return None
    spans = [(start, stop) for _, start, stop in tokens]
    return _Calc((spans[0][0], right.end(1)), tokens, result, right.span(1), exact=True,
                 visible=spans, shown=right.span(1), prose=True)


def _ends_operand(text: str, token: tuple[str, int, int]) -> bool:
    return token[0] == "number" or text[token[1]] == ")"


def _starts_operand(text: str, token: tuple[str, int, int]) -> bool:
    return token[0] == "number" or text[token[1]] == "("


def _visible_tokens(text: str, begin: int, end: int) -> list[tuple[str, int, int]]:
    """text[begin:end] as (kind, start, end) tokens: number, op, paren, word, other; spaces,
    $ and % left out."""
    visible: list[tuple[str, int, int]] = []
    position = begin
    while position < end:
        number = _NUMBER.match(text, position, end)
        word = _WORD.match(text, position, end)
        if number:
            stuck = _WORD.match(text, number.end(), end)  # "24k", "100m", "2nd": not a plain number
            plain = stuck is None or stuck.group().lower() in _OPERATOR_WORDS
            visible.append(("number" if plain else "other", number.start(), number.end()))
            position = number.end()
        elif word:
            kind = "op" if word.group().lower() in _OPERATOR_WORDS else "word"
            visible.append((kind, word.start(), word.end()))
            position = word.end()
        elif text[position] in " \t$%":
            position += 1
        else:
            kind = "op" if _op_of(text[position]) else "other"
            kind = "paren" if text[position] in "()" else kind
            visible.append((kind, position, position + 1))
            position += 1
    return visible


def _align(text: str, begin: int, end: int, tokens: list[tuple[str, int, int]]) -> list[tuple[int, int]] | None:
    """Spans, one per annotation token, of the visible expression that ends at `end`, or
    None. The visible expression writes the annotation's numbers (by value) and operators
    (+, - or a dash, * x × or "times", / ÷) in the same order; between them it may have
    spaces, $, %, unit words and "/unit" ("3 cans / 4 cans per trip", "$2/cup"), nothing
    else, and no number or operator may continue it to the left."""
    visible = _visible_tokens(text, begin, end)
    spans: list[tuple[int, int]] = []
    cursor = len(visible) - 1
    for token, _, _ in reversed(tokens):
        while cursor >= 0 and _skippable(text, visible, cursor):
            cursor -= 1
        if cursor < 0:
            return None
        kind, start, stop = visible[cursor]
        written = text[start:stop]
        if _is_number(token):
            if kind != "number" or _value(written) != Fraction(token):
                return None
        elif token in _VISIBLE_OPS:
            if kind != "op" or _op_of(written) != token:
                return None
        elif kind != "paren" or written != token:
            return None
        spans.append((start, stop))
        cursor -= 1
    if cursor >= 0 and visible[cursor][0] in ("number", "op") and not _skippable(text, visible, cursor):
        return None  # the visible expression is longer than the annotation
    spans.reverse()
    return None if _percent_product(text, spans, tokens) else spans


def _percent_product(text: str, spans: list[tuple[int, int]], tokens: list[tuple[str, int, int]]) -> bool:
    """A visible expression with a % that multiplies or divides: "50% x 20" reads as 0.5 x 20
    to a checker while the annotation says 50*20, so it cannot be followed."""
    return _has_percent(text, spans) and any(token in ("*", "/") for token, _, _ in tokens)


def _has_percent(text: str, spans: list[tuple[int, int]]) -> bool:
    return "%" in text[spans[0][0]:spans[-1][1] + 1]


def _skippable(text: str, visible: list[tuple[str, int, int]], index: int) -> bool:
    """A unit word, or the "/" of a "/unit", between the tokens of a visible expression."""
    kind, start, _ = visible[index]
    if kind == "word":
        return True
    following = visible[index + 1][0] if index + 1 < len(visible) else None
    return kind == "op" and text[start] == "/" and following == "word"


def _op_of(written: str) -> str | None:
    written = written.lower()
    if written in _OPERATOR_WORDS:
        return _OPERATOR_WORDS[written]
    return next((op for op, forms in _VISIBLE_OPS.items() if written in forms), None)


def _parse_problem(problem: Problem) -> tuple[list[_Step], Fraction | None]:
    if problem.steps is None:
        raise ValueError(f"problem {problem.id!r} has no reference steps")
    lines = list(problem.steps)
    if lines and lines[-1].startswith(ANSWER_PREFIX):
        lines = lines[:-1]
    try:
        answer = _value(problem.answer.strip())
    except (ValueError, ZeroDivisionError):
        answer = None
    return [_parse_step(line) for line in lines], answer


# --------------------------------------------------------------------------- arithmetic


def _evaluate(tokens: list[str]) -> Fraction:
    """Exact value of an annotation expression: numbers, + - * /, parentheses, unary minus."""
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise _Infeasible("expression ends early")
        position += 1
        return tokens[position - 1]

    def expression() -> Fraction:
        value = term()
        while peek() in ("+", "-"):
            value = value + term() if take() == "+" else value - term()
        return value

    def term() -> Fraction:
        value = unary()
        while peek() in ("*", "/"):
            if take() == "*":
                value *= unary()
            else:
                divisor = unary()
                if divisor == 0:
                    raise _Infeasible("division by zero")
                value /= divisor
        return value

    def unary() -> Fraction:
        if peek() in ("-", "+"):
            return -unary() if take() == "-" else unary()
        token = take()
        if token == "(":
            value = expression()
            if take() != ")":
                raise _Infeasible("unbalanced parentheses")
            return value
        if token[0].isdigit() or token[0] == ".":
            return Fraction(token)
        raise _Infeasible(f"unexpected {token!r}")

    value = expression()
    if position != len(tokens):
        raise _Infeasible("trailing tokens")
    return value


def _decimals(value: Fraction) -> int | None:
    """Digits after the point of an exact decimal, None if the decimal does not terminate."""
    denominator, twos, fives = value.denominator, 0, 0
    while denominator % 2 == 0:
        denominator, twos = denominator // 2, twos + 1
    while denominator % 5 == 0:
        denominator, fives = denominator // 5, fives + 1
    return max(twos, fives) if denominator == 1 else None


def _format(value: Fraction, like: str = "") -> str:
    """`value` as GSM8K writes it: 26, 0.25, 1,250 (commas when `like` has them). It shows
    at least as many decimals as `like` when it is not whole (0.80 for a 0.82: the shown
    precision is part of what a step claims), and always when `like` pads with zeros (0.60
    for a 0.50, 26.00 for a 24.00)."""
    places = _decimals(value)
    if places is None:
        raise _Infeasible("non-terminating decimal")
    written = like.replace(",", "").lstrip("$")
    if "." in written:
        shown = len(written.split(".")[1])
        if value.denominator > 1 or written.endswith("0"):
            places = max(places, shown)
    text = f"{Decimal(value.numerator) / Decimal(value.denominator):,.{places}f}"
    return text if "," in like else text.replace(",", "")


def _check_amount(old: Fraction, new: Fraction) -> None:
    """A re-computed amount keeps the reference's kind: whole if it was, not negative if it
    was not, an exact decimal of at most _MAX_DECIMALS places."""
    places = _decimals(new)
    if places is None or places > _MAX_DECIMALS:
        raise _Infeasible("not a short exact decimal")
    if old.denominator == 1 and new.denominator != 1:
        raise _Infeasible("a whole amount became fractional")
    if old >= 0 > new:
        raise _Infeasible("an amount became negative")


def _is_number(token: str) -> bool:
    return token[0].isdigit() or token[0] == "."


# --------------------------------------------------------------------------- replay


@dataclass(frozen=True)
class _Fault:
    """kind at step `step`, annotation `calc`, expression token `token`; `detail` is the
    slipped result, the wrong number or the wrong operator."""

    kind: str
    step: int
    calc: int = 0
    token: int = 0
    detail: Any = None


def _rewrite(step: _Step, mapping: dict[Fraction, Fraction], fault: _Fault | None, multiply: str) -> str:
    """The step's text with `mapping` (old value -> new value) applied, annotations that
    use a changed value re-computed, and `fault` (in this step) made. Updates `mapping`."""
    edits: dict[tuple[int, int], str] = {}
    overrides: dict[tuple[int, int], str] = {}
    if fault is not None and fault.kind in ("wrong_number", "wrong_operation"):
        span = step.calcs[fault.calc].visible[fault.token]
        if fault.kind == "wrong_number":
            overrides[span] = _format(fault.detail, step.text[span[0]:span[1]])
        else:
            spaced = step.text[span[0] - 1:span[0]].isspace() and step.text[span[1]:span[1] + 1].isspace()
            overrides[span] = (multiply if spaced else "*") if fault.detail == "*" else _VISIBLE_OPS[fault.detail][0]
    events = [(start, 0, (start, end, value)) for start, end, value in step.numbers]
    events += [(calc.span[0], 1, index) for index, calc in enumerate(step.calcs)]
    pending: list[tuple[int, int, Fraction]] = []  # prose numbers since the last annotation, unchanged
    for position, is_calc, item in sorted(events):
        if not is_calc:
            start, end, value = item
            if (start, end) in overrides:
                continue
            if value in mapping:
                edits[(start, end)] = _format(mapping[value], step.text[start:end])
            else:
                pending.append(item)
            continue
        calc = step.calcs[item]
        at_fault = fault is not None and fault.calc == item
        if calc.tokens is None:
            body = step.text[calc.span[0]:calc.span[1]]
            if any(_value(match.group()) in mapping for match in _NUMBER.finditer(body)):
                raise _Infeasible("an unparseable annotation uses a changed value")
            continue
        tokens = [token for token, _, _ in calc.tokens]
        written: dict[tuple[int, int], str] = {}
        for index, (token, start, end) in enumerate(calc.tokens):
            if at_fault and index == fault.token and fault.kind == "wrong_operation":
                tokens[index] = written[(start, end)] = fault.detail
                continue
            if at_fault and index == fault.token and fault.kind == "wrong_number":
                new = fault.detail
            elif _is_number(token) and Fraction(token) in mapping:
                new = mapping[Fraction(token)]
            else:
                continue
            tokens[index] = _format(new)
            written[(start, end)] = _format(new, step.text[start:end])
        if at_fault and fault.kind == "arithmetic_slip":
            result = fault.detail
        elif written:
            result = _evaluate(tokens)
            _check_amount(calc.result, result)
        else:
            result = calc.result
        edits.update(written)
        if result != calc.result:
            edits[calc.result_span] = _format(result, step.text[calc.result_span[0]:calc.result_span[1]])
            mapping[calc.result] = result
            # the step may state its result before computing it: "There are 72 boys because 120 x .6 = 72"
            operands = set(calc.visible or ())
            for start, end, value in pending:
                if value == calc.result and (start, end) not in operands:
                    edits[(start, end)] = _format(result, step.text[start:end])
        else:
            mapping.pop(calc.result, None)
        pending = []
    edits.update(overrides)
    text = step.text
    for (start, end), replacement in sorted(edits.items(), reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def _replay(steps: list[_Step], answer: Fraction, fault: _Fault, multiply: str) -> tuple[list[str], int, Fraction]:
    """(corrupted reasoning steps, first wrong index, wrong answer), or _Infeasible."""
    mapping: dict[Fraction, Fraction] = {}
    out: list[str] = [step.text for step in steps[: fault.step]]
    first_wrong = None
    if fault.kind == "dropped_step":
        dropped = steps[fault.step]
        earlier = {value for step in steps[: fault.step] for value in step.results}
        for calc in dropped.calcs:
            if calc.tokens is None:
                raise _Infeasible("the dropped step has an unparseable annotation")
            operands = [Fraction(token) for token, _, _ in calc.tokens if _is_number(token)]
            if not operands:
                raise _Infeasible("nothing to fall back to")
            stale = next((value for value in operands if value in earlier), operands[0])
            stale = mapping.get(stale, stale)
            if stale != calc.result:
                mapping[calc.result] = stale
            earlier.add(calc.result)
        later = steps[fault.step + 1:]
    else:
        later = steps[fault.step:]
    for offset, step in enumerate(later):
        at_fault = fault.kind != "dropped_step" and offset == 0
        text = _rewrite(step, mapping, fault if at_fault else None, multiply)
        if text != step.text:
            if step.opaque and not (at_fault and fault.kind == "arithmetic_slip"):
                raise _Infeasible("a step with an equation the replay cannot recompute would change")
            if first_wrong is None:
                first_wrong = len(out)
        elif at_fault:
            raise _Infeasible("the fault left the step unchanged")
        out.append(text)
    new_answer = mapping.get(answer, answer)
    if first_wrong is None or new_answer == answer:
        raise _Infeasible("the final answer would not change")
    return out, first_wrong, new_answer


# --------------------------------------------------------------------------- corruption


def _sites(steps: list[_Step], question_numbers: set[Fraction], kind: str) -> list[tuple[int, int, int]]:
    """(step, annotation, token) where `kind` can strike; token 0 for slips and drops."""
    sites = []
    earlier: set[Fraction] = set()
    for s, step in enumerate(steps):
        if kind == "dropped_step":
            if step.calcs and s + 1 < len(steps) and all(calc.tokens is not None for calc in step.calcs):
                sites.append((s, 0, 0))
            continue
        for c, calc in enumerate(step.calcs):
            if calc.tokens is not None and calc.exact and calc.shown is not None:
                if kind == "arithmetic_slip":
                    if not calc.prose:  # a checker always reads an annotation; prose it may not parse
                        sites.append((s, c, 0))
                elif calc.visible is not None and not step.opaque:
                    for t, (token, _, _) in enumerate(calc.tokens):
                        if kind == "wrong_number" and _is_number(token):
                            value = Fraction(token)
                            if value in question_numbers and value not in earlier:
                                sites.append((s, c, t))
                        elif kind == "wrong_operation" and token in _OPERATIONS:
                            previous = calc.tokens[t - 1][0] if t else None
                            if previous is not None and (_is_number(previous) or previous == ")"):
                                sites.append((s, c, t))
            if calc.result is not None:
                earlier.add(calc.result)
    return sites


def _details(steps: list[_Step], question_numbers: set[Fraction], kind: str, site: tuple[int, int, int],
             rng: random.Random) -> list[Any]:
    """The candidate details of a fault at `site`, in the order to try them."""
    if kind == "dropped_step":
        return [None]
    s, c, t = site
    calc = steps[s].calcs[c]
    if kind == "arithmetic_slip":
        result = calc.result
        unit = Fraction(1) if result.denominator == 1 or abs(result) >= 10 else Fraction(1, 10 ** _decimals(result))
        deltas = list(_SLIPS) + ([-10, 10] if abs(result) >= 20 and result.denominator == 1 else [])
        candidates = [result + delta * unit for delta in deltas]
        candidates = [value for value in candidates if not (result > 0 >= value) and not (result >= 0 > value)]
        rng.shuffle(candidates)
        return candidates
    token = calc.tokens[t][0]
    if kind == "wrong_operation":
        # with a % in sight only + and - keep the visible side and the annotation in step
        allowed = ("+", "-") if calc.visible and _has_percent(steps[s].text, calc.visible) else _OPERATIONS
        others = [op for op in allowed if op != token]
        rng.shuffle(others)
        return others
    value = Fraction(token)
    others = sorted(question_numbers - {value, Fraction(0)})
    nearby = [near for near in (value - 1, value + 1) if near > 0 and near not in others]
    rng.shuffle(others)
    rng.shuffle(nearby)
    return others + nearby


def _rng(rng: random.Random | int | None, problem: Problem) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    return random.Random(zlib.crc32(problem.id.encode()) if rng is None else rng)


def corrupt_gsm8k(
    problem: Problem, kind: str | None = None, rng: random.Random | int | None = None
) -> GSM8KCorruption | None:
    """A wrong solution to a GSM8K `problem` (see `gsm8k_problem`) with a known first wrong
    step, or None when `kind` fits nowhere in its reference solution.

    `kind` is one of `GSM8K_ERROR_KINDS` (None: the first, in an order drawn from `rng`,
    that fits). Steps before `first_wrong` equal the reference's (less the dropped one for
    `dropped_step`), every later computation follows from the wrong value, and the final
    answer always differs from the reference. The returned steps end with "The answer is X".
    `rng` is a `random.Random`, a seed, or None (a seed derived from the problem id), as for
    the synthetic `corrupt`; unlike it, a kind that does not apply gives None, not an error
    (most GSM8K solutions miss some kind). Raises ValueError for an unknown kind or a
    problem without reference steps.
    """
    if kind is not None and kind not in GSM8K_ERROR_KINDS:
        raise ValueError(f"unknown GSM8K error kind {kind!r}; choose one of {GSM8K_ERROR_KINDS}")
    rng = _rng(rng, problem)
    steps, answer = _parse_problem(problem)
    if answer is None or not steps:
        return None
    question_numbers = {_value(match.group()) for match in _NUMBER.finditer(problem.question)}
    multiply = "x" if re.search(r"\d\s*[xX]\s*\$?\d", "\n".join(step.text for step in steps)) else "*"
    kinds = [kind] if kind else rng.sample(GSM8K_ERROR_KINDS, len(GSM8K_ERROR_KINDS))
    for candidate in kinds:
        sites = _sites(steps, question_numbers, candidate)
        rng.shuffle(sites)
        for site in sites:
            for detail in _details(steps, question_numbers, candidate, site, rng):
                fault = _Fault(candidate, site[0], site[1], site[2], detail)
                try:
                    wrong, first_wrong, new_answer = _replay(steps, answer, fault, multiply)
                    answer_text = _format(new_answer, problem.answer.strip())
                except (_Infeasible, ZeroDivisionError):
                    continue
                return GSM8KCorruption(
                    steps=wrong + [answer_step(answer_text)],
                    first_wrong=first_wrong,
                    kind=candidate,
                    answer=answer_text,
                    detail=_describe(steps, fault),
                )
    return None


def _describe(steps: list[_Step], fault: _Fault) -> str:
    step = steps[fault.step]
    if fault.kind == "dropped_step":
        return f"step {fault.step} dropped"
    calc = step.calcs[fault.calc]
    body = step.text[calc.span[0]:calc.span[1]] if calc.prose else step.text[calc.span[0] + 2:calc.span[1] - 2]
    if fault.kind == "arithmetic_slip":
        return f"step {fault.step}: {body} -> result {_format(fault.detail)}"
    token = calc.tokens[fault.token][0]
    new = _format(fault.detail) if fault.kind == "wrong_number" else fault.detail
    return f"step {fault.step}: {body}: {token} -> {new}"


def applicable_kinds(problem: Problem) -> tuple[str, ...]:
    """The kinds `corrupt_gsm8k` can apply to `problem` (the search tries every site, so
    this does not depend on the seed)."""
    return tuple(kind for kind in GSM8K_ERROR_KINDS if corrupt_gsm8k(problem, kind, rng=0) is not None)


# --------------------------------------------------------------------------- records


def _record(problem: Problem, steps: list[str], first_wrong: int, kind: str, answer: str) -> dict[str, Any]:
    return {
        "id": problem.id,
        "prompt": problem.question,
        "completions": steps,
        "labels": [first_wrong < 0 or position < first_wrong for position in range(len(steps))],
        "reference": problem.answer,
        "answer": answer,
        "first_wrong": first_wrong,
        "kind": kind,
    }


def gsm8k_corruption_records(
    problems: Iterable[Problem | dict[str, Any]],
    k: int = 3,
    seed: int = 0,
    kinds: Sequence[str] = GSM8K_ERROR_KINDS,
    include_reference: bool = True,
) -> list[dict[str, Any]]:
    """A PRM data set: per problem its reference solution (all labels True) and up to `k`
    distinct corruptions.

    `problems` are `Problem`s or GSM8K rows (`gsm8k_problem`). The corruptions of one
    problem cycle through `kinds` (in an order drawn per problem), skipping kinds that do
    not apply, so a problem gets different kinds before it gets a kind twice; fewer than
    `k` when the problem does not have that many. Each record: `prompt`, `completions`,
    `labels` (True before `first_wrong`, False from it on, all True for the reference),
    `id` (the problem's), `reference` (the reference answer), `answer` (this solution's),
    `first_wrong` (-1 for the reference) and `kind` ("" for the reference). The records of a
    problem depend only on (seed, problem id, its text), not on the other problems.
    """
    unknown = set(kinds) - set(GSM8K_ERROR_KINDS)
    if unknown:
        raise ValueError(f"unknown GSM8K error kinds {sorted(unknown)}; choose from {GSM8K_ERROR_KINDS}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    records = []
    for index, row in enumerate(problems):
        problem = gsm8k_problem(row, index)
        rng = random.Random(f"gsm8k-corruptions/{seed}/{problem.id}")
        if include_reference:
            records.append(_record(problem, list(problem.steps), -1, "", problem.answer))
        order = rng.sample(list(kinds), len(kinds))
        seen = {tuple(problem.steps)}
        made, attempts = 0, 0
        while made < k and order and attempts < 3 * k + len(kinds):
            kind = order[attempts % len(order)]
            attempts += 1
            wrong = corrupt_gsm8k(problem, kind, rng)
            if wrong is None:
                order.remove(kind)
                continue
            if tuple(wrong.steps) in seen:
                continue
            seen.add(tuple(wrong.steps))
            records.append(_record(problem, list(wrong.steps), wrong.first_wrong, kind, wrong.answer))
            made += 1
    return records
