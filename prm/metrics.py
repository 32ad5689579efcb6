"""Evaluation metrics for step and outcome reward models (plain Python / torch, no sklearn).

Labels may be soft; a label counts as "correct" when it is >= 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _hard(labels: Sequence[float]) -> list[bool]:
    return [float(label) >= 0.5 for label in labels]


def step_accuracy(probabilities: Sequence[float], labels: Sequence[float], threshold: float = 0.5) -> float:
    """Share of steps whose prediction (p >= threshold) matches the (hardened) label."""
    if not labels:
        return float("nan")
    hits = sum((p >= threshold) == y for p, y in zip(probabilities, _hard(labels)))
    return hits / len(labels)


def step_auc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """ROC AUC of scores for "step is correct" (Mann-Whitney U, ties count half).

    nan when only one class (or no score) is present.
    """
    hard = torch.tensor(_hard(labels), dtype=torch.bool)
    values = torch.tensor([float(s) for s in scores], dtype=torch.float64)
    positives, negatives = int(hard.sum()), int((~hard).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = torch.argsort(values)
    sorted_values = values[order]
    ranks = torch.empty_like(values)
    ranks[order] = torch.arange(1, len(values) + 1, dtype=torch.float64)
    # Average the ranks of tied scores.
    unique, inverse, counts = torch.unique(sorted_values, return_inverse=True, return_counts=True)
    if len(unique) < len(values):
        rank_sums = torch.zeros(len(unique), dtype=torch.float64).index_add_(0, inverse, ranks[order])
        ranks[order] = (rank_sums / counts)[inverse]
    u = ranks[hard].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def first_wrong_index(values: Sequence[float], threshold: float = 0.5) -> int:
    """Index of the first value below threshold, -1 if none (labels or predicted probabilities)."""
    for index, value in enumerate(values):
        if float(value) < threshold:
            return index
    return -1


def processbench_f1(step_probabilities: Sequence[Sequence[float]], step_labels: Sequence[Sequence[float]],
                    threshold: float = 0.5) -> dict[str, float]:
    """ProcessBench: find the first wrong step of every solution.

    target = index of the first step labelled wrong (-1 if none); prediction = first step with
    p < threshold (-1 if none). Returns accuracy on erroneous solutions, on correct solutions,
    and F1 = their harmonic mean (0 when either is 0; nan when a kind is missing).
    """
    erroneous, correct = [], []
    for probabilities, labels in zip(step_probabilities, step_labels):
        target = first_wrong_index(labels)
        hit = first_wrong_index(probabilities, threshold) == target
        (correct if target == -1 else erroneous).append(hit)
    error_accuracy = sum(erroneous) / len(erroneous) if erroneous else float("nan")
    correct_accuracy = sum(correct) / len(correct) if correct else float("nan")
    if error_accuracy + correct_accuracy == 0:
        f1 = 0.0
    else:
        f1 = 2 * error_accuracy * correct_accuracy / (error_accuracy + correct_accuracy)
    return {"error_accuracy": error_accuracy, "correct_accuracy": correct_accuracy, "f1": f1}


def pairwise_accuracy(chosen_rewards: Sequence[float], rejected_rewards: Sequence[float]) -> float:
    """Share of pairs where the chosen answer gets the higher reward."""
    if not chosen_rewards:
        return float("nan")
    return sum(c > r for c, r in zip(chosen_rewards, rejected_rewards)) / len(chosen_rewards)


def calibration_table(probabilities: Sequence[float], labels: Sequence[float], bins: int = 10) -> list[dict]:
    """Equal-width probability bins: per bin its range, step count, mean predicted probability and
    the observed share of correct steps (None for an empty bin). A calibrated PRM has
    observed ≈ mean_score in every bin."""
    hard = _hard(labels)
    members: list[list[int]] = [[] for _ in range(bins)]
    for index, p in enumerate(probabilities):
        if not 0.0 <= float(p) <= 1.0:
            # int(p * bins) of a negative score indexes the list from its end: a wrong bin, silently.
            raise ValueError(f"calibration needs probabilities in [0, 1], got {p} (score {index})")
        members[min(int(float(p) * bins), bins - 1)].append(index)
    rows = []
    for b, indices in enumerate(members):
        rows.append({"low": b / bins, "high": (b + 1) / bins, "count": len(indices),
                     "mean_score": sum(float(probabilities[i]) for i in indices) / len(indices) if indices else None,
                     "observed": sum(hard[i] for i in indices) / len(indices) if indices else None})
    return rows


def expected_calibration_error(table: Sequence[dict]) -> float:
    """Count-weighted mean |observed - mean_score| over the bins of `calibration_table`."""
    total = sum(row["count"] for row in table)
    return sum(row["count"] * abs(row["observed"] - row["mean_score"]) for row in table if row["count"]) / max(total, 1)
