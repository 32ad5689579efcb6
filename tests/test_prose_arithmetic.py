"""Prose arithmetic in step claims (issue #12 item 4, issue #15 item 1): "p% of q" is not a unit
label, prose words before a left side are read (twice, sum of, more than, ...) or the claim is
not checked, and the GSM8K false alarms stay unflagged."""

import pytest

from verifiers import check_step, find_claims
from verifiers.labelling import label_steps


@pytest.mark.parametrize("step", ["10% of 50 = 500", "20% of 50 = 1000", "50% of 20 = 1000", "5% of 200 = 1000",
                                  "She pays 10% of $50 = $500", "$50 * 20% = $1000", "20% * 50 = 1000",
                                  "20 percent of 50 = 1000"])
def test_percent_of_is_not_read_as_a_unit_label(step):
    assert check_step(step) is False


@pytest.mark.parametrize("step", ["10% of 50 = 5", "3/4 = 75%", "0.75 = 75%", "(3/4)*100 = 75%", "90/300*100= 30%",
                                  "3 bobby pins / 21 decorations * 100% = 14.28", "1.2 x 100% = 120 inches",
                                  "So, every 1% is equal to $7500/75% = $100.", "He pays 10/100%*$5=$.50 less",
                                  "100 - 15 = 85% of Megan's", "20 percent of 50 = 10"])
def test_a_side_written_as_a_percentage_may_still_be_a_label(step):
    assert check_step(step) is True


TRUE_PROSE = [
    "twice 7 = 14",
    "double 6 = 12",
    "The product of 3 and 4 = 12.",
    "the sum of 3 and 4 = 7",
    "5 less than 20 = 15",
    "3 more than 4 = 7",
    "20% more than 50 = 60",
    "It costs 25% less than 80 = 60",
    "So, twice 7 = 14.",
    "half of 8 = 4",
    "Half of $12 = $6",
    "triple 5 = 15 apples",
    "two-thirds of 9 = 6",
    "a third of 12 = 4 cookies",
    "three times 4 = 12",
    "3 times as many as 4 = 12",
    "twice as many as 7 = 14",
    "the difference between 20 and 5 = 15",
    "the average of 4 and 6 = 5",
    "$5 less than $20 = $15",
    "20 percent more than 50 = 60",
    "She is twice as old as 7 = 14 years",
    "Half of the 36 students = 18 students went home.",
    "Her brother is 3 years older than 9 = 12 years.",
    "The bike is $15 more expensive than $120 = $135.",
    "The pen is 20% cheaper than $2.50 = $2.",
    "She reads 3 times as many pages as 12 = 36 pages.",
]


@pytest.mark.parametrize("step", TRUE_PROSE)
def test_prose_arithmetic_is_read(step):
    assert check_step(step) is True


FALSE_PROSE = [
    "twice 7 = 15",
    "the sum of 3 and 4 = 8",
    "5 less than 20 = 25",
    "double 6 = 13",
    "3 more than 4 = 8",
    "20% more than 50 = 70",
    "It costs 25% less than 80 = 55",
    "half of 8 = 5",
    "The product of 3 and 4 = 7.",
    "Her brother is 3 years younger than 9 = 12 years.",
    "Half of the 36 students = 16 students went home.",
    "6 / 0 = 0",
]


@pytest.mark.parametrize("step", FALSE_PROSE)
def test_wrong_prose_arithmetic_is_false(step):
    assert check_step(step) is False


@pytest.mark.parametrize("step", ["He has 6 sets x every 2 hours = 12 hours.", "twice 7 + 1 = 15",
                                  "3 times more than 4 = 12", "a lot more than 20 = 25",
                                  "she is 5 years older than 20 = 25", "twice the sum of 3 and 4 = 7",
                                  "2 + 1 = 3 more than 1 = 5", "1/0 = ∞", "0/0 = 1/0",
                                  "In 2019 more than 500 = 600 people came", "On day 3 more than 4 = 9 people came",
                                  "2 dozen + 6 = 30", "5 hundred + 3 = 503", "the sum of 2 dozen and 6 = 30"])
def test_prose_that_is_not_read_is_not_false(step):
    assert check_step(step) is not False


@pytest.mark.parametrize("step", ["$50 + 20% = $60", "50 plus 20% = 60", "He gets a 10% raise, so $2000 + 10% = $2200",
                                  "15 minus 20% = 12", "$50 - 20% = $40", "<<50+20%=60>>"])
def test_adding_a_percentage_may_mean_a_percentage_change(step):
    assert check_step(step) is True


@pytest.mark.parametrize("step", ["$50 + 20% = $70", "15 minus 20% = 10", "<<50+20%=70>>"])
def test_a_wrong_percentage_change_is_false(step):
    assert check_step(step) is False


def test_division_by_zero_claimed_equal_to_a_number_is_false():
    assert check_step("6 / 0 = 0") is False
    assert check_step("<<6/0=0>>") is False
    claim = find_claims("6 / 0 = 0")[0]
    assert claim.ok is False and "division by zero" in claim.reason


def test_label_steps_keeps_a_correct_prose_solution_correct():
    steps = ["So, twice 7 = 14.", "Together 7 + 14 = 21.", "The answer is 21"]
    result = label_steps("Tom has 7 apples and Ann twice as many. How many together?", steps, reference="21")
    assert result.labels == [True, True, True]


# Lines of GSM8K train that were flagged False though they are true (benchmarks/data/gsm8k_false_steps.jsonl).
GSM8K_FALSE_ALARMS = [
    "Paige has 100 space stickers that she is dividing among 3 friends, so 100 stickers / 3 friends = 33 stickers "
    "for each friend, with 1 remaining.",
    "In 13 hours this cycle can fit 13 / 6 = 2 full cycles with a remainder of 1 hour",
    "$98 is greater than $75, so Lindsey is given an addition $25 + her original $98 = $<<98+25=123>>123.",
    "In one day the shop is losing 5 thousand dollars, so during three days, the losses are 5 * 3 = $15,000.",
    "A bottle of shampoo lasts her 14 / 1 / 4 = 14 * 4 = 56 washes.",
    "So, she will be able to drink a total of 3 liters after 6 sets x every 2 hours = 12 hours.",
    "If she would have bought the refrigerator on the cash prize, Samantha would have paid $12000- to $8000= "
    "$<<12000-8000=4000>>4000 less.",
    "Subtract Weeks 3-4 from Weeks 1-2 = 96 - 70 = <<96-70=26>>26",
]


@pytest.mark.parametrize("step", GSM8K_FALSE_ALARMS)
def test_gsm8k_false_alarms_are_not_false(step):
    assert check_step(step) is not False


@pytest.mark.parametrize("step", [
    "So it cost 192*100=$1920",
    "From the sale of goats and sheep, Mr. Mathews made $4200+$3000 = $8600",
    "13 / 6 = 3 full cycles with a remainder of 1 hour",  # not the quotient: still false
    "In one day the shop is losing 5 thousand dollars, so during three days, the losses are 5 * 3 = $16,000.",
    "Weeks 3-4 = 96 - 70 = 27",
])
def test_real_errors_stay_false(step):
    assert check_step(step) is False
