"""Unit tests of the PPO pieces: GAE, reward placement, KL estimators, losses."""

import math

import pytest
import torch

from prm.ppo.advantages import gae, outcome_group_advantages, process_group_advantages, whiten
from prm.ppo.losses import kl_loss, policy_loss, value_loss
from prm.ppo.rewards import (
    KL_ESTIMATORS,
    REWARD_KL_ESTIMATORS,
    KLController,
    kl_estimate,
    place_rewards,
    separator_token_mask,
    shape_step_scores,
    step_end_positions,
    step_texts,
    token_rewards,
)
from prm.ppo.train import PPOConfig, Rollout, advantages_and_returns, score_tensor

NL, EOS = 3, 1
IS_SEPARATOR = torch.tensor([i == NL for i in range(10)])


def test_gae_matches_hand_computation():
    # gamma = 0.9, lambda = 0.8, so gamma * lambda = 0.72. Row 2 is padded after 2 tokens
    # and its padded value (9.0) must not leak in.
    rewards = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 1.0, 1.5], [0.2, 0.4, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # row 1: d2 = 2 - 1.5 = 0.5; d1 = 0.9*1.5 - 1 = 0.35; d0 = 1 + 0.9*1 - 0.5 = 1.4
    #        A2 = 0.5, A1 = 0.35 + 0.72*0.5 = 0.71, A0 = 1.4 + 0.72*0.71 = 1.9112
    # row 2: d1 = 1 - 0.4 = 0.6; d0 = 0.9*0.4 - 0.2 = 0.16; A1 = 0.6, A0 = 0.16 + 0.72*0.6 = 0.592
    expected = torch.tensor([[1.9112, 0.71, 0.5], [0.592, 0.6, 0.0]])
    assert torch.allclose(advantages, expected, atol=1e-6)
    assert torch.allclose(returns, expected + values * mask, atol=1e-6)


def test_gae_with_lambda_one_is_discounted_return_minus_value():
    rewards = torch.randn(2, 5)
    values = torch.randn(2, 5)
    mask = torch.ones(2, 5)
    advantages, _ = gae(rewards, values, mask, gamma=0.5, lam=1.0)
    discounted = sum(rewards[:, t] * 0.5**t for t in range(5))
    assert torch.allclose(advantages[:, 0], discounted - values[:, 0], atol=1e-5)


@pytest.mark.parametrize(
    "ids, ends",
    [
        ([5, 6, NL, 7, NL, 8, 9], [2, 4, 6]),  # last step truncated mid-line: ends at last token
        ([5, NL, 7, NL, EOS], [1, 3]),  # finished after a newline: EOS carries no step
        ([5, NL, 7, EOS], [1, 2]),  # final step without a newline ends before EOS
        ([5, NL, NL, 7], [1, 3]),  # an empty line is no step
        ([NL, 5, NL], [0, 2]),  # a leading newline still ends the (empty) first step
        ([EOS], []),
    ],
)
def test_step_ends(ids, ends):
    assert step_end_positions(ids, IS_SEPARATOR, {EOS}) == ends


def test_dense_rewards_land_on_step_end_tokens_with_a_real_tokenizer():
    from generation.tiny import train_tokenizer

    tokenizer = train_tokenizer(["Question: 3 + 4?\nSolution:\n3 + 4 = 7\nThe answer is 7\n"] * 4)
    is_separator = separator_token_mask(tokenizer)
    # Finished response, then the same response cut off inside its last step.
    finished = tokenizer("3 + 4 = 7\nThe answer is 7\n", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    truncated = tokenizer("3 + 4 = 7\nThe answ", add_special_tokens=False).input_ids
    newline_positions = [i for i, t in enumerate(finished) if tokenizer.decode([t]) == "\n"]
    for ids, expected_ends in ((finished, newline_positions), (truncated, [newline_positions[0], len(truncated) - 1])):
        ends = step_end_positions(ids, is_separator, {tokenizer.eos_token_id})
        assert ends == expected_ends
        assert step_texts(tokenizer, ids, ends)[0] == "3 + 4 = 7"
        rollout = Rollout(problems=[None], prompt_ids=[[0]], response_ids=[ids], texts=[""], step_ends=[ends],
                          step_scores=[[0.9, 0.2]], correct=[True], outcome=[1.0])
        scores, placed = score_tensor(rollout, len(ids) + 2, PPOConfig(mode="dense", step_score_form="raw"))
        expected = torch.zeros(len(ids) + 2)
        expected[ends[0]] += 0.9
        expected[ends[1]] += 0.2
        expected[len(ids) - 1] += 1.0  # outcome on the last token (EOS when finished)
        assert torch.allclose(scores.sum(0)[0], expected)
        assert placed[0, 0].nonzero().flatten().tolist() == ends  # the step rewards
        assert placed[1, 0].nonzero().flatten().tolist() == [len(ids) - 1]  # the outcome
    # outcome mode ignores the steps
    scores, _ = score_tensor(rollout, len(truncated), PPOConfig(mode="outcome"))
    assert scores.sum(0)[0].nonzero().flatten().tolist() == [len(truncated) - 1]


def test_step_score_forms():
    scores = [0.9, 0.4, 0.7]
    assert shape_step_scores(scores, "raw") == scores
    assert shape_step_scores(scores, "centred") == pytest.approx([0.4, -0.1, 0.2])
    diff = shape_step_scores(scores, "diff")
    assert diff == pytest.approx([0.4, -0.5, 0.3])
    assert sum(diff) == pytest.approx(scores[-1] - 0.5)
    assert shape_step_scores(scores, "min") == pytest.approx([0.0, 0.4, 0.0])
    with pytest.raises(ValueError):
        shape_step_scores(scores, "max")


def test_place_rewards_accumulates_on_shared_token():
    rewards = place_rewards(4, [1, 3], [0.5, 0.25], outcome_reward=1.0)
    assert rewards.tolist() == [0.0, 0.5, 0.0, 1.25]


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_estimators_are_unbiased_on_small_distributions(estimator):
    # E_{x~p}[k(x)] must equal KL(p || q) exactly (a sum over the support, no sampling).
    for p, q in (([0.7, 0.2, 0.1], [0.3, 0.3, 0.4]), ([0.5, 0.5], [0.9, 0.1]), ([0.25] * 4, [0.25] * 4)):
        p, q = torch.tensor(p, dtype=torch.float64), torch.tensor(q, dtype=torch.float64)
        closed_form = float((p * (p / q).log()).sum())
        per_outcome = kl_estimate(p.log(), q.log(), estimator)
        assert float((p * per_outcome).sum()) == pytest.approx(closed_form, abs=1e-12)
        if estimator == "k3":
            assert (per_outcome >= 0).all()


def test_k3_closed_form_per_token():
    logp, logq = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert kl_estimate(logp, logq, "k3").item() == pytest.approx((0.5 - 1) - math.log(0.5))
    assert kl_estimate(logp, logq, "k1").item() == pytest.approx(math.log(2))


def test_adaptive_kl_controller_moves_towards_target():
    fixed = KLController(0.1)
    fixed.update(10.0, 100)
    assert fixed.value == 0.1
    adaptive = KLController(0.1, target=1.0, horizon=100)
    adaptive.update(5.0, 10)  # error clipped to +0.2: beta *= 1 + 0.2 * 10 / 100
    assert adaptive.value == pytest.approx(0.1 * 1.02)
    adaptive.update(0.0, 10)
    assert adaptive.value == pytest.approx(0.1 * 1.02 * 0.98)


def _group_config(form, std=False, group_size=4):
    return PPOConfig(mode="group", samples_per_prompt=group_size, group_advantage=form, group_std=std)


@pytest.mark.parametrize("form, std", [("rloo", False), ("rloo", True), ("grpo", False), ("grpo_process", False)])
def test_group_outcome_all_correct_zero_advantage(form, std):
    # Four correct samples of different lengths whose per-token KL to the reference differs:
    # nothing distinguishes them, so no token may be pushed up or down (the KL is a loss term).
    lengths = [12, 30, 20, 25]
    mask, scores, placed = torch.zeros(4, 30), torch.zeros(4, 30), torch.zeros(4, 30)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1.0
        scores[row, length - 1] = placed[row, length - 1] = 1.0
    generator = torch.Generator().manual_seed(0)
    old_logprobs = -2.0 + 0.5 * torch.randn(4, 30, generator=generator)
    ref_logprobs = old_logprobs - 0.3 * torch.randn(4, 30, generator=generator).abs()
    config = _group_config(form, std)
    rewards = token_rewards(scores, old_logprobs, ref_logprobs, mask, 0.05, config.kl_estimator)
    advantages, _ = advantages_and_returns(rewards, scores, placed, torch.zeros(4, 30), mask, config)
    assert torch.equal(advantages, torch.zeros_like(advantages))


@pytest.mark.parametrize("form, std", [("rloo", False), ("rloo", True), ("grpo", False)])
def test_group_outcome_equal_totals_zero_advantage(form, std):
    # Same total reward, placed early in one sample and late in the other: the outcome forms
    # are sequence-level, so neither sample is preferred at any token.
    rewards = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    mask = torch.ones(2, 3)
    advantages, _ = advantages_and_returns(rewards, rewards, (rewards != 0).float(), torch.zeros(2, 3), mask,
                                           _group_config(form, std, group_size=2))
    assert torch.equal(advantages, torch.zeros_like(advantages))


def test_group_outcome_advantages_match_hand_computation():
    # One group of four, totals R = [1, 0, 1, 1] (split over two tokens in row 0), row 3 padded.
    rewards = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    # RLOO: b_i = mean of the other three = [2/3, 1, 2/3, 2/3] -> A = [1/3, -1, 1/3, 1/3]
    rloo = outcome_group_advantages(rewards, mask, 4, baseline="leave_one_out")
    assert torch.allclose(rloo, torch.tensor([1 / 3, -1.0, 1 / 3, 1 / 3])[:, None] * mask)
    # GRPO: mean 0.75, std (unbiased) sqrt((3 * 0.25^2 + 0.75^2) / 3) = 0.5 -> A = [0.5, -1.5, 0.5, 0.5]
    grpo = outcome_group_advantages(rewards, mask, 4, baseline="mean", normalise_std=True)
    assert torch.allclose(grpo, torch.tensor([0.5, -1.5, 0.5, 0.5])[:, None] * mask, rtol=1e-3)


def test_group_process_advantages_match_hand_computation():
    # DeepSeekMath process supervision, a group of two. Rewards (at step ends):
    #   sample A (4 tokens): 1.0 at t=1, 0.0 at t=3;  sample B (5 tokens): 0.0, 1.0, 0.5 at t=0, 2, 4.
    # All five step rewards: mean 0.5, std (unbiased) sqrt(4 * 0.25 / 4) = 0.5, so the
    # normalised rewards are A: +1 (t=1), -1 (t=3); B: -1 (t=0), +1 (t=2), 0 (t=4).
    # A token's advantage sums the normalised rewards of the steps ending at or after it.
    rewards = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.5]])
    placed = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    expected = torch.tensor([[0.0, 0.0, -1.0, -1.0, 0.0], [0.0, 1.0, 1.0, 0.0, 0.0]])
    advantages = process_group_advantages(rewards, placed, mask, group_size=2)
    assert torch.allclose(advantages, expected, atol=1e-3)
    via_config, _ = advantages_and_returns(rewards, rewards, placed, torch.zeros(2, 5), mask,
                                           _group_config("grpo_process", group_size=2))
    assert torch.equal(via_config, advantages)


def test_group_mode_puts_the_kl_in_the_loss():
    assert PPOConfig(mode="group", samples_per_prompt=2).kl_estimator == "k3"
    assert PPOConfig(mode="dense").kl_estimator == "k1"
    with pytest.raises(ValueError, match="loss"):
        PPOConfig(mode="group", samples_per_prompt=2, kl_estimator="k1")
    with pytest.raises(ValueError, match="group_advantage"):
        PPOConfig(mode="group", samples_per_prompt=2, group_advantage="ppo")


# None of these was refused when the config was made: some failed only after the models were
# loaded and a batch rolled out and scored (a traceback for the first four), leaving files in
# --output_dir; others (gamma 1.5, a negative clip range) would have trained without a word.
BAD_OPTIONS = [
    ({"n_minibatches": 0}, "n_minibatches"),
    ({"ppo_epochs": 0}, "ppo_epochs"),
    ({"kl_target": 0.0}, "kl_target"),
    ({"kl_target": -1.0}, "kl_target"),
    ({"kl_target": 1.0, "kl_horizon": 0}, "kl_horizon"),
    ({"step_score_form": "nosuch"}, "step_score_form"),
    ({"critic": "nosuch"}, "critic"),
    ({"checker_coef": 1.5}, "checker_coef"),
    ({"batch_size": 0}, "batch_size"),
    ({"samples_per_prompt": 0}, "samples_per_prompt"),
    ({"gamma": 1.5}, "gamma"),
    ({"lam": -0.1}, "lam"),
    ({"clip_range": 0.0}, "clip_range"),
    ({"value_clip_range": -0.2}, "value_clip_range"),
    ({"max_grad_norm": 0.0}, "max_grad_norm"),
    ({"kl_coef": -0.1}, "kl_coef"),
    ({"reward_clip": -1.0}, "reward_clip"),
    ({"lr": -1e-4}, "lr"),
    ({"warmup_updates": -1}, "warmup_updates"),
    ({"ptx_coef": -0.5}, "ptx_coef"),
    ({"ptx_batch_size": 0}, "ptx_batch_size"),
    ({"temperature": 0.0}, "temperature"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"mode": "nosuch"}, "mode"),
]


@pytest.mark.parametrize("overrides, option", BAD_OPTIONS, ids=[str(o) for o, _ in BAD_OPTIONS])
def test_a_bad_option_is_refused_by_the_config_in_one_line_naming_it(overrides, option):
    with pytest.raises(ValueError, match=rf"--{option}\b") as refused:
        PPOConfig(**{"mode": "outcome", **overrides})
    assert "\n" not in str(refused.value)


def test_the_edges_of_the_option_ranges_are_accepted():
    config = PPOConfig(mode="outcome", gamma=1.0, lam=0.0, kl_coef=0.0, reward_clip=0.0, checker_coef=1.0,
                       kl_target=0.5, kl_horizon=1, ppo_epochs=1, n_minibatches=1, batch_size=1, lr=0.0)
    assert config.n_minibatches == 1 and config.kl_target == 0.5


def test_kl_controller_refuses_a_target_or_horizon_it_would_divide_by():
    with pytest.raises(ValueError, match="target"):
        KLController(0.1, target=0.0)
    with pytest.raises(ValueError, match="horizon"):
        KLController(0.1, target=1.0, horizon=0)


def test_whiten_ignores_padding():
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    out = whiten(values, mask)
    kept = out[mask.bool()]
    assert kept.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert out[0, 2] == 0.0


def test_policy_loss_clips_the_ratio():
    old = torch.zeros(1, 2)
    mask = torch.ones(1, 2)
    advantages = torch.tensor([[1.0, -1.0]])
    new = torch.log(torch.tensor([[1.5, 0.5]]))  # both ratios outside [0.8, 1.2]
    loss, stats = policy_loss(new, old, advantages, mask, clip_range=0.2)
    # min(1.5 * 1, 1.2 * 1) = 1.2; min(0.5 * -1, 0.8 * -1) = -0.8  -> loss = -(1.2 - 0.8) / 2
    assert loss.item() == pytest.approx(-0.2)
    assert stats["clip_fraction"] == 1.0
    zero_loss, zero_stats = policy_loss(old, old, torch.zeros(1, 2), mask, 0.2)
    assert zero_loss.item() == 0.0 and zero_stats["approx_kl"] == 0.0


def test_value_loss_clips_large_moves():
    old, returns, mask = torch.zeros(1, 1), torch.tensor([[1.0]]), torch.ones(1, 1)
    # V jumps to 2 from 0: clipped value 0.2 has error 0.8, unclipped error 1; max -> 1
    assert value_loss(torch.tensor([[2.0]]), old, returns, mask, 0.2).item() == pytest.approx(0.5 * 1.0)
    assert value_loss(torch.tensor([[0.9]]), old, returns, mask, 0.2).item() == pytest.approx(0.5 * 0.8**2)


def test_score_rollout_scores_steps_and_checks_answers():
    from prm.ppo.train import score_rollout
    from generation.tiny import train_tokenizer
    from tasks.math.types import Problem

    tokenizer = train_tokenizer(["Question: 3 + 4?\nSolution:\n3 + 4 = 7\nThe answer is 7\n"] * 4)

    class LengthPRM:
        def score_steps(self, prompt, steps):
            assert steps, "no empty step lists reach the PRM"
            return [len(s) / 100 for s in steps]

    problem = Problem(id="p", question="3 + 4?", answer="7")
    right = tokenizer("3 + 4 = 7\nThe answer is 7\n", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    wrong = tokenizer("3 + 4 = 8\nThe answer is 8", add_special_tokens=False).input_ids
    empty = [tokenizer.eos_token_id]
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in (right, wrong, empty)]
    rollout = score_rollout([problem] * 3, [[0]] * 3, [right, wrong, empty], texts, tokenizer,
                            separator_token_mask(tokenizer), {tokenizer.eos_token_id}, PPOConfig(mode="dense", verifier_coef=2.0),
                            LengthPRM())
    assert rollout.correct == [True, False, False]
    assert rollout.outcome == [2.0, 0.0, 0.0]
    assert rollout.step_scores == [[0.09, 0.15], [0.09, 0.15], []]
    assert rollout.step_ends[2] == []


def test_reward_whitening_rescales_without_shifting():
    # Two correct solutions, every step scored 0.9 (raw), outcome +1 on the last token that
    # also ends the last step: 2 steps vs 6. Centring would turn each 0.9 into a penalty,
    # so the longer solution would end with the lower total.
    def response(n_steps):
        ends = [2 * k + 1 for k in range(n_steps)]
        return ends, [0.9] * n_steps, list(range(2 * n_steps))

    (short_ends, short_scores, short_ids), (long_ends, long_scores, long_ids) = response(2), response(6)
    rollout = Rollout(problems=[None, None], prompt_ids=[[0], [0]], response_ids=[short_ids, long_ids], texts=["", ""],
                      step_ends=[short_ends, long_ends], step_scores=[short_scores, long_scores], correct=[True, True],
                      outcome=[1.0, 1.0])
    config = dict(mode="dense", step_score_form="raw")
    raw, placed = score_tensor(rollout, 12, PPOConfig(**config))
    whitened, _ = score_tensor(rollout, 12, PPOConfig(**config, reward_whiten=True))
    raw_totals, whitened_totals = raw.sum((0, 2)), whitened.sum((0, 2))
    assert raw_totals[0] < raw_totals[1] and whitened_totals[0] < whitened_totals[1]
    kept = placed.bool()
    assert torch.equal(torch.sign(whitened[kept]), torch.sign(raw[kept]))
    # One positive factor for every reward: a rescaling, nothing added.
    factors = whitened[kept] / raw[kept]
    assert torch.allclose(factors, factors[0].expand_as(factors)) and factors[0] > 0


# 7.7 and 77 in rows of 7 leave a float32 rounding spread (a few ulps) in the std, not an exact 0.
@pytest.mark.parametrize("value", [1.0, 0.3, -0.5, 7.7, 77.0, 0.0])
@pytest.mark.parametrize("rows", [4, 7])
def test_whitening_leaves_a_batch_of_equal_rewards_unchanged(value, rows):
    values = torch.zeros(rows, 5)
    values[:, -1] = value
    mask = torch.zeros(rows, 5)
    mask[:, -1] = 1.0
    assert torch.equal(whiten(values, mask, shift_mean=False), values)
    # With the shift, equal values are all at the mean: zero, not rounding noise magnified.
    assert whiten(values, mask).abs().max().item() <= 1e-6


def test_reward_whitening_keeps_the_reward_of_an_all_correct_outcome_batch():
    # Every response correct: the rewards have no spread to divide by, so they stay 1.0
    # (dividing by sqrt(0 + 1e-8) made each 10,000).
    rollout = Rollout(problems=[None] * 4, prompt_ids=[[0]] * 4, response_ids=[[5, 6, 7, EOS]] * 4, texts=[""] * 4,
                      step_ends=[[]] * 4, step_scores=[[]] * 4, correct=[True] * 4, outcome=[1.0] * 4)
    raw, placed = score_tensor(rollout, 6, PPOConfig(mode="outcome"))
    whitened, _ = score_tensor(rollout, 6, PPOConfig(mode="outcome", reward_whiten=True))
    assert torch.equal(whitened, raw)
    assert whitened.sum((0, 2)).tolist() == [1.0] * 4


def test_roll_out_with_two_eos_ids_appends_no_unsampled_token(monkeypatch):
    # A model whose generation_config stops on two ids (like Llama 3's <|eot_id|> and
    # <|end_of_text|>): a response that ends on the second one is finished as sampled.
    from prm.ppo.train import roll_out, score_rollout
    from generation.tiny import build_tiny_causal_lm, train_tokenizer
    from generation.policy import HFPolicy, eos_token_ids
    from tasks.math.types import Problem

    tokenizer = train_tokenizer(["Question: 3 + 4?\nSolution:\n3 + 4 = 7\nThe answer is 7\n"] * 4)
    model = build_tiny_causal_lm(tokenizer)
    second_eos = tokenizer("7", add_special_tokens=False).input_ids[0]
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, second_eos]
    eos_ids = eos_token_ids(model, tokenizer)
    assert eos_ids == {tokenizer.eos_token_id, second_eos}

    sampled = []
    original = HFPolicy.sample_tokens
    monkeypatch.setattr(HFPolicy, "sample_tokens", lambda self, *a, **k: sampled.extend(original(self, *a, **k)) or sampled)
    problems = [Problem(id="p", question="3 + 4?", answer="7")] * 2
    prompt_ids, response_ids, texts = roll_out(model, tokenizer, problems,
                                               PPOConfig(samples_per_prompt=16, max_new_tokens=30), seed=0)
    assert response_ids == [s.completion_ids for s in sampled]  # every trained token was sampled
    on_second = [ids for s, ids in zip(sampled, response_ids) if s.finished and ids[-1] == second_eos]
    assert on_second, "no response ended on the second EOS; the test proves nothing"

    rollout = score_rollout(problems * 16, prompt_ids, response_ids, texts, tokenizer, separator_token_mask(tokenizer),
                            eos_ids, PPOConfig(mode="outcome"))
    for s, ids, ends in zip(sampled, response_ids, rollout.step_ends):
        if s.finished:  # no step ends on the stop token, whichever EOS it is
            assert len(ids) - 1 not in ends
    assert step_end_positions([5, NL, 7, 9], IS_SEPARATOR, {EOS, 9}) == [1, 2]


def test_ppo_log_probs_are_the_tempered_sampling_log_probs(monkeypatch):
    # Rollouts sample from softmax(logits / T); old, reference and new log-probs must be of
    # that same distribution, or the first PPO ratio is not 1.
    from prm.ppo.model import PolicyWithValue, Reference, ResponseBatch
    from prm.ppo.train import roll_out, rollout_logprobs
    from generation.tiny import build_tiny_causal_lm, train_tokenizer
    from generation.policy import HFPolicy
    from tasks.math.types import Problem

    temperature = 0.5
    tokenizer = train_tokenizer(["Question: 3 + 4?\nSolution:\n3 + 4 = 7\nThe answer is 7\n"] * 4)
    model = PolicyWithValue(build_tiny_causal_lm(tokenizer)).eval()
    reference = Reference(model.policy)
    steps = []  # per sampling step: the sampler's log-probs [rows, V] and the picked ids [rows]
    original = HFPolicy._pick

    def recording_pick(self, logits, temperature):
        picked = original(self, logits, temperature)
        steps.append((torch.log_softmax(logits / temperature, dim=-1), picked))
        return picked

    monkeypatch.setattr(HFPolicy, "_pick", recording_pick)
    prompt_ids, response_ids, _ = roll_out(model.policy, tokenizer, [Problem(id="p", question="3 + 4?", answer="7")],
                                           PPOConfig(samples_per_prompt=4, max_new_tokens=10, temperature=temperature), seed=0)
    batch = ResponseBatch.from_ids(prompt_ids, response_ids, tokenizer.pad_token_id)
    old_logprobs, _, ref_logprobs = rollout_logprobs(model, reference, batch, temperature)
    for row, ids in enumerate(response_ids):
        sampling = torch.stack([steps[j][0][row, token] for j, token in enumerate(ids)])
        assert [int(steps[j][1][row]) for j in range(len(ids))] == ids
        ratio = (old_logprobs[row, : len(ids)] - sampling).exp()
        assert torch.allclose(ratio, torch.ones_like(ratio), atol=1e-4), ratio
    # The reference is the starting policy, read at the same temperature.
    assert torch.allclose(ref_logprobs, old_logprobs, atol=1e-6)


def _categorical(seed=0, size=5):
    """Policy logits (float64, with grad) and a reference log-prob vector, close to each other."""
    generator = torch.Generator().manual_seed(seed)
    ref_logits = torch.randn(size, generator=generator, dtype=torch.float64)
    logits = (ref_logits + 0.3 * torch.randn(size, generator=generator, dtype=torch.float64)).requires_grad_(True)
    return logits, torch.log_softmax(ref_logits, 0)


def _kl_gradient(logits, ref_logprobs):
    """d KL(pi || ref) / d logits = pi * (log pi - log ref - KL), by hand."""
    logp = torch.log_softmax(logits.detach(), 0)
    p = logp.exp()
    kl = (p * (logp - ref_logprobs)).sum()
    return p * (logp - ref_logprobs - kl)


@pytest.mark.parametrize("estimator", KL_ESTIMATORS)
def test_reward_kl_penalty_reinforce_gradient_is_minus_the_kl_gradient(estimator):
    # The exact REINFORCE gradient of a per-token reward r(a), summed over all categories:
    # E_{a~pi}[r(a) * grad log pi(a)]. Whatever KL penalty `token_rewards` puts in the reward
    # must make that -grad KL(pi || ref); an estimator it keeps out of the reward adds nothing.
    logits, ref_logprobs = _categorical()
    logp = torch.log_softmax(logits, 0)
    size = logits.shape[0]
    # One row per category a: a one-token response that sampled a, with no PRM/outcome score.
    rewards = token_rewards(torch.zeros(size, 1, dtype=torch.float64), logp.detach()[:, None], ref_logprobs[:, None],
                            torch.ones(size, 1, dtype=torch.float64), kl_coef=1.0, kl_estimator=estimator)
    (gradient,) = torch.autograd.grad((logp.exp().detach() * rewards[:, 0] * logp).sum(), logits)
    if estimator in REWARD_KL_ESTIMATORS:
        assert torch.allclose(gradient, -_kl_gradient(logits, ref_logprobs), atol=1e-12)
    else:
        assert torch.equal(rewards, torch.zeros_like(rewards))


def test_kl_loss_terms_have_the_expected_gradients():
    # E_{a~pi}[grad k(a)] with the gradient through log pi only (the sample a fixed):
    # k2 = (log pi - log ref)^2 / 2 gives grad KL(pi || ref) exactly; k3 gives
    # grad KL(ref || pi) = pi - ref, which agrees with it to first order near the reference.
    logits, ref_logprobs = _categorical()
    logp = torch.log_softmax(logits, 0)
    size = logits.shape[0]

    def expected_gradient(estimator):
        per_token = torch.stack([kl_loss(logp[a].view(1, 1), ref_logprobs[a].view(1, 1), torch.ones(1, 1), estimator)
                                 for a in range(size)])
        return torch.autograd.grad((logp.exp().detach() * per_token).sum(), logits, retain_graph=True)[0]

    kl_gradient = _kl_gradient(logits, ref_logprobs)
    assert torch.allclose(expected_gradient("k2"), kl_gradient, atol=1e-12)
    k3_gradient = expected_gradient("k3")
    assert torch.allclose(k3_gradient, logp.exp().detach() - ref_logprobs.exp(), atol=1e-12)
    assert float(k3_gradient @ kl_gradient) > 0.9 * float(k3_gradient.norm() * kl_gradient.norm())
    with pytest.raises(ValueError, match="k1"):  # its expected gradient as a loss is 0
        kl_loss(logp.view(1, -1), ref_logprobs.view(1, -1), torch.ones(1, size), "k1")


def test_a_shared_prefix_batch_gives_the_padded_log_probs_values_and_gradients():
    # Samples of one prompt (a GRPO group) mostly agree on their first steps; the shared layout
    # computes the prompt and each common step prefix once. Every logit, value and gradient must
    # be the padded layout's, for the whole batch and for a minibatch laid out again.
    from prm.ppo.losses import token_logprobs
    from prm.ppo.model import PolicyWithValue, ResponseBatch
    from generation.tiny import build_tiny_causal_lm, train_tokenizer

    texts = ["3 + 4 = 7\nThe answer is 7\n", "3 + 4 = 7\nThe answer is 8\n", "3 + 4 = 6\nThe answer is 6\n",
             "2 + 5 = 7\nThe answer is 7\n", "2 + 5 = 7\nThe answer is 7\n"]
    tokenizer = train_tokenizer(["Question: 3 + 4?\nSolution:\n", "Question: 2 + 5?\nSolution:\n", *texts])
    model = PolicyWithValue(build_tiny_causal_lm(tokenizer)).eval()
    torch.nn.init.normal_(model.value_head.weight)  # values that are not all zero

    def encode(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    prompts = [encode("Question: 3 + 4?\nSolution:\n")] * 3 + [encode("Question: 2 + 5?\nSolution:\n")] * 2
    responses = [encode(text) + [tokenizer.eos_token_id] for text in texts]
    step_ends = [[i for i, t in enumerate(ids) if "\n" in tokenizer.decode([t])] for ids in responses]
    padded = ResponseBatch.from_ids(prompts, responses, tokenizer.pad_token_id)
    shared = ResponseBatch.from_ids(prompts, responses, tokenizer.pad_token_id, step_ends=step_ends,
                                    share_prefixes=True)
    assert shared.position_ids is not None
    assert shared.input_ids.numel() < 0.8 * padded.input_ids.numel()
    for name in ("response_ids", "response_mask"):
        assert torch.equal(getattr(shared, name), getattr(padded, name))

    def outputs(batch):
        model.zero_grad()
        logits, values = model(batch)
        mask = batch.response_mask
        weights = torch.linspace(0.5, 2.0, mask.numel()).view_as(mask)  # errors of two tokens cannot cancel
        loss = ((token_logprobs(logits, batch.response_ids) + values) * weights * mask).sum()
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        return logits.detach() * mask.unsqueeze(-1), values.detach() * mask, grads

    for shared_batch, padded_batch in ((shared, padded), (shared.select(torch.tensor([4, 0, 2, 1])),
                                                           padded.select(torch.tensor([4, 0, 2, 1])))):
        assert shared_batch.response_ids.shape == padded_batch.response_ids.shape
        shared_logits, shared_values, shared_grads = outputs(shared_batch)
        padded_logits, padded_values, padded_grads = outputs(padded_batch)
        assert torch.allclose(shared_logits, padded_logits, atol=1e-5)
        assert torch.allclose(shared_values, padded_values, atol=1e-5)
        assert shared_grads.keys() == padded_grads.keys()
        for name, grad in padded_grads.items():  # float32 sums in another order: relative to the gradient's size
            assert (shared_grads[name] - grad).abs().max() <= 1e-5 * grad.abs().max() + 1e-6, name


def test_a_display_formula_over_several_lines_is_one_step_for_the_prm():
    # Steps were cut at every "\n": the PRM scored "\\[", "1+1=2" and "\\]" as three steps,
    # where split_steps (the verl manager, prm label, the PRM's training data) keeps one.
    from prm.ppo.train import score_rollout
    from generation.tiny import train_tokenizer
    from tasks.math.types import Problem

    text = "a = 1\n\\[\n1 + 1 = 2\n\\]\nThe answer is 2\n"
    tokenizer = train_tokenizer([text] * 4)
    seen = []

    class RecordingPRM:
        def score_steps(self, prompt, steps):
            seen.append(list(steps))
            return [0.5] * len(steps)

    ids = tokenizer(text, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    rollout = score_rollout([Problem(id="p", question="q", answer="2")], [[0]], [ids], [text], tokenizer,
                            separator_token_mask(tokenizer), {tokenizer.eos_token_id}, PPOConfig(mode="dense"),
                            RecordingPRM())
    assert seen == [["a = 1", "\\[\n1 + 1 = 2\n\\]", "The answer is 2"]]
    ends = rollout.step_ends[0]
    assert len(ends) == 3 and tokenizer.decode(ids[ends[0] + 1: ends[1] + 1]).strip() == "\\[\n1 + 1 = 2\n\\]"


@pytest.mark.parametrize("outcome", [0.0, 1.0])
def test_process_grpo_counts_a_truncated_responses_last_step_and_outcome_as_two_rewards(outcome):
    # A truncated response's last step ends on its last token, where the outcome goes too. Pooled
    # as one reward, a wrong truncated answer gave no outcome 0 to the group's normalisation and
    # escaped the penalty a finished one pays. Here B is A without its EOS: the same steps, scores
    # and outcome, so every token they share must get the same advantage.
    config = PPOConfig(mode="group", group_advantage="grpo_process", samples_per_prompt=2, step_score_form="raw")
    rollout = Rollout(problems=[None, None], prompt_ids=[[0], [0]], response_ids=[[5, 9, 6, 7, EOS], [5, 9, 6, 7]],
                      texts=["", ""], step_ends=[[1, 3], [1, 3]], step_scores=[[0.6, 0.4], [0.6, 0.4]],
                      correct=[bool(outcome)] * 2, outcome=[outcome] * 2)
    scores, placed = score_tensor(rollout, 5, config)
    mask = torch.tensor([[1.0, 1, 1, 1, 1], [1.0, 1, 1, 1, 0]])
    rewards = token_rewards(scores.sum(0), torch.zeros(2, 5), torch.zeros(2, 5), mask, 0.0, config.kl_estimator)
    advantages, _ = advantages_and_returns(rewards, scores, placed, torch.zeros(2, 5), mask, config)
    assert torch.allclose(advantages[1, :4], advantages[0, :4], atol=1e-6)
    assert advantages[0, 0] != 0  # the pool is not degenerate: 0.6, 0.4 and the outcome differ
