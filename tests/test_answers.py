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


# -- issue #15 item 2: model output styles, number words, repeating decimals, currency, 0/0 ------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("Final Answer: The final answer is $12$. I hope it is correct.", "12"),  # MATH prompt format
        ("The answer is 12 because 3 * 4 = 12.", "12"),
        ("The answer is 12. Next question: what is 2 + 2?", "12"),
        ("The answer is 12! Next question: what is 2 + 2?", "12"),
        ("The answer is 0.333...", "0.333..."),
        ("The answer is 0.333... as a decimal.", "0.333..."),
        (r"The answer is $0.\overline{3}$.", r"0.\overline{3}"),
        ("The answer is 3.5. Done.", "3.5"),
        ("The answer is $3.5$, since 7/2 = 3.5.", "3.5"),
        (r"So the answer is $\boxed{12}$.", "12"),
        ("**Answer:** 12", "12"),
        ("**Final Answer:** $12$", "12"),
        ("**Final Answer**: 12", "12"),
        ("answer: 12 apples", "12 apples"),
        ("The answer is x = 3, y = 4.", "x = 3, y = 4"),
        ("The answer is (3, 4).", "(3, 4)"),
        ("The answer is $1,000. Next we check.", "$1,000"),
    ],
)
def test_extract_model_output_styles(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is nine.", "9"),
        ("The answer is 7 (seven).", "7"),
        ("The answer is seven (7).", "7"),
        ("#### twenty-one", "21"),
        ("The answer is zero.", "0"),
        ("The answer is twelve apples.", "12 apples"),
        ("The answer is one hundred twenty-five.", "125"),
        ("The answer is two thousand five hundred.", "2500"),
        ("The answer is three hundred and six.", "306"),
        ("A: Forty", "40"),
        # prose stays prose: only a whole answer (or number then one unit word) becomes digits
        ("The answer is one of the two options.", "one of the two options"),
        ("The answer is none.", "none"),
        ("The answer is no.", "no"),
        ("The answer is someone else.", "someone else"),
    ],
)
def test_extract_number_words(text, expected):
    assert extract_answer(text) == expected


def test_number_words_outside_answer_contexts_are_not_numbers():
    # the last-number fallback reads digits only: a word in prose is not a number
    assert extract_answer("I have seven cats and 3 dogs") == "3"
    assert extract_answer("one way or another", fallback_last_number=True) is None


@pytest.mark.parametrize(
    "gold, pred",
    [
        (r"\frac{1}{3}", "0.333..."), (r"\frac{1}{3}", r"0.\overline{3}"), ("1/3", r"0.333\ldots"),
        ("1/3", "0.3333..."), (r"0.\overline{3}", "0.333..."), ("1/6", r"0.1\overline{6}"), ("1/6", "0.1666..."),
        ("1/7", r"0.\overline{142857}"), ("1/7", "0.142857142857..."), ("2/3", "0.666..."), ("2/3", "0.667..."),
        (r"\pi", "3.14159..."), (r"1\frac{1}{3}", "1.333..."), ("100/3 %", "33.333...%"), ("1", r"0.\overline{9}"),
        ("-1/3", "-0.333..."), ("9", "nine"), ("21", "twenty-one"),
    ],
)
def test_repeating_decimals_and_number_words_equivalent(gold, pred):
    assert answers_equivalent(gold, pred) is True
    assert answers_equivalent(pred, gold) is True


@pytest.mark.parametrize(
    "gold, pred",
    [
        ("0.333", "0.333..."), ("0.3334", "0.333..."), ("1/3", "0.334..."), ("0.5", "0.5..."), ("1/4", "0.25..."),
        (r"\frac{1}{3}", r"0.\overline{4}"), ("1/6", r"0.\overline{16}"), (r"\pi", "3.15..."),
        # currency units differ: dollars against cents
        (r"\$5", "5 cents"), ("$5", "5¢"), ("5 dollars", "5 cents"), (r"\$5", "€5"),
        # undefined values equal nothing, not even themselves
        ("0/0", "0/0"), ("0/0", r"\frac{0}{0}"), ("1/0", "1/0"), ("0/0", "1"), ("0/0", "0"), (r"\frac{0}{0}", r"\frac{0}{0}"),
    ],
)
def test_repeating_currency_undefined_not_equivalent(gold, pred):
    assert answers_equivalent(gold, pred) is False
    assert answers_equivalent(pred, gold) is False


@pytest.mark.parametrize(
    "gold, pred",
    [(r"\$0.05", "5 cents"), ("$5", "500 cents"), ("5 cents", "5¢"), ("5", "5 cents"), ("5", r"\$5"), (r"\$5", "5 dollars")],
)
def test_currency_same_amount_equivalent(gold, pred):
    assert answers_equivalent(gold, pred) is True
    assert answers_equivalent(pred, gold) is True


def test_extracted_model_styles_compare():
    assert answers_equivalent("12", extract_answer("Final Answer: The final answer is $12$. I hope it is correct."))
    assert answers_equivalent(r"\frac{1}{3}", extract_answer("The answer is 0.333..."))
    assert answers_equivalent("9", extract_answer("The answer is nine."))
    assert not answers_equivalent("0.333", extract_answer("The answer is 0.333..."))


def test_is_correct_is_extraction_then_equivalence():
    from verifiers import is_correct

    assert is_correct("12", "So 3 * 4 = 12.\nThe answer is 12 because 3 * 4 = 12.")
    assert is_correct("0.5", "#### 1/2")
    assert not is_correct("12", "The answer is 13.")
    assert not is_correct("12", "I do not know")   # nothing to extract is not correct


@pytest.mark.parametrize(
    "gold, pred, expected",
    [
        # The same word is the same answer, whatever its case; yes/no words are not products.
        ("yes", "Yes", True), ("no", "No", True), ("Bob", "bob", True), ("True", "true", True),
        ("no", "on", False), ("yes", "ye s", False), ("ab", "ba", True),
        # A vulgar fraction right after a digit is a mixed number.
        ("2.5", "2½", True), ("3.25", "3¼", True), ("10.5", "2½", False), ("21/2", "2½", False),
    ],
)
def test_word_answers_and_mixed_unicode_fractions(gold, pred, expected):
    assert answers_equivalent(gold, pred) is expected
    assert answers_equivalent(pred, gold) is expected


@pytest.mark.parametrize(
    "gold, text",
    [
        ("18", "The answer is 12 + 6 = 18."),
        ("42", "The answer is about 42."),
        ("18", "The answer is 18 in total."),
        ("18", "The answer is a total of 18 apples."),
        ("18", "The answer is 18 students in all."),
        ("1000000", "The answer is 1 million."),
        ("1500000", "The answer is 1.5 million dollars."),
    ],
)
def test_answer_sentences_with_a_computation_a_hedge_or_a_scale_word(gold, text):
    from verifiers import is_correct

    assert is_correct(gold, text) is True
    assert is_correct(str(int(gold) + 1), text) is False


def test_an_empty_box_is_no_answer():
    assert extract_answer(r"\boxed{}") is None


@pytest.mark.parametrize("gold, pred", [
    ("32", "3:2"), ("12", "1:2"), ("230", "2:30"), ("1030", "10:30"), ("2021", "20:21"),
    ("120050", r"\$1{,}200.50"), ("314", r"3{.}14"), ("123", "1.2.3"),
])
def test_digits_that_did_not_parse_are_not_a_number_without_its_separators(gold, pred):
    """A ratio, a time or a LaTeX-spaced amount that does not parse as a number is never equal to
    the number its digits spell with the separators dropped (3:2 is not 32)."""
    assert not answers_equivalent(gold, pred)
    assert not answers_equivalent(pred, gold)


@pytest.mark.parametrize("gold, pred", [
    ("1200.5", r"\$1{,}200.50"), ("1200", r"1{,}200.00"), ("1200.5", r"1{,}200.5"), ("3.14", r"3{.}14"),
    ("3:2", "3:2"), ("10:30", "10:30."),
])
def test_latex_spaced_separators_inside_numbers(gold, pred):
    assert answers_equivalent(gold, pred)


def test_a_latex_mixed_number_with_a_space_before_frac():
    assert answers_equivalent("2.5", r"2 \frac{1}{2}")
    assert not answers_equivalent("1", r"2 \frac{1}{2}")


@pytest.mark.parametrize("text, expected", [
    (r"So the total is \frac{45}{4}.", r"\frac{45}{4}"),
    ("She needs 9 3/4 cups in total.", "9 3/4"),
    (r"So she uses 2 \frac{1}{2} cups.", r"2 \frac{1}{2}"),
    (r"That leaves -\dfrac{3}{8} of it.", r"-\dfrac{3}{8}"),
    ("It is 1 / 2 of them.", "1/2"),
    ("He pays 1,000 dollars.", "1,000"),
])
def test_the_last_number_fallback_takes_a_whole_fraction_or_mixed_number(text, expected):
    assert extract_answer(text) == expected


def test_a_correct_mixed_number_as_the_last_step_is_correct():
    from verifiers import verify_solution

    assert verify_solution("q", ["She needs 9 3/4 cups in total."], reference="9 3/4").first_wrong == -1


@pytest.mark.parametrize("gold, text", [
    ("45", "The answer is 45 (3 packs of 15)."), ("12", "The answer is 12 (rounded)."),
    ("7", "The answer is 7 (we checked it twice)."),
])
def test_a_remark_in_parentheses_after_the_answer(gold, text):
    assert answers_equivalent(gold, extract_answer(text))


@pytest.mark.parametrize("gold, pred, expected", [
    ("12", "12 (eggs)", True), ("2", r"2 (\sqrt{3})", False), ("5", "5 (x+1)", False), ("3", "3 (mod 5)", True),
])
def test_a_remark_in_parentheses_is_not_part_of_the_value(gold, pred, expected):
    assert answers_equivalent(gold, pred) is expected


@pytest.mark.parametrize("gold, pred, expected", [
    ("2.5", "2-1/2", True), ("5/2", "2-1/2 cups", True), (r"6\frac{1}{2}", "6-1/2", True), ("-2.5", "-2-1/2", True),
    ("1.5", "2-1/2", False), (r"5\frac{1}{2}", "6-1/2", False),
    ("1", "2-3/3", True), ("2-x/2", "2-x/2", True), ("x - 1/2", "x-1/2", True),
])
def test_a_recipe_style_hyphenated_mixed_number_is_one_value(gold, pred, expected):
    # A final answer "2-1/2" is 2 1/2 (recipes, measures); read as 2 - 1/2 it made 1.5 a right
    # answer and 2.5 a wrong one. An improper fraction (2-3/3) stays a subtraction.
    assert answers_equivalent(gold, pred) is expected
    assert answers_equivalent(pred, gold) is expected


@pytest.mark.parametrize("text, expected", [
    ("So the total is 4{,}698.69.", "4{,}698.69"), ("So the total is 3{,}288 (in dollars).", "3{,}288"),
    ("That makes 3{.}5 of them.", "3{.}5"),
])
def test_the_last_number_fallback_keeps_latex_braced_separators(text, expected):
    # It cut "4{,}698.69" to 698.69: a wrong True for 698.69, a wrong False for 4698.69.
    from verifiers import is_correct

    assert extract_answer(text) == expected
    plain = expected.replace("{,}", "").replace("{.}", ".")
    assert is_correct(plain, text)
    assert "{,}" not in expected or not is_correct(expected.split("{,}")[-1], text)


@pytest.mark.parametrize("gold, pred, expected", [
    ("865", "USD 865", True), (r"\$865", "USD 865", True), ("865 USD", "usd 865", True), ("1,200.50", "EUR 1,200.50", True),
    ("€865", "USD 865", False), ("866", "USD 865", False),
])
def test_a_currency_code_before_the_number(gold, pred, expected):
    # "865 USD" was read, "USD 865" was not (a false alarm on a right answer).
    assert answers_equivalent(gold, pred) is expected
    assert answers_equivalent(pred, gold) is expected
