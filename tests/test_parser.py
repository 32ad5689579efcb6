"""The safe parser: grammar coverage, sympy objects built by constructors, clear refusals."""

import sympy
import pytest

from verifiers import LimitError, Limits, ParseError, parse_expression
from verifiers.parser import evaluate_exact, parse_tree

x = sympy.Symbol("x")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1,000 + 2.5", sympy.Rational(2005, 2)),
        ("2 1/2", sympy.Rational(5, 2)),
        (r"2\frac{1}{2}", sympy.Rational(5, 2)),
        ("12 x 5", 60),
        ("12 × 5 ÷ 4", 15),
        ("50%", sympy.Rational(1, 2)),
        ("$12 * 5", 60),
        ("€3 + £4", 7),
        ("24 clips", 24),
        ("2 hours * $10/hour", 20),
        ("2^3^2", 512),
        ("2**3", 8),
        ("-2^2", -4),
        ("-(3 - 5)", 2),
        (r"\left(1+2\right)\cdot 3", 9),
        (r"6 \times 7 \div 2", 21),
        (r"\frac12", sympy.Rational(1, 2)),
        (r"\dfrac{3}{4}", sympy.Rational(3, 4)),
        (r"\sqrt{16} + sqrt(9)", 7),
        (r"\sqrt[3]{27}", 3),
        (r"\pi", sympy.pi),
        ("pi/2", sympy.pi / 2),
        (r"2^{10}", 1024),
        ("1.5e3", 1500),
        (r"1.5 \times 10^3", 1500),
        ("5!", 120),
        ("2x + 3", 2 * x + 3),
        ("x^2 - 1", x**2 - 1),
        (r"\sqrt{2}", sympy.sqrt(2)),
    ],
)
def test_values(text, expected):
    assert sympy.simplify(parse_expression(text) - expected) == 0


def test_x_is_a_variable_unless_between_numbers():
    assert parse_expression("x + 2x") == 3 * x
    assert parse_expression("3 x 4") == 12
    assert parse_expression("3x") == 3 * x


def test_relations_become_sympy_relations():
    eq = parse_expression("2x + 3 = 7")
    assert isinstance(eq, sympy.Eq) and eq.lhs == 2 * x + 3 and eq.rhs == 7
    assert isinstance(parse_expression("x <= 3"), sympy.Le)


def test_exact_rational_evaluation():
    assert evaluate_exact(parse_tree("0.1 + 0.2", relation=False)) == evaluate_exact(parse_tree("3/10", relation=False))


@pytest.mark.parametrize("text", ["", "2 +", "(1 + 2", "hello world", "3 ) 4", "1 2"])
def test_refusals_are_parse_errors(text):
    with pytest.raises(ParseError):
        parse_expression(text)


@pytest.mark.parametrize(
    "text", ["9**9**9**9", "2^(10^8)", "1000000!", "9" * 5000, "(" * 10_000 + "1" + ")" * 10_000, "-" * 5000 + "1"]
)
def test_limits_are_refused_with_a_message(text):
    with pytest.raises(LimitError) as info:
        parse_expression(text, Limits(max_chars=100_000))
    assert str(info.value)


def test_time_budget_is_enforced_without_signals():
    # A zero budget: the deadline polled inside the parser/evaluator fires at once.
    with pytest.raises(LimitError, match="time budget"):
        parse_expression("+".join(["1"] * 200), Limits(time_budget=0.0))
