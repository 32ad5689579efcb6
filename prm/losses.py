"""Losses for step (PRM), outcome (ORM) and pairwise (Bradley-Terry) reward models.

All take logits (log-odds or rewards), never probabilities, and labels as floats: a soft label
0.3 stays 0.3. ``reduction="sum"`` lets the training loop divide by the number of labelled
items over all processes and accumulation steps, so the loss does not depend on how a global
batch is split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        return values.sum() / max(values.numel(), 1)
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def step_bce_loss(step_logits: torch.Tensor, step_labels: torch.Tensor, step_mask: torch.Tensor, *,
                  weights: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Per-step binary cross-entropy on hard or soft labels.

    step_logits [B, T]: log-odds at each token. step_labels [B, T] float in [0, 1] (read only where
    step_mask is True). step_mask [B, T] bool: the label positions (each step's last separator
    token). Steps after a solution's first wrong one (`--first_wrong_only`) are left out per
    solution before batching (`drop_labels_after_first_wrong`): a row may hold several solutions.
    weights [B, T] float: how many steps a position stands for (a step prefix shared by k
    sequences, with the mean of their labels: BCE is linear in the label, so this equals k
    separate terms). Returns a scalar ("mean" over the weighted steps, or "sum"), or [N] per
    position with "none".
    """
    logits = step_logits[step_mask].float()
    labels = step_labels[step_mask].to(logits.dtype)
    losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    if weights is None:
        return _reduce(losses, reduction)
    losses = losses * weights[step_mask].to(losses.dtype)
    if reduction == "mean":
        return losses.sum() / weights[step_mask].sum().clamp(min=1e-12)
    return _reduce(losses, reduction)


def token_lm_loss(lm_logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, *,
                  reduction: str = "mean") -> torch.Tensor:
    """Weighted next-token cross-entropy: the auxiliary LM loss on correct steps.

    lm_logits [M, V] (read at the M target positions), targets [M] long, weights [M] float (how
    many sequences a shared position stands for). Teaching the reward model to write correct
    steps gives it the expected value of a step, which the step head then compares with the
    written one (GenRM's joint SFT loss). Returns a scalar ("mean" over the weights, or "sum").
    """
    losses = F.cross_entropy(lm_logits.float(), targets, reduction="none") * weights.float()
    if reduction == "mean":
        return losses.sum() / weights.sum().clamp(min=1e-12)
    return _reduce(losses, reduction)


def outcome_bce_loss(outcome_logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Pointwise ORM loss. outcome_logits [N] (already read at each solution's end), labels [N] float."""
    logits = outcome_logits.float()
    return _reduce(F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none"), reduction)


def pairwise_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, margin: torch.Tensor | None = None, *,
                  centering_coef: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """Bradley-Terry loss ``-log sigmoid(r_w - r_l - margin) + coef * (r_w + r_l)^2``.

    chosen_rewards, rejected_rewards [N]; margin [N] or None (Llama 2's preference margin).
    The centring term (coef > 0) keeps rewards near zero mean, so scores from different runs
    stay comparable.
    """
    chosen, rejected = chosen_rewards.float(), rejected_rewards.float()
    difference = chosen - rejected
    if margin is not None:
        difference = difference - margin.to(difference.dtype)
    losses = -F.logsigmoid(difference)
    if centering_coef:
        losses = losses + centering_coef * (chosen + rejected) ** 2
    return _reduce(losses, reduction)
