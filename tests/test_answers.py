"""Final-answer extraction and equivalence."""

import pytest

from verifiers import answers_equivalent, extract_answer


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so $x = \boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"\boxed{\{1, \{2\}\}} and more", r"\{1, \{2\}\}"),
        ("48 + 24 = 72\n#### 72", "72"),
        ("#### 1,000", "1,000"),
        ("Step 1\nThe answer is 18.", "18"),
        ("The final answer is: $\\frac{3}{4}$.", "\\frac{3}{4}"),
        ("Q: what?\nA: 18", "18"),
        ("Answer: x = 5", "x = 5"),
        ("I think it is 3, then 4.5 apples", "4.5"),
    ],
)
def test_extract(text, expected):
    assert extract_answer(text) == expected


def test_last_number_fallback_can_be_switched_off():
    assert extract_answer("we get 12 apples") == "12"
    assert extract_answer("we get 12 apples", fallback_last_number=False) is None
    assert extract_answer("no numbers") is None
    assert extract_answer(None) is None


EQUAL = [
    ("1000", "1,000"), ("18", "18.0"), ("$1,000", "1000 dollars"), ("5", r"5\text{ cm}^2"), ("7", "7 km/h"),
    (r"\frac{1}{2}", "0.5"), ("3/4", r"\dfrac{3}{4}"), (r"2\frac{1}{2}", "2 1/2"), ("2.5", "5/2"),
    (r"\sqrt{8}", r"2\sqrt{2}"), (r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}"), (r"2\pi", r"\pi \cdot 2"),
    ("1500", "1.5e3"), ("1500", r"1.5 \times 10^3"), ("50%", "50"), ("50%", "0.5"), (r"30^\circ", "30"),
    (r"30^{\circ}", r"\frac{\pi}{6}"), ("x = 3", "3"), ("x=3, y=4", "(3, 4)"), (r"\{1, 2\}", r"\{2, 1\}"),
    ("1, 2", "2, 1"), ("(1, 2]", r"\left(1,2\right]"), (r"(-\infty, 1) \cup (2, \infty)", r"(2, \infty) \cup (-\infty, 1)"),
    (r"1 \pm \sqrt{2}", r"1 - \sqrt{2}, 1 + \sqrt{2}"),
    (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{bmatrix}1&2\\3&4\end{bmatrix}"),
    ("x^2 - 1", "(x-1)(x+1)"), (r"\text{Monday}", "monday"), (r"\text{(C)}", "C"), ("3+4i", "4i + 3"),
    (r"\emptyset", r"\varnothing"), (r"\frac{1}{3}", "0.3333"), ("½", "0.5"), ("1.5 × 10³", "1500"),
]
DIFFERENT = [
    ("1,000", "100"), ("50", "0.5"), ("0.5", "0.54"), (r"\pi", "3.14"), ("(1, 2]", "[1, 2]"), ("(3, 4)", "(4, 3)"),
    (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{pmatrix}1&2\\3&5\end{pmatrix}"), ("x^2 - 1", "(x-1)^2"),
    (r"\infty", r"-\infty"), ("yes", "no"), ("2", "-2"), ("1, 2", "1, 2, 3"), ("18", ""),
]


@pytest.mark.parametrize("gold, pred", EQUAL)
def test_equivalent(gold, pred):
    assert answers_equivalent(gold, pred) is True
    assert answers_equivalent(pred, gold) is True


@pytest.mark.parametrize("gold, pred", DIFFERENT)
def test_not_equivalent(gold, pred):
    assert answers_equivalent(gold, pred) is False
    assert answers_equivalent(pred, gold) is False


def test_extracted_answers_compare():
    assert answers_equivalent("72", extract_answer("48 + 24 = 72\n#### 72"))
    assert answers_equivalent(r"\frac{1}{2}", extract_answer(r"so the answer is $\boxed{0.5}$"))
