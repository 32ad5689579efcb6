"""Step checking: annotations, prose equations, rounding policy, algebra transitions."""

import json
from pathlib import Path

import pytest

from verifiers import check_step, check_transition, find_claims, verify_solution


@pytest.mark.parametrize(
    "step",
    [
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.",
        "Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.",
        "16 - 3 - 4 = 9",
        "$12 x 5 = $60",
        "48/2 = 24 clips",
        "So 3 + 4 = 7 = 14/2",
        "1/3 = 0.33",
        "2/3 = 0.66...",
        "She has 20% of 50 = 10 apples",
        "Each gets 25 / 1/3 = 75 cups",
        "(75/100)*100 = 75% of the flowers",
        "She pays 7 1/2 * 2 = 15 dollars",
        "<<560//10=56>>",
    ],
)
def test_true_steps(step):
    assert check_step(step) is True


@pytest.mark.parametrize(
    "step",
    [
        "1/4 = 15",
        "Natalia sold 48/2 = <<48/2=25>>25 clips in May.",
        "16 - 3 - 4 = 10",
        "$12 x 5 = $65",
        "100/3 = 33",
        "2/3 = 0.65",
        "So 3 + 4 = 7 = 15",
        "She orders 6 croissants so they cost 6*2.5 = $<<6*3=18>>18",
    ],
)
def test_false_steps(step):
    assert check_step(step) is False


@pytest.mark.parametrize(
    "step",
    [
        "Let x be the number of apples.",
        "x + 2x = 30",
        "1 hour = 60 minutes",
        "It is 6:00 now.",
        "The answer is 18",
        "",
    ],
)
def test_nothing_checkable(step):
    assert check_step(step) is None


def test_approximately_accepts_rounding_to_integers():
    assert check_step("100/3 ≈ 33") is True
    assert check_step("100/3 ≈ 40") is False


def test_claims_report_source_and_reason():
    claims = find_claims("He sold 48/2 = <<48/2=24>>24 clips, then 3 + 4 = 8 more.")
    assert {c.source for c in claims} == {"annotation", "prose"}
    bad = [c for c in claims if c.ok is False]
    assert len(bad) == 1 and "3 + 4" in bad[0].text and bad[0].reason


def test_check_step_never_raises_on_non_strings():
    for value in (None, 5, b"1=1", ["1 = 1"]):
        assert check_step(value) is None


@pytest.mark.parametrize(
    "prev, step, expected",
    [
        ("2x + 3 = 7", "2x = 4", True),
        ("2x + 3 = 7", "2x = 10", False),
        ("Subtract 3 from both sides: 2x + 3 = 7", "So x = 2.", True),
        ("x^2 = 4", "x = 2 or x = -2", True),
        ("x^2 = 4", "x = 3 or x = -3", False),
        ("(x+1)^2", "x^2 + 2x + 1", True),
        ("(x+1)^2", "x^2 + x + 1", False),
        ("y = (x+1)^2", "= x^2 + 2x + 1", True),
        ("y = (x+1)^2", "= x^2 + 1", False),
        ("The sky is blue", "x = 2", None),
    ],
)
def test_check_transition(prev, step, expected):
    assert check_transition(prev, step) is expected


@pytest.mark.parametrize("prev, step", [
    ("Try n = 4.", "Try n = 5."), ("Case 1: x = 1.", "Case 2: x = 2."), ("x = 12", "With tax, x = 12 + 1 = 13"),
    ("The cost is c = 3 x 4 = 12 dollars.", "After tax the cost is c = 12 + 1 = 13 dollars."),
    ("x = 4", "2x = 10"), ("If x = 9, then 2x = 18.", "If x = 11, then 2x = 22."),
    ("For t = 3: 3t = 9.", "For t = 12: 3t = 36."),
])
def test_a_new_value_after_a_plain_assignment_is_not_a_wrong_rewrite(prev, step):
    """`v = 4` has no algebra to rewrite: a later value of v (a new case, a trial, a running
    total) is a new statement the checker cannot refute, so None, never False."""
    assert check_transition(prev, step) is None


def test_a_running_total_is_not_labelled_wrong():
    from verifiers.labelling import label_steps

    steps = ["Let t be the total. t = 18", "After 3 more arrive, t = 18 + 3 = 21", "The answer is 21."]
    assert label_steps("q", steps, reference="21").labels == [True, True, True]


def test_verify_solution_finds_first_wrong_step():
    steps = ["3 + 4 = 7", "7 * 2 = 15", "15 - 1 = 14", "The answer is 14"]
    verdict = verify_solution("q", steps, reference="13")
    assert verdict.first_wrong == 1
    assert verdict.steps[0].ok is True and verdict.steps[1].ok is False
    assert "7 * 2" in verdict.steps[1].reason
    assert verdict.steps[-1].ok is False and verdict.answer_correct is False


def test_verify_solution_algebra_and_reference():
    steps = ["2x + 3 = 7", "2x = 4", "x = 2", "The answer is 2"]
    verdict = verify_solution("Solve 2x + 3 = 7", steps, reference="2")
    assert verdict.first_wrong == -1 and verdict.answer_correct is True
    wrong = verify_solution("Solve 2x + 3 = 7", ["2x + 3 = 7", "2x = 10", "x = 5", "The answer is 5"], "2")
    assert wrong.first_wrong == 1


GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"


@pytest.mark.skipif(not GSM8K.exists(), reason="GSM8K data not present")
def test_gsm8k_annotations_sample_all_true():
    # A slice of the real data; the full run is in benchmarks/verifiers.py.
    lines = GSM8K.read_text().splitlines()[:300]
    for line in lines:
        for claim in find_claims(json.loads(line)["answer"]):
            if claim.source == "annotation":
                assert claim.ok is True, claim


def test_truncation_is_less_than_one_unit_of_the_last_decimal():
    # 0.2 cut after one decimal is 0.2, never 0.1: a whole unit off is a false claim.
    assert check_step("<<1/5=0.1>>") is False
    assert check_step("7/35 = 0.1") is False
    assert check_step("2/3 = 0.66") is True      # truncated
    assert check_step("2/3 = 0.67") is True      # rounded


# A step that states a new equation or expression (a new unknown, a derivative, a consequence)
# is not a rewrite of the previous one: the checker cannot refute it, so it says None, or True
# where the previous step's solutions satisfy it. Before, every one of these was False and
# corrupted the labels of the whole solution.
@pytest.mark.parametrize(
    "prev, step, expected",
    [
        ("x = 4", "y = 8", None),
        ("x + y = 10", "x - y = 2", None),
        ("Expression: x^2 + 2x", "Derivative: 2x + 2", None),
        ("Area: l * w", "Perimeter: 2l + 2w", None),
        ("x = 3", "x^2 = 9", True),
        ("n = 10", "The sum is n(n+1)/2 = 55", True),
        ("x^2 = 4", "x = 2", None),
        ("x + y = 10", "y = 10 - x", True),
        ("x = 3", "x = 5", None),  # a new value after a plain assignment (a case, a trial)
        ("x^2 = 4", "x = 2 or x = 3", False),
    ],
)
def test_a_new_equation_is_not_a_false_rewrite(prev, step, expected):
    assert check_transition(prev, step) is expected


def test_a_solution_that_introduces_a_second_unknown_is_labelled_true():
    steps = ["Let x be the number of cats, so x + 2 = 6.", "So x = 4.", "The dogs number y = 2 * 4 = 8.",
             "The answer is 8"]
    assert verify_solution("q", steps, "8").first_wrong == -1
    derivative = ["Differentiate: x^3 + x", "Derivative: 3x^2 + 1", "The answer is 3x^2 + 1"]
    assert verify_solution("d/dx of x^3 + x?", derivative, "3x^2 + 1").first_wrong == -1


@pytest.mark.parametrize(
    "step, expected",
    [
        # A Markdown list marker is not a minus sign.
        ("- 2 + 2 = 4", True),
        ("- 3 * 4 = 12", True),
        ("Costs:\n- 3 * 4 = 12\n- 2 * 5 = 10", True),
        ("Costs:\n- 3 * 4 = 13", False),
        ("* 3 * 4 = 12", True),
        ("-3 + 5 = 2", True),
        # Truncated decimals as Python prints them (the same double as the exact value).
        ("2/3 = 0.6666666666666666", True),
        ("1/6 = 0.16666666666666666", True),
        ("1/7 = 0.14285714285714285", True),
        ("<<1/6=0.16666666666666666>>", True),
        ("1/7 = 0.14285714285714", True),
        ("1/7 = 0.14285714285715", False),
        ("1/7 = 0.14285714285716", False),
        # A fraction written as a percentage of itself is the classic slip, not a unit label.
        ("The ratio is 1/4 = 0.25%", False),
        ("5/100 = 0.05%", False),
        ("75% = 0.75%", False),
        ("(3/4)*100 = 75%", True),
        ("50 - 20 = 30%", True),
        ("The rate is 0.005 * 100 = 0.5%", True),
        # A spaced colon between numbers is a ratio or a division, not the end of a label.
        ("The ratio is 3 : 4 = 6 : 8", None),
        ("6 : 2 = 3", None),
        ("Step 1: 3 + 4 = 7", True),
        ("Step 1: 3 + 4 = 8", False),
        # Words that change a value are not unit words.
        ("2 * 2 = 2 squared", None),
        ("The area is 5 * 5 = 5 squared", None),
        ("3 * 3 * 3 = 3 cubed", None),
    ],
)
def test_prose_arithmetic_review_cases(step, expected):
    assert check_step(step) is expected


@pytest.mark.parametrize("step", [
    "Total = 3 × 12 = 36 (3 packs)", "4 x 3 = 12 (4 x 3)", "8 x 8 = 64 (2)", "6 x 11 = 66 (11 x 6)",
    "5 @ $2 = $10", "2 items @ 13 = 26",
    "20 / 6 = 4 boxes (rounded up)", "22 / 5 ≈ 5 buses (rounding up)", "50/8 ≈ 7 buses, rounding up",
    "Step 4 - 10 + 12 = 22", "Step 12 - 19 x 11 = 209",
    r"1 \frac{1}{2} + 1 \frac{1}{2} = 3", r"3 \frac{5}{8} + 1 \frac{1}{8} = 4 \frac{3}{4}",
])
def test_true_steps_in_forms_a_random_review_found_false(step):
    """A note in parentheses after the result, `@` for "at", an explicit round-up, a `Step k -`
    heading, a LaTeX mixed number with a space before \\frac: true steps, never False."""
    assert check_step(step) is not False


@pytest.mark.parametrize("step", [
    "Total = 3 × 12 = 35 (3 packs)", "8 x 8 = 65 (2)", "20 / 6 = 5 boxes (rounded up)",
    r"1 \frac{1}{2} + 1 \frac{1}{2} = 4",
])
def test_the_same_forms_with_a_wrong_result_are_false(step):
    assert check_step(step) is False


@pytest.mark.parametrize("step", ["π × 5^2 = 3.14 × 25 = 78.5", "π × 10^2 = 3.14 × 100 = 314",
                                  r"\pi \times 7^2 = 22/7 \times 49 = 154", "2π × 3 = 6 × 3.1416 = 18.85"])
def test_pi_replaced_by_its_value_in_a_chain_is_not_false(step):
    assert check_step(step) is not False


def test_a_wrong_result_after_pi_is_replaced_is_still_false():
    assert check_step("π × 5^2 = 3.14 × 25 = 80.5") is False


@pytest.mark.parametrize("step", ["2-1/2 cups + 1-1/2 cups = 4 cups", "6-1/2 = 6.5",
                                  "She used 2-1/2 cups of flour, and 2-1/2 x 2 = 5 cups.", "5-1/2 = 4.5"])
def test_a_hyphenated_mixed_number_is_read_both_ways(step):
    """Recipe-style 2-1/2 is 2½ or 2 - ½: a step true either way is not False."""
    assert check_step(step) is not False


def test_a_hyphenated_mixed_number_false_both_ways_is_false():
    assert check_step("2-1/2 cups + 1-1/2 cups = 5 cups") is False


@pytest.mark.parametrize("prev, step", [("15h = 60", "h = 4 h"), ("3m = 12", "m = 4 m"), ("5s = 20", "s = 4 s")])
def test_a_unit_letter_that_is_also_the_variable(prev, step):
    """`h = 4 h` gives the value 4 with its unit h, not the equation h = 4h."""
    assert check_transition(prev, step) is not False


@pytest.mark.parametrize("step, expected", [("121'599 + 9'369 = 130'968", True), ("1 × 10^3 = 1'000", True),
                                            ("121'599 + 9'369 = 130'969", False)])
def test_an_apostrophe_thousands_separator(step, expected):
    assert check_step(step) is expected


@pytest.mark.parametrize(
    "step, expected",
    [
        # Two equations on two lines of one step (a paragraph, `--step_style paragraphs`): the
        # line break ran "36" into "(36 + 4)" as one product, so a true step was False, and
        # "8" into "8 - 2" as nothing readable, so a false one was None.
        ("12 * 3 = 36\n(36 + 4) / 2 = 20", True),
        ("3 + 4 = 8\n8 - 2 = 6", False),
        ("3 + 4 = 7\n7 - 2 = 6", False),
        ("1 + 2 + 3 = 6\n4 + 5 = 9", True),
        ("48/2 = 24\n24 + 48 = 72", True),
        ("x = 8\n2x = 16", None),
        ("5% of 200 = 10\n10 + 5 = 15", True),
        # A line that starts with an operator or "=" continues the expression above it.
        ("Total = 3 + 4 + 5\n+ 6 = 18", True),
        ("x = 3 + 4\n= 7", True),
        ("x = 3 +\n4 = 7", True),
        ("$$\n3 + 4\n= 8\n$$", False),
    ],
)
def test_a_line_break_between_two_operands_ends_the_claim(step, expected):
    assert check_step(step) is expected


@pytest.mark.parametrize("step", ["x_1 = 3", "a_{10} = 5", "$a_5 = 17$", "S_4 = 30", "p_1 = 0.3", "r_1 = 2 and r_2 = 3",
                                  "x_1 + x_2 = 5", "The roots are x_1 = 2 and x_2 = 3", "log10(100) = 2",
                                  "\\log_2 8 = 3", "log_2 8 = 3"])
def test_a_subscripted_or_based_name_is_never_a_false_claim(step):
    # "x_1 = 3" was read as the claim "1 = 3" (the letter and underscore dropped as prose), and
    # log10(100) as log(10 * 100): true MATH-style steps labelled False, and every later step too.
    assert check_step(step) is not False


def test_words_joined_by_an_underscore_are_still_prose_around_a_checked_claim():
    assert check_step("total_cost = 5 * 3 = 15") is True
    assert check_step("total_cost = 5 * 3 = 16") is False


@pytest.mark.parametrize(
    "prev, step",
    [
        ("\\log_2 x = 3", "x = 8"),
        ("log_2 x = 3", "x = 8"),
        ("log2(x) = 3", "x = 8"),
        ("x - 2 = 3", "x - 2 = -3"),  # the second case of |x - 2| = 3
        ("|x - 2| = 3 gives x - 2 = 3", "or x - 2 = -3"),
        ("x - 2 = 3 or x - 2 = -3", "x = 5"),  # one branch worked out
        ("The sum 1 + 2 + ... + n = n(n+1)/2", "For n = 10 this is 55"),
        ("(x + 1)^2 = x^2 + 2x + 1", "x = 3"),
    ],
)
def test_a_case_a_branch_or_an_instance_is_not_a_wrong_rewrite(prev, step):
    assert check_transition(prev, step) is not False


def test_a_solution_with_subscripts_and_a_log_is_not_labelled_wrong():
    from verifiers.labelling import label_steps

    labels = label_steps("Find the sum of the roots.", ["The roots are x_1 = 2 and x_2 = 3", "x_1 + x_2 = 5",
                                                            "The answer is 5"], reference="5").labels
    assert False not in labels
    labels = label_steps("Solve log_2 x = 3, then add 1.", ["\\log_2 x = 3", "x = 2^3 = 8", "8 + 1 = 9",
                                                                "The answer is 9"], reference="9").labels
    assert False not in labels
