"""Prose arithmetic in step claims (issue #12 item 4, issue #15 item 1): "p% of q" is not a unit
label, prose words before a left side are read (twice, sum of, more than, ...) or the claim is
not checked, and the GSM8K false alarms stay unflagged."""

import pytest

from verifiers import check_step


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
