"""Advantages for PPO: token-level GAE with a critic, or group baselines without one.

All tensors are [B, T] with `mask` [B, T] (1 on response tokens, 0 on padding); rows are
right-padded, so a row's response tokens come first.
"""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(values - mean) / std over the masked entries, or values / std with `shift_mean=False`;
    padding comes back as 0. Shapes: any, `mask` like `values`.

    Rewards are rescaled without the shift: subtracting the mean would turn every
    below-average reward (a good step scored 0.9 among many 0.9s and a few 1.9s) into a
    penalty, so longer correct solutions would earn less. (TRL's shift_mean=False adds the
    mean back after centring, which still flips signs when the std is small.)
    """
    mean = masked_mean(values, mask)
    scale = torch.rsqrt(masked_mean((values - mean) ** 2, mask) + 1e-8)
    whitened = (values - mean) * scale if shift_mean else values * scale
    return whitened * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over tokens.

    delta_t = r_t + gamma * V_{t+1} - V_t (V after the last response token is 0),
    A_t = delta_t + gamma * lam * A_{t+1}. Returns (advantages, returns = A + V), both
    [B, T] and 0 on padding.
    """
    mask = mask.to(rewards.dtype)
    values = values * mask
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    next_value = torch.zeros_like(next_advantage)
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = advantage
        # Padding sits after the response, so it resets the recursion to "episode over".
        next_advantage = advantage
        next_value = values[:, t]
    return advantages, (advantages + values) * mask


def group_advantages(rewards: torch.Tensor, mask: torch.Tensor, group_size: int, normalise_std: bool = False
                     ) -> torch.Tensor:
    """Critic-free advantages from `group_size` samples per prompt (rows grouped consecutively).

    Each token's advantage is its return-to-go (sum of rewards from t on) minus the
    leave-one-out mean of the other samples' total returns (RLOO); with `normalise_std`
    it is divided by the group's std of total returns (GRPO). With an outcome reward only,
    every token of a sample gets R_i - mean_{j != i} R_j.
    """
    if rewards.shape[0] % group_size:
        raise ValueError(f"batch of {rewards.shape[0]} is not a multiple of group_size={group_size}")
    if group_size < 2:
        raise ValueError("group advantages need at least 2 samples per prompt")
    rewards = rewards * mask
    returns_to_go = rewards.flip(1).cumsum(1).flip(1)
    totals = returns_to_go[:, 0].view(-1, group_size)
    baseline = (totals.sum(1, keepdim=True) - totals) / (group_size - 1)
    advantages = returns_to_go - baseline.reshape(-1, 1)
    if normalise_std:
        advantages = advantages / (totals.std(1, keepdim=True).reshape(-1, 1).repeat_interleave(group_size, 0) + 1e-4)
    return advantages * mask
