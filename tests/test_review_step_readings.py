"""True steps that the step checker called False (a review's adversarial probes): a rounded
percentage after a factor 100, "and" between a result and a fraction, a left side cut at a LaTeX
command or a decimal point, a logarithm without its base, trigonometry in degrees. A claim true
under one common reading is never False; one false under every reading still is."""

import pytest

from verifiers import check_step
from verifiers.labelling import label_steps


@pytest.mark.parametrize("step", ["1/3 * 100 = 33.33%", "(2/3)*100 = 66.67%", "(1/3)*100 = 33.3%",
                                  "The percentage is 5/15 * 100 = 33.33%", "3/21 * 100 = 14.29%",
                                  "3/21 * 100 = 14.28%"])
def test_a_rounded_percentage_after_a_factor_100_is_true(step):
    assert check_step(step) is True


@pytest.mark.parametrize("step", ["1/3 * 100 = 34.33%", "(2/3)*100 = 66.5%", "1/3 * 100 = 0.33%"])
def test_a_wrong_percentage_after_a_factor_100_is_still_false(step):
    assert check_step(step) is False


@pytest.mark.parametrize("step", ["So 5 * 2 = 10 and 1/2 of 10 = 5.", "Adding, 4 + 6 = 10 and 1/5 of 10 = 2",
                                  "So 3 + 2 = 5 and 2/5 = 0.4", "20% of 50 = 10 and 3/4 of 8 = 6"])
def test_and_between_a_result_and_a_fraction_is_not_a_false_mixed_number(step):
    assert check_step(step) is not False


@pytest.mark.parametrize("step", ["She ran 3 and 1/4 miles, so 3 and 1/4 * 4 = 13", "1 and 1/4 + 1 = 2 1/4",
                                  "5/2 = 2 and 1/2 = 2.5"])
def test_a_mixed_number_with_and_is_still_read(step):
    assert check_step(step) is True


def test_a_mixed_number_with_and_false_both_ways_is_false():
    assert check_step("1 and 1/4 + 1 = 3") is False


@pytest.mark.parametrize("step", ["$7 \\mod 3 = 1$", "$7 \\bmod 3 = 1$", "$0.\\overline{3} = \\frac{1}{3}$",
                                  "0.(3) = 1/3", "$0.1\\overline{6} = \\frac{1}{6}$"])
def test_a_left_side_cut_at_a_command_or_a_decimal_point_is_not_false(step):
    # "7 \mod 3 = 1" was the false claim "3 = 1", "0.\overline{3} = 1/3" the false "{3} = 1/3".
    assert check_step(step) is not False


def test_a_claim_after_a_connective_command_is_still_checked():
    assert check_step("$x = 2 \\Rightarrow 3 + 4 = 8$") is False
    assert check_step("$\\therefore 3 + 4 = 7$") is True


@pytest.mark.parametrize("step", ["log(100) = 2", "log 1000 = 3", "$\\log 100 = 2$", "$\\log 10 = 1$",
                                  "\\log(8) / \\log(2) = 3"])
def test_a_logarithm_without_a_base_may_be_common(step):
    assert check_step(step) is True


@pytest.mark.parametrize("step", ["log(100) = 5", "ln(100) = 2"])
def test_a_logarithm_false_in_every_base_is_false(step):
    assert check_step(step) is False


@pytest.mark.parametrize("step", ["$\\sin(30°) = 0.5$", "$\\sin 30^\\circ = \\frac{1}{2}$", "cos 60° = 1/2",
                                  "tan(45°) = 1", "$\\sin(\\pi/6) = 1/2$", "$30^\\circ = \\frac{\\pi}{6}$",
                                  "\\arcsin(0.5) = 30°", "$\\cos 0 = 1$"])
def test_trigonometry_in_degrees(step):
    assert check_step(step) is True


@pytest.mark.parametrize("step", ["cos 60° = 0.6", "$\\sin 30^\\circ = \\frac{1}{3}$", "tan(45°) = 2"])
def test_wrong_trigonometry_in_degrees_is_false(step):
    assert check_step(step) is False


def test_a_degree_solution_is_not_labelled_wrong():
    steps = ["In the right triangle, the side opposite 30° is half the hypotenuse.",
             "$\\sin 30^\\circ = \\frac{1}{2}$, so the side is $\\frac{1}{2} \\cdot 10 = 5$.", "The answer is 5"]
    assert False not in label_steps("Find the side.", steps, reference="5").labels


@pytest.mark.parametrize("step", ["3 + 4 = 8 and 2 5", "3 + 4 = 8 and 2"])
def test_a_false_claim_before_and_at_the_end_of_a_step_stays_false(step):
    assert check_step(step) is False


@pytest.mark.parametrize("step", ["3 * 4 = 12 * 2 = 24", "4 + 4 = 8 + 2 = 10", "He pays $5 * 3 = $15 + $2 = $17.",
                                  "So 20 - 5 = 15 / 3 = 5 boxes"])
def test_a_running_total_written_as_a_chain_is_not_false(step):
    # "3 * 4 = 12 * 2 = 24" is false read link by link, but it is how people write "3 * 4 = 12,
    # then 12 * 2 = 24": a true step must not become a false training label.
    assert check_step(step) is True


@pytest.mark.parametrize("step", ["3 * 4 = 13 * 2 = 26", "3 * 4 = 12 * 2 = 25", "4 + 4 = 9 + 2 = 11",
                                  "3 * 4 = 12 * 2"])
def test_a_chain_with_a_false_link_is_still_false(step):
    assert check_step(step) is False
