"""The synthetic task: determinism, true reference equations, exact first-wrong labels.

The checks re-derive correctness independently of the generator: a tiny arithmetic
evaluator (Python `ast` over trusted generated text, evaluated with Fractions) and a story
reader that replays the question's events.
"""

import ast
import operator
import re
from collections import Counter
from fractions import Fraction

import pytest

from tasks.math import answer_step, validate_step_example
from tasks.math.synthetic import (
    ERROR_KINDS,
    KINDS_BY_FAMILY,
    PRESETS,
    SyntheticConfig,
    corrupt,
    generate_problems,
    step_labelled_records,
)

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate(text: str, x: Fraction = Fraction(0)) -> Fraction:
    """Value of a generated expression ("12 / 4", "3x - 5", "2(x + 1)") at x."""
    text = re.sub(r"(\d)\s*(x|\()", r"\1*\2", text)  # implicit products of the generated text

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.Name) and node.id == "x":
            return x
        raise AssertionError(f"unexpected syntax in {text!r}")

    return walk(ast.parse(text.strip(), mode="eval"))


def equation_holds(equation: str, x: Fraction = Fraction(0)) -> bool:
    left, right = equation.split("=")
    return evaluate(left, x) == evaluate(right, x)


def story_events(question: str) -> tuple[int, list[tuple[str, int]]]:
    """(start, [(operation, operand)]) read back from a word problem's sentences."""
    start = int(re.search(r"has (\d+)", question).group(1))
    events = []
    for sentence in question.split(". ")[1:]:
        number = re.search(r"\d+", sentence)
        if number is None:
            continue
        words = sentence.lower()
        if "more" in words:
            op = "+"
        elif any(verb in words for verb in ("gives away", "loses", "sells")):
            op = "-"
        elif "times" in words or "multiplies" in words:
            op = "*"
        else:
            op = "/"
        events.append((op, int(number.group())))
    return start, events


def first_wrong_word_step(question: str, steps: list[str], reference: str) -> int:
    """Index of the first step that is not the story's next event done right (or -1)."""
    value, events = story_events(question)
    for index, step in enumerate(steps):
        if index == len(steps) - 1:
            return -1 if step == answer_step(str(value)) and str(value) == reference else index
        if index >= len(events):
            return index
        op, operand = events[index]
        match = re.fullmatch(r".*: (\d+) ([-+*/]) (\d+) = (\d+)", step)
        expected = {"+": value + operand, "-": value - operand, "*": value * operand}.get(op)
        if op == "/":
            expected = value // operand
        if not match or (int(match[1]), match[2], int(match[3]), int(match[4])) != (value, op, operand, expected):
            return index
        value = expected
    return -1


def first_wrong_algebra_step(problem, steps: list[str]) -> int:
    """Index of the first step that does not hold for the true solution (equations) or does
    not equal the question's expression (simplification), or -1."""
    expression = problem.question.split(": ", 1)[1]
    for index, step in enumerate(steps):
        if step.startswith("The answer is "):
            claimed = step.removeprefix("The answer is ")
            return -1 if claimed == problem.answer else index
        if "=" in expression:
            ok = equation_holds(step, Fraction(problem.answer))
        else:
            ok = all(evaluate(step, Fraction(x)) == evaluate(expression, Fraction(x)) for x in (-2, 1, 3))
        if not ok:
            return index
    return -1


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_same_seed_same_problems_different_seed_different(preset):
    first = generate_problems(30, preset, seed=3)
    assert first == generate_problems(30, preset, seed=3)
    assert [p.meta for p in first] == [p.meta for p in generate_problems(30, preset, seed=3)]
    other = generate_problems(30, preset, seed=4)
    assert [p.question for p in first] != [p.question for p in other]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_reference_solutions_are_true_and_end_with_the_answer(preset):
    for problem in generate_problems(200, preset, seed=1):
        steps = list(problem.steps)
        assert steps[-1] == answer_step(problem.answer)
        if problem.meta["family"] == "arithmetic":
            for step in steps[:-1]:
                assert equation_holds(step.split(": ", 1)[1]), step
            assert first_wrong_word_step(problem.question, steps, problem.answer) == -1
        else:
            assert first_wrong_algebra_step(problem, steps) == -1, (problem.question, steps)


def test_tiny_preset_is_small():
    numbers, operators, lengths = set(), set(), Counter()
    for problem in generate_problems(500, "tiny", seed=0):
        start, events = story_events(problem.question)
        lengths[len(problem.steps) - 1] += 1
        for step in problem.steps[:-1]:
            a, op, b, result = re.fullmatch(r".*: (\d+) (.) (\d+) = (\d+)", step).groups()
            numbers.add(int(b))
            operators.add(op)
            assert 0 <= int(result) <= 20 and int(a) <= 20
    assert numbers <= set(range(1, 10))
    assert operators == {"+", "-"}
    assert set(lengths) == {2, 3}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_corrupted_solutions_have_the_stated_first_wrong_step(preset):
    problems = generate_problems(150, preset, seed=2)
    kinds = Counter()
    for number, problem in enumerate(problems):
        family = problem.meta["family"]
        for kind in KINDS_BY_FAMILY[family]:
            try:
                wrong = corrupt(problem, kind, rng=number)
            except ValueError:
                continue  # e.g. no other number in the question to copy
            kinds[kind] += 1
            assert wrong.kind == kind
            assert wrong.answer != problem.answer
            assert wrong.steps[-1] == answer_step(wrong.answer)
            assert wrong.steps[: wrong.first_wrong] == list(problem.steps[: wrong.first_wrong])
            if family == "arithmetic":
                found = first_wrong_word_step(problem.question, wrong.steps, problem.answer)
                # the arithmetic of every step stays true except an arithmetic slip
                for index, step in enumerate(wrong.steps[:-1]):
                    true = equation_holds(step.split(": ", 1)[1])
                    assert true or (kind == "arithmetic_slip" and index == wrong.first_wrong)
            else:
                found = first_wrong_algebra_step(problem, wrong.steps)
            assert found == wrong.first_wrong, (kind, problem.question, wrong.steps)
    # every kind of the family occurs
    family = problems[0].meta["family"]
    assert set(kinds) == set(KINDS_BY_FAMILY[family])


def test_corrupt_is_seeded_and_rejects_foreign_problems():
    problem = generate_problems(1, "easy", seed=5)[0]
    assert corrupt(problem, rng=7) == corrupt(problem, rng=7)
    assert corrupt(problem) == corrupt(problem)
    with pytest.raises(ValueError, match="does not apply"):
        corrupt(problem, "wrong_algebra_move")
    with pytest.raises(ValueError, match="unknown error kind"):
        corrupt(problem, "typo")
    from tasks.math import Problem

    with pytest.raises(ValueError, match="synthetic"):
        corrupt(Problem(id="q", question="1 + 1?", answer="2", steps=("1 + 1 = 2",)))
    assert set(ERROR_KINDS) == set(KINDS_BY_FAMILY["arithmetic"]) | set(KINDS_BY_FAMILY["algebra"])


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_step_labelled_records(fraction):
    problems = generate_problems(40, "tiny", seed=0)
    records = step_labelled_records(problems, corrupt_fraction=fraction, seed=1)
    assert records == step_labelled_records(problems, corrupt_fraction=fraction, seed=1)
    assert sum(r["first_wrong"] >= 0 for r in records) == round(40 * fraction)
    for record, problem in zip(records, problems):
        validate_step_example(record)
        assert record["prompt"] == problem.question and record["reference"] == problem.answer
        if record["first_wrong"] < 0:
            assert record["completions"] == list(problem.steps) and all(record["labels"])
        else:
            k = record["first_wrong"]
            assert record["labels"] == [True] * k + [False] * (len(record["completions"]) - k)


def test_custom_config_and_validation():
    config = SyntheticConfig(min_steps=5, max_steps=5, max_operand=3, operations=("+",), max_value=40)
    for problem in generate_problems(50, config, seed=0):
        assert len(problem.steps) == 6 and problem.meta["preset"] == "custom"
        assert "+" in problem.steps[0] and "-" not in "".join(problem.steps)
    with pytest.raises(ValueError):
        SyntheticConfig(operations=("^",))
    with pytest.raises(ValueError):
        generate_problems(1, "impossible")


def test_a_config_whose_stories_cannot_be_drawn_is_refused_not_looped_on():
    # From every start, "*"-only events leave 1..10 within two steps: three can never be drawn.
    config = SyntheticConfig(operations=("*",), min_steps=3, max_steps=3, max_value=10)
    with pytest.raises(ValueError, match="steps"):
        generate_problems(1, config, seed=0)
