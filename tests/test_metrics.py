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


def test_calibration_refuses_scores_outside_zero_one():
    # int(-0.2 * 10) is -2: a negative score was counted in the 0.8-0.9 bin.
    for score in (-0.2, 1.5, float("nan")):
        with pytest.raises(ValueError, match="probabilit"):
            calibration_table([0.3, score], [1, 0])
    assert calibration_table([0.0, 1.0], [0, 1], bins=4)[0]["count"] == 1


def test_step_auc_counts_tied_scores_half():
    from prm.metrics import step_auc

    # positives 0.5, 0.9; negatives 0.5, 0.2: pairs 0.5 (tie) + 1 + 1 + 1 of 4.
    assert step_auc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == pytest.approx(0.875)
    assert step_auc([0.3, 0.3, 0.3], [1, 0, 1.0]) == pytest.approx(0.5)


def test_processbench_f1_is_the_harmonic_mean_of_the_two_accuracies():
    from prm.metrics import processbench_f1

    # erroneous: first error 1 found at 1, first error 2 found at 2; correct: one found
    # (no step below 0.5), one flagged at step 0.
    result = processbench_f1([[0.9, 0.2, 0.9], [0.9, 0.1, 0.1], [0.9, 0.9], [0.1]],
                             [[1, 0, 1], [1, 1, 0], [1, 1], [1]])
    assert result["error_accuracy"] == 0.5 and result["correct_accuracy"] == 0.5
    assert result["f1"] == pytest.approx(0.5)
    only_correct = processbench_f1([[0.9]], [[1]])
    assert only_correct["correct_accuracy"] == 1.0 and only_correct["f1"] != only_correct["f1"]
