"""Advantages for PPO: token-level GAE with a critic, or group baselines without one
(RLOO / GRPO on sequence totals, or DeepSeekMath's process-supervision GRPO).

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


# Equal float32 values still show a std of a few ulps (2^-23 ~ 1.2e-7 of their size) from the
# rounded mean; dividing by that, or by sqrt(0 + eps), would scale a constant batch by 1e4 to 1e7.
SPREAD_FLOOR = 1e-5


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(values - mean) / std over the masked entries, or values / std with `shift_mean=False`;
    padding comes back as 0. Shapes: any, `mask` like `values`.

    Rewards are rescaled without the shift: subtracting the mean would turn every
    below-average reward (a good step scored 0.9 among many 0.9s and a few 1.9s) into a
    penalty, so longer correct solutions would earn less. (TRL's shift_mean=False adds the
    mean back after centring, which still flips signs when the std is small.)

    Values with no spread (std at most SPREAD_FLOOR of their root mean square, e.g. a batch
    whose responses were all correct) are not divided at all: scale 1, so `shift_mean=False`
    returns them unchanged and the shifted form returns about 0 (their rounding error).
    """
    mean = masked_mean(values, mask)
    std = masked_mean((values - mean) ** 2, mask).sqrt()
    size = masked_mean(values**2, mask).sqrt()
    scale = torch.where(std > SPREAD_FLOOR * size, std.reciprocal(), torch.ones_like(std))
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


GROUP_ADVANTAGES = ("rloo", "grpo", "grpo_process")


def _group_view(tensor: torch.Tensor, group_size: int) -> torch.Tensor:
    """[B, ...] -> [B / group_size, group_size, ...]; checks the batch splits into groups of >= 2."""
    if tensor.shape[0] % group_size:
        raise ValueError(f"batch of {tensor.shape[0]} is not a multiple of group_size={group_size}")
    if group_size < 2:
        raise ValueError("group advantages need at least 2 samples per prompt")
    return tensor.view(-1, group_size, *tensor.shape[1:])


def outcome_group_advantages(rewards: torch.Tensor, mask: torch.Tensor, group_size: int,
                             baseline: str = "leave_one_out", normalise_std: bool = False) -> torch.Tensor:
    """Critic-free sequence-level advantages (RLOO, outcome GRPO): [B, T] -> [B, T].

    Rows come in consecutive groups of `group_size` samples of one prompt. With
    R_i = sum_t r_{i,t} (sample i's total reward),

        A_i = (R_i - b_i) / sigma,

    b_i = mean_{j != i} R_j (`leave_one_out`, RLOO) or mean_j R_j (`mean`, GRPO), and
    sigma = std_j R_j + 1e-4 (unbiased std of the group) with `normalise_std`, else 1.
    Every response token of sample i gets A_i (0 on padding): where in the response a
    reward landed does not matter, only the total, so equal totals give zero advantage.
    """
    totals = _group_view((rewards * mask).sum(1), group_size)
    if baseline == "leave_one_out":
        centred = totals - (totals.sum(1, keepdim=True) - totals) / (group_size - 1)
    elif baseline == "mean":
        centred = totals - totals.mean(1, keepdim=True)
    else:
        raise ValueError(f"baseline must be 'leave_one_out' or 'mean', got {baseline!r}")
    if normalise_std:
        centred = centred / (totals.std(1, keepdim=True) + 1e-4)
    return centred.reshape(-1, 1) * mask


def process_group_advantages(rewards: torch.Tensor, placed: torch.Tensor, mask: torch.Tensor, group_size: int
                             ) -> torch.Tensor:
    """GRPO with process supervision (DeepSeekMath, Shao et al. 2024, sec. 4.1.3): [B, T] -> [B, T].

    rewards, placed: [B, T], or [K, B, T] for K kinds of reward that may fall on one token (the
    toolkit's PPO: K = 2, the step rewards and the outcome, which share a truncated response's
    last token); `placed` marks the entries that carry a reward (each step's end, the
    outcome's last token). Every reward of a group is normalised by the mean and std
    (unbiased) of all the rewards placed in that group, r~ = (r - mean) / (std + 1e-4), and
    token t's advantage is the sum of the normalised rewards placed at or after t:
    A_t = sum_{s >= t, placed} r~_s (0 on padding).
    """
    if rewards.dim() == 2:
        rewards, placed = rewards[None], placed[None]
    kinds, batch, width = rewards.shape
    # [K, B, T] -> [groups, K * group_size * T]: every entry of a group's samples in one row.
    values = _group_view(rewards.transpose(0, 1), group_size).flatten(1)
    weights = _group_view((placed * mask).transpose(0, 1), group_size).flatten(1).to(values.dtype)
    count = weights.sum(1, keepdim=True)
    mean = (values * weights).sum(1, keepdim=True) / count.clamp(min=1.0)
    std = (((values - mean) ** 2 * weights).sum(1, keepdim=True) / (count - 1).clamp(min=1.0)).sqrt()
    normalised = ((values - mean) / (std + 1e-4) * weights).view(batch, kinds, width).sum(1)
    return normalised.flip(1).cumsum(1).flip(1) * mask
