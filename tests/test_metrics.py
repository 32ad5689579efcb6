"""Calibration table: bins of predicted probability with the observed share of correct steps."""

import pytest

from prm.metrics import calibration_table


def test_calibration_bins_hold_their_scores_and_observed_rates():
    scores = [0.05, 0.15, 0.12, 0.55, 0.95, 0.99, 1.0]
    labels = [0, 0, 1, 1, 1, 1, 0]
    rows = calibration_table(scores, labels, bins=5)
    assert [row["count"] for row in rows] == [3, 0, 1, 0, 3]
    assert rows[0]["mean_score"] == pytest.approx((0.05 + 0.15 + 0.12) / 3)
    assert rows[0]["observed"] == pytest.approx(1 / 3)
    assert rows[4]["observed"] == pytest.approx(2 / 3)  # 1.0 falls in the last bin
    assert rows[1]["observed"] is None
    assert [row["low"] for row in rows] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])


def test_expected_calibration_error_is_the_weighted_gap():
    from prm.metrics import expected_calibration_error

    rows = calibration_table([0.1, 0.1, 0.9, 0.9], [0, 0, 1, 1], bins=10)
    assert expected_calibration_error(rows) == pytest.approx(0.1)


def test_step_auc_of_no_scores_is_nan_like_a_single_class():
    from prm.metrics import step_auc

    assert step_auc([], []) != step_auc([], [])
    assert step_auc([0.2, 0.9], [1, 1]) != step_auc([0.2, 0.9], [1, 1])
    assert step_auc([0.2, 0.9], [0, 1]) == 1.0
