"""The synthetic task: seeded word problems and algebra with exact step labels.

This is the embedded default task: no download, deterministic for a seed, and sized (the
"tiny" preset) so that a 0.8 M-parameter model trained a few minutes on 2 CPU cores can
learn it. Two families:

* arithmetic word problems (GSM8K-like). The story states the operation of every step, so
  a step that uses the wrong operation is detectable even when its arithmetic is true::

      Question: Tom has 3 apples. He buys 4 more. He gives away 2. How many apples does he have now?
      He buys 4 more: 3 + 4 = 7
      He gives away 2: 7 - 2 = 5
      The answer is 5

* algebra: solve a linear equation, or simplify an expression; each step is an equation or
  an expression::

      Question: Solve for x: 3x + 5 = 20
      3x = 20 - 5
      3x = 15
      x = 15 / 3
      x = 5
      The answer is 5

`corrupt` turns a reference solution into a wrong one whose first wrong step is known,
and `step_labelled_records` mixes correct and corrupted solutions into a PRM training set
of TRL stepwise records.

A problem keeps the structure it was built from in `Problem.meta` (plain JSON values), so
a corruption re-derives every later step from the wrong value: the error propagates
consistently, as it does when a model makes it.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tasks.math.prompts import answer_step
from tasks.math.types import Problem

ERROR_KINDS: tuple[str, ...] = (
    "arithmetic_slip",  # 3 + 4 = 8
    "wrong_operation",  # the story takes away, the step adds (arithmetic still true)
    "wrong_number",  # a number from the question other than the one the story uses
    "dropped_step",  # an event of the story is skipped; later steps start from a stale value
    "wrong_algebra_move",  # 3x + 5 = 20 -> 3x = 20 + 5
)
KINDS_BY_FAMILY: dict[str, tuple[str, ...]] = {
    "arithmetic": ("arithmetic_slip", "wrong_operation", "wrong_number", "dropped_step"),
    "algebra": ("arithmetic_slip", "wrong_number", "wrong_algebra_move"),
}
ALGEBRA_FORMS = ("linear", "bracket", "simplify")


# Per operation, the phrasings of one story event; the step repeats the phrase, so a step
# whose equation contradicts its own phrase is visibly wrong. The first one is "tiny"'s.
_PHRASES: dict[str, tuple[str, ...]] = {
    "+": ("buys {k} more", "finds {k} more", "gets {k} more"),
    "-": ("gives away {k}", "loses {k}", "sells {k}"),
    "*": ("ends up with {k} times as many", "multiplies them by {k}", "makes {k} times as many"),
    "/": ("splits them into {k} equal piles and keeps one", "keeps one of {k} equal shares", "divides them by {k}"),
}
_TEMPLATE_COUNT = 3
# Story redraws before a config is declared unable to make its stories (the presets never come near it).
_STORY_DRAWS = 10_000
_CHARACTERS: tuple[tuple[str, str, str], ...] = (
    # (name, pronoun, item): tiny draws from the first four
    ("Tom", "he", "apples"),
    ("Ann", "she", "pens"),
    ("Sam", "he", "cards"),
    ("Mia", "she", "eggs"),
    ("Ben", "he", "stamps"),
    ("Lea", "she", "shells"),
    ("Max", "he", "coins"),
    ("Zoe", "she", "beads"),
    ("Raj", "he", "marbles"),
    ("Ida", "she", "stickers"),
    ("Leo", "he", "books"),
    ("Eva", "she", "cookies"),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Difficulty knobs of the synthetic task.

    Arithmetic: each problem has `min_steps`..`max_steps` operation steps (plus the answer
    step), operands drawn from `min_operand`..`max_operand`, operations from `operations`
    ("+", "-", "*", "/"), and every intermediate amount stays in 0..`max_value` (division
    is always exact). `templates` is how many phrasings each operation has (1 = fewest,
    easiest to learn), `characters` how many names/items the stories draw from.
    Algebra: coefficients and solutions come from the operand range; `forms` picks among
    "linear" (ax + b = c), "bracket" (a(x + b) = c) and "simplify" (a(x + b) + cx).
    """

    family: str = "arithmetic"
    min_steps: int = 2
    max_steps: int = 3
    min_operand: int = 1
    max_operand: int = 9
    operations: tuple[str, ...] = ("+", "-")
    max_value: int = 20
    templates: int = 1
    characters: int = 4
    forms: tuple[str, ...] = ALGEBRA_FORMS

    def __post_init__(self) -> None:
        if self.family not in KINDS_BY_FAMILY:
            raise ValueError(f"family must be one of {sorted(KINDS_BY_FAMILY)}, got {self.family!r}")
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(f"need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")
        if not 1 <= self.min_operand <= self.max_operand:
            raise ValueError(f"need 1 <= min_operand <= max_operand, got {self.min_operand}, {self.max_operand}")
        unknown = set(self.operations) - set(_PHRASES)
        if not self.operations or unknown:
            raise ValueError(f"operations must be a non-empty subset of {sorted(_PHRASES)}, got {self.operations}")
        if self.max_value < self.max_operand + 1:
            raise ValueError("max_value must exceed max_operand so that every operation stays possible")
        if not 1 <= self.templates <= _TEMPLATE_COUNT:
            raise ValueError(f"templates must be in 1..{_TEMPLATE_COUNT}")
        if not 1 <= self.characters <= len(_CHARACTERS):
            raise ValueError(f"characters must be in 1..{len(_CHARACTERS)}")
        if not self.forms or set(self.forms) - set(ALGEBRA_FORMS):
            raise ValueError(f"forms must be a non-empty subset of {ALGEBRA_FORMS}, got {self.forms}")


PRESETS: dict[str, SyntheticConfig] = {
    # The learnable default: one-digit operands, small results, + and -, one phrasing each.
    "tiny": SyntheticConfig(),
    "easy": SyntheticConfig(
        min_steps=2, max_steps=4, max_operand=20, operations=("+", "-", "*"), max_value=100, templates=2, characters=8
    ),
    "medium": SyntheticConfig(
        min_steps=3, max_steps=5, max_operand=50, operations=("+", "-", "*", "/"), max_value=1000, templates=3,
        characters=12,
    ),
    "hard": SyntheticConfig(
        min_steps=4, max_steps=7, max_operand=200, operations=("+", "-", "*", "/"), max_value=100_000, templates=3,
        characters=12,
    ),
    "algebra": SyntheticConfig(family="algebra", max_operand=9),
}

_SYMBOL_APPLY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: Fraction(a) / b,
}


@dataclass(frozen=True)
class CorruptedSolution:
    """A wrong solution: `steps` (ending with its answer step), the index of its first
    wrong step, the error kind, and the (wrong) final answer it reaches."""

    steps: list[str]
    first_wrong: int
    kind: str
    answer: str = ""


class _Infeasible(Exception):
    """A drawn corruption breaks the task's rules (negative amount, inexact division, same answer)."""


# --------------------------------------------------------------------------- generation


SYNTHETIC_PREFIX = "synthetic"


def synthetic_preset(spec: str, default: str = "tiny") -> str | None:
    """The preset a data spec names: "synthetic:PRESET" gives PRESET, "synthetic" (or
    "synthetic:") gives `default`; anything else (a path, a hub id) gives None. An unknown
    preset raises ValueError naming the presets. The one parser of `synthetic:` specs."""
    if spec != SYNTHETIC_PREFIX and not spec.startswith(SYNTHETIC_PREFIX + ":"):
        return None
    name = spec[len(SYNTHETIC_PREFIX) + 1:] or default
    return resolve_preset(name)[0]


def resolve_preset(preset: str | SyntheticConfig) -> tuple[str, SyntheticConfig]:
    """(name, config) for a preset name or a config (named "custom")."""
    if isinstance(preset, SyntheticConfig):
        return "custom", preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)} or pass a SyntheticConfig")
    return preset, PRESETS[preset]


def generate_problems(n: int, preset: str | SyntheticConfig = "tiny", seed: int = 0) -> list[Problem]:
    """`n` problems of the preset, the same for the same (preset, seed).

    Problems are drawn independently, so a small preset repeats questions: at seed 0, 4,000
    `tiny` problems hold 3,414 distinct questions (`easy`: 3,998). Held-out sets must leave out
    the training questions, as `prm demo` does.

    Each `Problem` has reference `steps` ending with `answer_step(answer)`, `source`
    "synthetic", and `meta` holding its family, preset and the structure `corrupt` needs.
    """
    name, config = resolve_preset(preset)
    rng = random.Random(f"synthetic/{name}/{seed}")
    build = _arithmetic_problem if config.family == "arithmetic" else _algebra_problem
    problems = []
    for index in range(n):
        question, meta = build(config, rng)
        meta.update(family=config.family, preset=name, operations=list(config.operations))
        steps, answer = _solve(meta)
        problems.append(
            Problem(
                id=f"synthetic-{name}-{seed}-{index}",
                question=question,
                answer=answer,
                steps=tuple(steps),
                source="synthetic",
                meta=meta,
            )
        )
    return problems


def _arithmetic_problem(config: SyntheticConfig, rng: random.Random) -> tuple[str, dict[str, Any]]:
    name, pronoun, item = _CHARACTERS[rng.randrange(config.characters)]
    n_events = rng.randint(config.min_steps, config.max_steps)
    for _ in range(_STORY_DRAWS):  # redraw in the rare case the amount reaches a value no operation can leave
        # at least 2, so that the story never starts with "1 apples"
        start = value = rng.randint(max(config.min_operand, 2), max(config.max_operand, 2))
        events = []
        for _ in range(n_events):
            choices = [(op, _operand_range(op, value, config)) for op in config.operations]
            choices = [(op, options) for op, options in choices if options]
            if not choices:
                break
            op, options = choices[rng.randrange(len(choices))]
            operand = options[rng.randrange(len(options))] if isinstance(options, list) else rng.randint(*options)
            events.append([op, operand, rng.randrange(config.templates)])
            value = int(_SYMBOL_APPLY[op](value, operand))
        if len(events) == n_events:
            break
    else:
        raise ValueError(f"{config} cannot make a story of {n_events} steps: every draw reached an amount "
                         "no operation can leave within 1..max_value")
    meta = {"name": name, "pronoun": pronoun, "item": item, "start": start, "events": events}
    sentences = [f"{name} has {start} {item}."]
    sentences += [f"{pronoun.capitalize()} {_phrase(op, k, t)}." for op, k, t in events]
    sentences.append(f"How many {item} does {pronoun} have now?")
    return " ".join(sentences), meta


def _operand_range(op: str, value: int, config: SyntheticConfig) -> tuple[int, int] | list[int] | None:
    """The operands that keep `value op k` an integer in 1..max_value: an inclusive
    (low, high) range, a list (divisors), or None if there is none."""
    low, high = config.min_operand, config.max_operand
    if op == "+":
        high = min(high, config.max_value - value)
    elif op == "-":
        high = min(high, value - 1)
    elif op == "*":
        low, high = max(low, 2), min(high, config.max_value // value)
    else:
        return [k for k in range(max(low, 2), min(high, value) + 1) if value % k == 0] or None
    return (low, high) if low <= high else None


def _phrase(op: str, operand: int, template: int) -> str:
    return _PHRASES[op][template].format(k=operand)


def _algebra_problem(config: SyntheticConfig, rng: random.Random) -> tuple[str, dict[str, Any]]:
    form = config.forms[rng.randrange(len(config.forms))]
    low, high = config.min_operand, config.max_operand

    def signed() -> int:
        return rng.randint(low, high) * rng.choice((1, -1))

    coefficient = rng.randint(max(low, 2), max(high, 2))
    solution, constant = signed(), signed()
    if form == "linear":
        meta = {"form": form, "a": coefficient, "b": constant, "c": coefficient * solution + constant}
        question = f"Solve for x: {_linear(coefficient, constant)} = {meta['c']}"
    elif form == "bracket":
        meta = {"form": form, "a": coefficient, "b": constant, "c": coefficient * (solution + constant)}
        question = f"Solve for x: {coefficient}({_linear(1, constant)}) = {meta['c']}"
    else:
        other = signed()
        meta = {"form": form, "a": coefficient, "b": constant, "c": other}
        question = f"Simplify: {coefficient}({_linear(1, constant)}) {_signed_term(other, 'x')}"
    return question, meta


# --------------------------------------------------------------------------- solving


@dataclass(frozen=True)
class _Fault:
    """Where and how a corruption changes the derivation: at step `index`, `detail` is the
    slip delta, the wrong operation, the wrong number, or the name of the wrong move."""

    kind: str
    index: int
    detail: Any = None


def _solve(meta: dict[str, Any], fault: _Fault | None = None) -> tuple[list[str], str]:
    """The steps (ending with the answer step) and answer, optionally with one fault."""
    if meta["family"] == "arithmetic":
        return _solve_arithmetic(meta, fault)
    return {"linear": _solve_linear, "bracket": _solve_bracket, "simplify": _solve_simplify}[meta["form"]](
        meta, fault
    )


def _solve_arithmetic(meta: dict[str, Any], fault: _Fault | None) -> tuple[list[str], str]:
    value = meta["start"]
    steps = []
    for index, (op, operand, template) in enumerate(meta["events"]):
        at_fault = fault is not None and fault.index == index
        if at_fault and fault.kind == "dropped_step":
            continue
        used_op = fault.detail if at_fault and fault.kind == "wrong_operation" else op
        used_operand = fault.detail if at_fault and fault.kind == "wrong_number" else operand
        result = _SYMBOL_APPLY[used_op](value, used_operand)
        if at_fault and fault.kind == "arithmetic_slip":
            result += fault.detail
        if result < 0 or result != int(result):
            raise _Infeasible("the story's amounts must stay whole and non-negative")
        result = int(result)
        phrase = _phrase(op, operand, template)
        steps.append(f"{meta['pronoun'].capitalize()} {phrase}: {value} {used_op} {used_operand} = {result}")
        value = result
    steps.append(answer_step(str(value)))
    return steps, str(value)


def _solve_linear(meta: dict[str, Any], fault: _Fault | None) -> tuple[list[str], str]:
    """ax + b = c  ->  ax = c - b  ->  ax = d  ->  x = d / a  ->  x = d/a."""
    a, b, c = meta["a"], meta["b"], meta["c"]
    moved = _fault_detail(fault, 0, "wrong_number", abs(b))
    move_sign = -1 if b > 0 else 1
    if _fault_is(fault, 0, "wrong_algebra_move"):
        move_sign = -move_sign  # the term crosses the "=" without changing sign
    d = c + move_sign * moved + _fault_detail(fault, 1, "arithmetic_slip", 0)
    steps = [f"{a}x = {c} {'-' if move_sign < 0 else '+'} {moved}", f"{a}x = {d}"]
    steps += _divide_steps(d, a, fault, move_index=2)
    return steps + [answer_step(_number(_last_value(steps)))], _number(_last_value(steps))


def _solve_bracket(meta: dict[str, Any], fault: _Fault | None) -> tuple[list[str], str]:
    """a(x + b) = c  ->  x + b = c / a  ->  x + b = q  ->  x = q - b  ->  x = q - b."""
    a, b, c = meta["a"], meta["b"], meta["c"]
    inner = _linear(1, b)
    divisor = _fault_detail(fault, 0, "wrong_number", a)
    if _fault_is(fault, 0, "wrong_algebra_move"):
        # subtracts the factor instead of dividing by it
        quotient = Fraction(c - divisor)
        steps = [f"{inner} = {c} - {divisor}"]
    else:
        quotient = Fraction(c) / divisor
        steps = [f"{inner} = {c} / {divisor}"]
    quotient += _fault_detail(fault, 1, "arithmetic_slip", 0)
    steps.append(f"{inner} = {_number(quotient)}")
    move_sign = -1 if b > 0 else 1
    if _fault_is(fault, 2, "wrong_algebra_move"):
        move_sign = -move_sign
    x = quotient + move_sign * abs(b) + _fault_detail(fault, 3, "arithmetic_slip", 0)
    steps.append(f"x = {_number(quotient)} {'-' if move_sign < 0 else '+'} {abs(b)}")
    steps.append(f"x = {_number(x)}")
    return steps + [answer_step(_number(x))], _number(x)


def _solve_simplify(meta: dict[str, Any], fault: _Fault | None) -> tuple[list[str], str]:
    """a(x + b) + cx  ->  ax + ab + cx  ->  (a + c)x + ab."""
    a, b, c = meta["a"], meta["b"], meta["c"]
    distributed = b if _fault_is(fault, 0, "wrong_algebra_move") else a * b  # multiplies the first term only
    distributed += _fault_detail(fault, 0, "arithmetic_slip", 0)
    combined = a + c + _fault_detail(fault, 1, "arithmetic_slip", 0)
    first = f"{_linear(a, distributed)} {_signed_term(c, 'x')}"
    result = _linear(combined, distributed)
    return [first, result, answer_step(result)], result


def _divide_steps(d: int | Fraction, a: int, fault: _Fault | None, move_index: int) -> list[str]:
    if _fault_is(fault, move_index, "wrong_algebra_move"):
        x = Fraction(d) * a  # multiplies where it should divide
        division = f"x = {_number(d)} * {a}"
    else:
        x = Fraction(d) / a
        division = f"x = {_number(d)} / {a}"
    x += _fault_detail(fault, move_index + 1, "arithmetic_slip", 0)
    return [division, f"x = {_number(x)}"]


def _fault_is(fault: _Fault | None, index: int, kind: str) -> bool:
    return fault is not None and fault.index == index and fault.kind == kind


def _fault_detail(fault: _Fault | None, index: int, kind: str, default: Any) -> Any:
    return fault.detail if _fault_is(fault, index, kind) else default


def _last_value(steps: list[str]) -> Fraction:
    return Fraction(steps[-1].split("= ")[-1])


def _number(value: int | Fraction) -> str:
    """An exact number as text: "5", "-3", "16/3"."""
    value = Fraction(value)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _linear(coefficient: int, constant: int | Fraction) -> str:
    """coefficient * x + constant as text: "3x + 5", "x - 2", "-x", "7"."""
    if coefficient == 0:
        return _number(constant)
    head = {1: "x", -1: "-x"}.get(coefficient, f"{coefficient}x")
    return head if constant == 0 else f"{head} {_signed_term(constant, '')}"


def _signed_term(value: int | Fraction, variable: str) -> str:
    """" + 3x" style continuation of a sum, without the leading space: "+ 3x", "- x"."""
    magnitude = abs(Fraction(value))
    text = _number(magnitude)
    if variable:
        text = variable if magnitude == 1 else f"{text}{variable}"
    return f"{'-' if value < 0 else '+'} {text}"


# --------------------------------------------------------------------------- corruption

# Where each kind can strike in an algebra derivation (step indices of the reference).
_ALGEBRA_SITES: dict[str, dict[str, tuple[int, ...]]] = {
    "linear": {"arithmetic_slip": (1, 3), "wrong_number": (0,), "wrong_algebra_move": (0, 2)},
    "bracket": {"arithmetic_slip": (1, 3), "wrong_number": (0,), "wrong_algebra_move": (0, 2)},
    "simplify": {"arithmetic_slip": (0, 1), "wrong_algebra_move": (0,)},
}
_DRAWS_PER_KIND = 30


def corrupt(problem: Problem, kind: str | None = None, rng: random.Random | int | None = None) -> CorruptedSolution:
    """A wrong solution to a synthetic `problem` with a known first wrong step.

    `kind` is one of `ERROR_KINDS` (None: a random kind that fits the problem's family).
    Steps before `first_wrong` equal the reference's; every later step follows consistently
    from the wrong value, and the final answer always differs from the reference. `rng` is
    a `random.Random`, a seed, or None (a seed derived from the problem id).
    Raises ValueError if the problem is not synthetic or the kind cannot apply to it.
    """
    if not isinstance(rng, random.Random):
        rng = random.Random(zlib.crc32(problem.id.encode()) if rng is None else rng)
    family = problem.meta.get("family")
    if family not in KINDS_BY_FAMILY:
        raise ValueError(f"problem {problem.id!r} is not from the synthetic generator; only those can be corrupted")
    if kind is not None and kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}; choose one of {ERROR_KINDS}")
    if kind is not None and kind not in KINDS_BY_FAMILY[family]:
        raise ValueError(f"error kind {kind!r} does not apply to {family} problems")
    kinds = [kind] if kind else rng.sample(KINDS_BY_FAMILY[family], len(KINDS_BY_FAMILY[family]))
    for candidate in kinds:
        for _ in range(_DRAWS_PER_KIND):
            try:
                fault = _draw_fault(problem.meta, candidate, rng)
                if fault is None:
                    break  # this kind has no site in this problem
                steps, answer = _solve(problem.meta, fault)
            except (_Infeasible, ZeroDivisionError):
                continue
            if answer != problem.answer:
                return CorruptedSolution(steps=steps, first_wrong=fault.index, kind=candidate, answer=answer)
    raise ValueError(f"cannot corrupt problem {problem.id!r} with {kind or 'any kind'}")


def _draw_fault(meta: dict[str, Any], kind: str, rng: random.Random) -> _Fault | None:
    """A random fault of `kind` for this problem, or None where the kind has no site."""
    if meta["family"] == "algebra":
        sites = _ALGEBRA_SITES[meta["form"]].get(kind, ())
        if not sites:
            return None
        index = rng.choice(sites)
        if kind == "arithmetic_slip":
            return _Fault(kind, index, rng.choice((-2, -1, 1, 2)))
        if kind == "wrong_number":
            # linear moves b across the "=", bracket divides by a: copy another number instead
            right = abs(meta["b"] if meta["form"] == "linear" else meta["a"])
            numbers = sorted({abs(meta["a"]), abs(meta["b"]), abs(meta["c"])} - {right, 0})
            return _Fault(kind, index, rng.choice(numbers)) if numbers else None
        return _Fault(kind, index)
    events = meta["events"]
    index = rng.randrange(len(events))
    op, operand, _ = events[index]
    if kind == "arithmetic_slip":
        return _Fault(kind, index, rng.choice((-2, -1, 1, 2)))
    if kind == "wrong_operation":
        others = [other for other in meta["operations"] if other != op]
        return _Fault(kind, index, rng.choice(others)) if others else None
    if kind == "wrong_number":
        numbers = sorted({meta["start"], *(k for _, k, _ in events)} - {operand})
        return _Fault(kind, index, rng.choice(numbers)) if numbers else None
    following = events[index + 1] if index + 1 < len(events) else None
    if following is not None and following[:2] == [op, operand]:
        # dropping one of two equal events leaves the numbers of the next step unchanged
        raise _Infeasible("the dropped step would not be visible")
    return _Fault(kind, index)  # dropped_step


# --------------------------------------------------------------------------- records


def step_labelled_records(
    problems: list[Problem], corrupt_fraction: float = 0.5, seed: int = 0
) -> list[dict[str, Any]]:
    """A PRM training set: one TRL stepwise record per problem, a `corrupt_fraction` of
    them (chosen with `seed`) replaced by a corrupted solution.

    Each record: `prompt` (the question), `completions` (steps), `labels` (True before
    the first wrong step, False from it on), plus `id`, `reference` (the reference
    answer), `first_wrong` (-1 for a correct solution) and `kind` ("" for correct).
    """
    if not 0.0 <= corrupt_fraction <= 1.0:
        raise ValueError(f"corrupt_fraction must be in [0, 1], got {corrupt_fraction}")
    rng = random.Random(f"records/{seed}")
    order = list(range(len(problems)))
    rng.shuffle(order)
    corrupted = set(order[: round(corrupt_fraction * len(problems))])
    records = []
    for index, problem in enumerate(problems):
        if problem.steps is None:
            raise ValueError(f"problem {problem.id!r} has no reference steps")
        if index in corrupted:
            wrong = corrupt(problem, rng=rng)
            steps, first_wrong, kind = list(wrong.steps), wrong.first_wrong, wrong.kind
        else:
            steps, first_wrong, kind = list(problem.steps), -1, ""
        labels = [first_wrong < 0 or position < first_wrong for position in range(len(steps))]
        records.append(
            {
                "id": problem.id,
                "prompt": problem.question,
                "completions": steps,
                "labels": labels,
                "reference": problem.answer,
                "first_wrong": first_wrong,
                "kind": kind,
            }
        )
    return records
