"""Credit assignment: how per-step rewards become the rewards (and returns) an RL step sees.

Pure functions over the step rewards of one solution (`list[float]`, one value per step, in
order) or of a group of solutions to one prompt (`list[list[float]]`). They know nothing of
tokens: the caller puts step k's value on the token that ends step k (the verl reward manager
in `integrations.verl` does, and so does `prm.ppo.rewards.place_rewards`), and the return of a
token is then the sum of the values on it and after it (`reward_to_go`).

Forms (`CREDIT_FORMS`, `assign_credit(form, group)`):

* "sum"           Math-Shepherd (Wang et al. 2024): the step rewards as they are. The return
                  from step k is sum_{j >= k} r_j (gamma = 1).
* "min"           PURE (Cheng et al. 2025, arXiv 2504.15275): min-form credit. The return of
                  the whole solution is min_k r_k instead of the sum (`min_form`).
* "process_grpo"  DeepSeekMath process supervision (Shao et al. 2024, arXiv 2402.03300 §4.1.3):
                  step rewards normalised over all steps of the group; a step's advantage is the
                  sum of the normalised rewards from it on (`process_grpo_rewards`,
                  `process_grpo_advantages`).
* "progress"      PAV (Setlur et al. 2024, arXiv 2410.08146): the change in the PRM's value from
                  one step to the next, r_k = v_k - v_{k-1}, v_{-1} = a baseline (`progress_form`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

CREDIT_FORMS = ("sum", "min", "process_grpo", "progress")


def sum_form(step_rewards: Sequence[float]) -> list[float]:
    """Math-Shepherd's sum form: r_k unchanged.

    Placed on the step-end tokens, the return from step k is G_k = sum_{j >= k} r_j, so the
    return of the whole solution is the sum of its step rewards.

    >>> sum_form([0.9, 0.2, 0.7])
    [0.9, 0.2, 0.7]
    """
    return [float(r) for r in step_rewards]


def min_form(step_rewards: Sequence[float], temperature: float = 0.0) -> list[float]:
    """PURE's min form: per-step rewards whose sum is the minimum step reward.

    With weights w = softmax(-r / T) over the solution's steps, step k's reward becomes
    r*_k = w_k * r_k, so sum_k r*_k = sum_k softmax(-r/T)_k r_k, which tends to min_k r_k as
    T -> 0 (PURE's released code uses T = 0.1). `temperature=0` is that limit exactly: the
    whole minimum sits on the first step that attains it and every other step gets 0.

    Tokens: r*_k goes on the last token of step k like any step reward. The return from the
    first token is therefore the (soft) minimum of all step rewards. Later tokens see
    G_k = sum_{j >= k} r*_j: with T = 0 that is min_j r_j for every step up to and including
    the worst one and 0 after it (the steps after the weakest link earn nothing). This is
    PURE's implementation (weights over the whole solution), not the paper's per-state value
    min_{j >= k} r_j, which is not a sum of per-token rewards.

    >>> min_form([0.9, 0.2, 0.7])
    [0.0, 0.2, 0.0]
    """
    rewards = [float(r) for r in step_rewards]
    if not rewards:
        return []
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        worst = min(range(len(rewards)), key=rewards.__getitem__)
        return [r if k == worst else 0.0 for k, r in enumerate(rewards)]
    low = min(rewards)
    weights = [math.exp(-(r - low) / temperature) for r in rewards]  # shifted: no overflow
    total = sum(weights)
    return [w / total * r for w, r in zip(weights, rewards)]


def progress_form(step_values: Sequence[float], baseline: float = 0.5) -> list[float]:
    """PAV-style progress rewards: r_k = v_k - v_{k-1}, with v_{-1} = `baseline`.

    v_k is the PRM's value after step k (its probability that the solution is still on track).
    `baseline` is the value before any step: 0.5 (an uninformed prior, the default), or the
    prompt's own value when a value model gives one (the PAV paper measures progress under a
    prover policy; the PRM's score stands in for that value here). The rewards telescope:
    sum_k r_k = v_{K-1} - baseline, so the return of the whole solution is the last value
    minus the baseline, and the return from step k is v_{K-1} - v_{k-1}.

    >>> [round(r, 6) for r in progress_form([0.9, 0.2, 0.7])]
    [0.4, -0.7, 0.5]
    """
    values = [float(v) for v in step_values]
    previous = [float(baseline)] + values[:-1]
    return [v - p for v, p in zip(values, previous)]


def step_returns(step_rewards: Sequence[float], gamma: float = 1.0) -> list[float]:
    """G_k = sum_{j >= k} gamma^(j-k) r_j: the return seen from step k.

    >>> [round(g, 6) for g in step_returns([1.0, -0.5, 2.0])]
    [2.5, 1.5, 2.0]
    """
    returns, running = [], 0.0
    for r in reversed([float(r) for r in step_rewards]):
        running = r + gamma * running
        returns.append(running)
    return returns[::-1]


PROCESS_GRPO_EPS = 1e-4  # as prm.ppo.advantages.process_group_advantages


def process_grpo_rewards(group: Sequence[Sequence[float]], eps: float = PROCESS_GRPO_EPS) -> list[list[float]]:
    """DeepSeekMath process supervision: normalise every reward by the group's statistics.

    For the G solutions of one prompt with rewards r_i^k (solution i, step k), let R be all of
    them pooled: r~_i^k = (r_i^k - mean(R)) / (std(R) + eps). std is the sample standard
    deviation (ddof = 1) and eps = 1e-4, as in `prm.ppo.advantages.process_group_advantages`,
    the toolkit PPO's token-level form of the same advantage; a group with one reward in all
    has std taken as 0, so its reward becomes 0. Solutions without steps stay empty. (The
    toolkit PPO pools the outcome reward with the step rewards; pass it as one more entry of
    each solution's list to do the same.)

    >>> [[round(r, 3) for r in steps] for steps in process_grpo_rewards([[1.0, 0.0], [0.5]])]
    [[1.0, -1.0], [0.0]]
    """
    pooled = [float(r) for steps in group for r in steps]
    if not pooled:
        return [[] for _ in group]
    mean = sum(pooled) / len(pooled)
    std = math.sqrt(sum((r - mean) ** 2 for r in pooled) / max(len(pooled) - 1, 1))
    return [[(float(r) - mean) / (std + eps) for r in steps] for steps in group]


def process_grpo_advantages(group: Sequence[Sequence[float]]) -> list[list[float]]:
    """DeepSeekMath process-supervision advantages per step: A_i^k = sum_{j >= k} r~_i^j.

    Computed by the toolkit PPO's `prm.ppo.advantages.process_group_advantages` (one row per
    solution, a reward on every step), so both use one definition; a group of one solution
    (which that function refuses) takes `step_returns(process_grpo_rewards(group))`, the same
    formula. Every token of step k of solution i (from just after step k-1's last token up to
    step k's last token) gets A_i^k; tokens after the last step get 0. On tokens that is
    `reward_to_go` of the normalised rewards placed at the step ends.

    >>> [[round(a, 3) for a in steps] for steps in process_grpo_advantages([[1.0, 0.0], [0.5]])]
    [[0.0, -1.0], [0.0]]
    """
    lengths = [len(steps) for steps in group]
    if len(group) < 2 or not any(lengths):
        return [step_returns(steps) for steps in process_grpo_rewards(group)]
    from prm.ppo.advantages import process_group_advantages

    rewards = torch.zeros(len(group), max(lengths), dtype=torch.float64)
    placed = torch.zeros_like(rewards)
    for i, steps in enumerate(group):
        rewards[i, : len(steps)] = torch.tensor([float(r) for r in steps], dtype=torch.float64)
        placed[i, : len(steps)] = 1.0
    advantages = process_group_advantages(rewards, placed, placed, group_size=len(group))
    return [advantages[i, :n].tolist() for i, n in enumerate(lengths)]


def assign_credit(form: str, group: Sequence[Sequence[float]], *, temperature: float = 0.0,
                  baseline: float = 0.5, eps: float = PROCESS_GRPO_EPS) -> list[list[float]]:
    """The per-step rewards of `form` for a group of solutions to one prompt.

    group[i] is solution i's step rewards (PRM probabilities, checker scores...). "sum", "min"
    and "progress" treat each solution alone; "process_grpo" normalises across the group (pass
    all samples of one prompt together). Returns lists shaped like `group`; a caller places
    value k on step k's last token and the return of a token is `reward_to_go`.
    """
    if form == "sum":
        return [sum_form(steps) for steps in group]
    if form == "min":
        return [min_form(steps, temperature) for steps in group]
    if form == "progress":
        return [progress_form(steps, baseline) for steps in group]
    if form == "process_grpo":
        return process_grpo_rewards(group, eps)
    raise ValueError(f"unknown credit form {form!r}; choose one of {CREDIT_FORMS}")


def group_normalise(values: Sequence[float], eps: float = PROCESS_GRPO_EPS) -> list[float]:
    """(x - mean) / (std + eps) over one group's scalars (outcome GRPO); std as in
    `process_grpo_rewards` (ddof = 1; one value becomes 0)."""
    return [row[0] for row in process_grpo_rewards([[float(v)] for v in values], eps)]


def reward_to_go(token_rewards: torch.Tensor, mask: torch.Tensor | None = None, gamma: float = 1.0) -> torch.Tensor:
    """[B, T] -> [B, T]: G_t = sum_{t' >= t} gamma^(t'-t) r_t' along the last dimension, 0 on padding.

    With the process-GRPO rewards of `process_grpo_rewards` placed on step-end tokens this is
    DeepSeekMath's process-supervision advantage of every token; with "sum" rewards it is the
    Monte-Carlo return.
    """
    rewards = token_rewards if mask is None else token_rewards * mask.to(token_rewards.dtype)
    if gamma == 1.0:
        out = rewards.flip(-1).cumsum(-1).flip(-1)
    else:
        out = torch.zeros_like(rewards)
        running = torch.zeros_like(rewards[..., 0])
        for t in reversed(range(rewards.shape[-1])):
            running = rewards[..., t] + gamma * running
            out[..., t] = running
    return out if mask is None else out * mask.to(out.dtype)
