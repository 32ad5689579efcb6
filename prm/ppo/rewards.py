"""Per-token rewards for PPO: PRM step scores at step ends, outcome at EOS, KL penalty.

A response of T tokens gets a reward vector r[0..T-1]. Step k's score goes on the token
that ends step k (the first token whose text contains the step separator "\\n"); a step
cut off by truncation, or a final step with no separator, ends at the last generated token.
The outcome reward (verifier and/or ORM) goes on the last token (EOS when the response
finished). A KL penalty in the reward is -beta * k1_t on every token (`token_rewards`);
the k2 and k3 estimators belong in the loss instead (`prm.ppo.losses.kl_loss`).
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from prm.ppo import credit

STEP_SCORE_FORMS = ("raw", "centred", "diff", "min")
KL_ESTIMATORS = ("k1", "k2", "k3")
# Where each estimator is valid. As a reward, only k1 has E[k1 * grad log p] = grad KL; k3's
# REINFORCE gradient vanishes near the reference. As a loss (gradient through log p), k1's
# expected gradient is 0, while k2 gives grad KL(p || q) and k3 grad KL(q || p).
REWARD_KL_ESTIMATORS = ("k1",)
LOSS_KL_ESTIMATORS = ("k2", "k3")


def separator_token_mask(tokenizer, separator: str = "\n") -> torch.Tensor:
    """Bool [V]: which token ids contain `separator` when decoded.

    Checking the decoded text (not one id) also catches tokenizers that merge the
    newline with neighbouring characters (".\\n", "\\n\\n").
    """
    vocab_size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    texts = tokenizer.batch_decode([[i] for i in range(vocab_size)])
    return torch.tensor([separator in text for text in texts], dtype=torch.bool)


def step_end_positions(completion_ids: list[int], is_separator: torch.Tensor, eos_token_ids: Collection[int]) -> list[int]:
    """Indices (into `completion_ids`) of the tokens that end each step.

    A step ends at a separator token; tokens after the last separator (a step truncated
    mid-line, or a final step ended by EOS without a newline) form a last step ending at
    the last non-EOS token. Empty lines (a separator right after a separator) are no step.
    `eos_token_ids` is the sampler's whole stop set (`generation.policy.eos_token_ids`), so a
    response that stopped on any of them has no step ending on its stop token.

    >>> # "3+4=7\\n" "The answer is 7" (truncated): steps end at the newline and the last token
    """
    ends: list[int] = []
    length = len(completion_ids)
    if length and completion_ids[-1] in eos_token_ids:
        length -= 1
    step_start = 0
    for index in range(length):
        if bool(is_separator[completion_ids[index]]):
            if index > step_start or not ends:
                ends.append(index)
            step_start = index + 1
    if step_start < length:
        ends.append(length - 1)
    return ends


def step_texts(tokenizer, completion_ids: list[int], ends: list[int], separator: str = "\n") -> list[str]:
    """The text of each step (without its separator), for the PRM."""
    texts, start = [], 0
    for end in ends:
        texts.append(tokenizer.decode(completion_ids[start : end + 1], skip_special_tokens=True).strip(separator).strip())
        start = end + 1
    return texts


def shape_step_scores(scores: list[float], form: str) -> list[float]:
    """Turn PRM step probabilities p_k into per-step rewards, through the credit-assignment
    forms of `prm.ppo.credit` (the same code the verl manager uses).

    raw:     p_k                          (credit.sum_form, Math-Shepherd)
    centred: p_k - 0.5                    (a neutral step earns nothing; no bonus for length)
    diff:    p_k - p_{k-1}, p_{-1} = 0.5  (credit.progress_form; sums to p_K - 0.5)
    min:     min_k p_k on the worst step, 0 elsewhere (credit.min_form at T = 0, PURE)
    """
    if form not in STEP_SCORE_FORMS:
        raise ValueError(f"unknown step score form {form!r}; choose one of {STEP_SCORE_FORMS}")
    if form == "raw":
        return credit.sum_form(scores)
    if form == "centred":
        return credit.sum_form([p - 0.5 for p in scores])
    if form == "diff":
        return credit.progress_form(scores, baseline=0.5)
    return credit.min_form(scores)


def place_rewards(length: int, step_ends: list[int], step_rewards: list[float], outcome_reward: float | None) -> torch.Tensor:
    """Float [length]: step rewards at their end tokens, the outcome reward on the last token."""
    rewards = torch.zeros(length)
    for end, value in zip(step_ends, step_rewards, strict=True):
        rewards[end] += value
    if outcome_reward is not None and length:
        rewards[length - 1] += outcome_reward
    return rewards


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from the sampled tokens' log-probs.

    k1 = log p - log q (unbiased, can be negative); k2 = (log p - log q)^2 / 2 (biased,
    >= 0); k3 = (r - 1) - log r with r = q / p (unbiased, always >= 0, lower variance).
    Shapes: any, elementwise.
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; choose one of {KL_ESTIMATORS}")


def token_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor,
                  kl_coef: float, kl_estimator: str) -> torch.Tensor:
    """The per-token rewards PPO maximises: [B, T] -> [B, T], 0 on padding.

    With the reward-side estimator k1, scores - beta * (log p - log q) on every response
    token (TRL, Ziegler et al. 2019): its REINFORCE gradient is exactly -beta * grad KL. With a
    loss-side estimator (k2, k3) the reward is the scores alone and the KL enters the loss.
    """
    if kl_estimator in REWARD_KL_ESTIMATORS:
        return (scores - kl_coef * kl_estimate(logprobs, ref_logprobs, kl_estimator)) * mask
    if kl_estimator in LOSS_KL_ESTIMATORS:
        return scores * mask
    raise ValueError(f"unknown KL estimator {kl_estimator!r}; choose one of {KL_ESTIMATORS}")


class KLController:
    """The KL coefficient beta: fixed, or adaptive (Ziegler et al. 2019).

    Adaptive: beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n_tokens / horizon, so beta
    rises when the policy drifts past the target KL and falls when it stays close.
    """

    def __init__(self, coef: float, target: float | None = None, horizon: int = 10000):
        # Both are divided by in `update`; refused here, not at the end of the first update.
        if target is not None and target <= 0:
            raise ValueError(f"KL target must be > 0 (None = fixed beta), got {target}")
        if horizon <= 0:
            raise ValueError(f"KL horizon must be > 0, got {horizon}")
        self.value, self.target, self.horizon = coef, target, horizon

    def update(self, observed_kl: float, n_tokens: int) -> None:
        if self.target is None:
            return
        error = max(-0.2, min(0.2, observed_kl / self.target - 1.0))
        self.value *= 1.0 + error * n_tokens / self.horizon
