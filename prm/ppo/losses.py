"""The PPO objective: clipped policy loss, clipped value loss, KL loss, entropy. Tensors [B, T]."""

from __future__ import annotations

import torch

from prm.ppo.advantages import masked_mean
from prm.ppo.rewards import LOSS_KL_ESTIMATORS, kl_estimate


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token]: logits [B, T, V], tokens [B, T] -> [B, T]."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each next-token distribution: [B, T, V] -> [B, T]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate: -min(ratio * A, clip(ratio, 1 +- eps) * A), token mean.

    Returns (loss, stats) with the clip fraction and the approximate KL
    KL(old || new) ~ E_old[(ratio - 1) - log ratio] (the k3 estimator, ratio = new / old).
    """
    log_ratio = logprobs - old_logprobs
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clip_fraction": masked_mean((clipped > unclipped).float(), mask).item(),
            "approx_kl": masked_mean(torch.expm1(log_ratio) - log_ratio, mask).item(),
        }
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip_range: float) -> torch.Tensor:
    """0.5 * max((V - R)^2, (V_clipped - R)^2) with V kept within clip_range of the old value."""
    clipped = old_values + (values - old_values).clamp(-clip_range, clip_range)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def kl_loss(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Token mean of a KL estimate to the reference, to add (times beta) to the policy loss.

    The gradient flows through `logprobs` (the current policy's log-probs of the sampled
    tokens). k3 = exp(ref - logp) - (ref - logp) - 1 as in GRPO and OpenRLHF (expected
    gradient grad KL(ref || pi)); k2 = (logp - ref)^2 / 2 (expected gradient grad KL(pi || ref)).
    k1 is refused: its expected gradient as a loss is 0 (it belongs in the reward).
    """
    if estimator not in LOSS_KL_ESTIMATORS:
        raise ValueError(f"KL loss estimator must be one of {LOSS_KL_ESTIMATORS}, got {estimator!r} "
                         "(k1 works only as a reward penalty)")
    return masked_mean(kl_estimate(logprobs, ref_logprobs, estimator), mask)
