"""check_step's fast path (plain arithmetic) against the full checker, and the verdict fixes:
ambiguous `a/ b/c`, mixed units, label numbers ("day 1"), infinities, zero-width characters."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifiers import check_step, find_claims
from verifiers.parser import evaluate_arithmetic, evaluate_exact, parse_tree


def full_verdict(text):
    """check_step's verdict computed by find_claims alone (no fast path)."""
    verdict = None
    for claim in find_claims(text):
        if claim.ok is False:
            return False
        if claim.ok:
            verdict = True
    return verdict


TRICKY = [
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.",
    "So he makes 120*6=$<<120*6=720>>720",
    "9 cups + drank 1 + 1 = 2 cups",  # the left side started before "drank"
    "$3 x 4 = 12 apples",
    "3 apples * 5 + 2 = 17",
    "20% of 50 + 2 = 12",
    "a total of 24 + 7 + 14 = 45",
    "2 1/2 + 1 = 3.5",
    "Each gets 25 / 1/3 = 75 cups",
    "2 + 1 = 3 pi",
    "2 + 1 = 3 b",
    "2 + 1 = 3 + 0 = 3",
    "2 + 1 = 3 x 1",
    "it is 0900 - 0130 = 0730",
    "He has 5 + 3 = 8 apples and 8 * 2 = 16 pears.",
    "He has 5 + 3 = 8 apples and 8 * 2 = 17 pears.",
    "Thus 10 - 4 = 6, and 6 x 2 = 12.",
    "3 + 4 >= 7",
    "1/3 = 0.33",
    "approximately 22/7 = 3.14",
    "5 - 2 = 3 = 1 + 2",
    "12 x -3 = -36",
    "1,000 + 500 = 1,500 dollars",
    "It takes 60/1.5=<<60/1.5=40>>40 minutes.",
    "16 , 300 + 5 = 305",  # ", 300": a broken thousands separator, whatever the spacing
    "We had 14, 400 + 5 = 405",
    "In 2006, 30/3*2=<<30/3*2=20>>20 kids came.",
    "5. 3 + 4 = 7",
    "Bobby can jump 60 - 30 = <<60-30=30>>30 more jumps than when he was a child.",
    "it is 2 + 1 = 3 and 1/4 cups",  # a mixed number on the right
    "so 2 + 1 = 3 apples and 1/4 of them",
    "2 + 1 = 3 more2",
    "2 + 1 = 3 I think",
    "2 + 1 = 3 i",
    "2 + 1 = 3 times 2",
    "2 + 1 = 3 divided by 3 is 1",
    "2 + 1 = 3 more than 1 + 1 = 2",
    # prose arithmetic before a left side, and operators a few prose words behind it
    "Two 45-pound plates cost $50 x 2 = $100.",
    "He buys 12-pound bags because 4 x 13 = 52",
    "so Lindsey is given $25 + her original $98 + 0 = $123.",
    "after 6 sets x every 2 + 1 = 13 hours",
    "One pen is equal to 2 * x which is 2 * $2 = $4",
    "twice 3 + 4 = 14",
    "the sum of 3 + 4 = 7",
    "a total of 120 + 108 + 100 = 328 pages",
    "5 more than 3 + 4 = 12",
    "half of 8 + 2 = 6",
    "half of the 3 + 4 = 7 apples",
    "3 years older than 4 + 5 = 12",
    "3 times as many as 2 + 2 = 12",
]


@pytest.mark.parametrize("step", TRICKY)
def test_fast_path_agrees_with_full_checker(step):
    assert check_step(step) == full_verdict(step)


_WORDS = st.sampled_from(["so", "he", "sold", "of", "x", "apples", "+", "and", "total", "day", "$", "-", "(", ",",
                          "twice", "than", "more", "as", "every", "her", "12-pound", "sum", "the", "half",
                          "older"])
_NUMBERS = st.integers(0, 200).map(str) | st.sampled_from(["1/2", "0.5", "1,000", "$3", "07"])
_OPS = st.sampled_from([" + ", " - ", " * ", " / ", "x", " x ", "/"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=4), st.lists(st.tuples(_NUMBERS, _OPS), min_size=1, max_size=3),
       _NUMBERS, st.booleans(), st.sampled_from(["", " apples", ".", " x 2", " each day", "%", " more than a", " and 1/4", " apples and 2",
                        " I", " i", " the 5", " of 2", " e"]))
def test_fast_path_agrees_on_generated_steps(prefix, terms, last, true_value, suffix):
    left = "".join(n + op for n, op in terms) + last
    value = evaluate_arithmetic(left)
    right = str(value) if true_value and value is not None and Fraction(value).denominator == 1 else "7"
    step = " ".join(prefix) + " " + left + " = " + right + suffix
    assert check_step(step) == full_verdict(step), step


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.integers(0, 99).map(str) | st.sampled_from(["0.25", "1,000", ".5"]),
                    lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*", "/", " x "]), inner).map(
                        lambda t: f"({t[0]}{t[1]}{t[2]})" if "x" not in t[1] else f"{t[0]}{t[1]}{t[2]}"),
                    max_leaves=8))
def test_evaluate_arithmetic_matches_the_parser(text):
    expected = None
    try:
        expected = evaluate_exact(parse_tree(text, relation=False))
    except ZeroDivisionError:
        pass
    assert evaluate_arithmetic(text) == expected


def test_evaluate_arithmetic_refuses_anything_else():
    for text in ["2x", "3%", "2^3", "2 1/2", "2(3)", "sqrt 4", "1e5", "9" * 3000, "(" * 100 + "1" + ")" * 100, "1/0"]:
        assert evaluate_arithmetic(text) is None, text


def test_ambiguous_slash_fraction_is_true_under_either_reading():
    assert check_step("500/ 1/10 = 50 seats are broken.") is True  # usual precedence: 500/1/10
    assert check_step("Each gets 25 / 1/3 = 75 cups") is True  # 25 divided by the fraction 1/3
    assert check_step("500/ 2/5 = 200 seats") is False  # no reading gives 200


def test_mixed_units_in_a_sum_are_not_checked():
    assert check_step("Lazlo = 4 pounds - 6 ounces = 58 ounces") is None
    assert check_step("4 pounds + 6 pounds = 11 pounds") is False
    assert check_step("4 pounds + 6 pounds = 10 pounds") is True
    assert check_step("he ate 9 sandwiches - 1 sandwich = 8 more sandwiches") is True


def test_label_number_after_a_word_is_not_a_false_alarm():
    assert check_step("10 pages per day on day 1 * 2 = 20 pages per day") is None
    # an earlier quantity that does not make the claim true leaves it false
    assert check_step("He has 5 apples and sold 48/2 = 25 of them") is False
    assert check_step("on day 1 * 2 = 20") is False


def test_infinite_values_are_never_false():
    for step in ["inf = inf", "nan = nan", "∞ = ∞", "1e309 = 1e309"]:
        assert check_step(step) is not False, step


def test_zero_width_characters_are_ignored():
    assert check_step("1\u200b2 + 1 = 13") is True
    assert check_step("1\u200b2 + 1 = 14") is False
    assert check_step("<<1\u200b2+1=13>>") is True
    assert check_step("3 + 4 \u202e= 8") is not False  # a direction override changes what is shown
