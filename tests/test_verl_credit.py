"""prm.ppo.credit: the four credit-assignment forms, each on a worked example (no verl needed)."""

import math

import pytest
import torch

from prm.ppo.credit import (
    CREDIT_FORMS,
    assign_credit,
    group_normalise,
    min_form,
    process_grpo_advantages,
    process_grpo_rewards,
    progress_form,
    reward_to_go,
    step_returns,
    sum_form,
)

STEPS = [0.9, 0.2, 0.7]  # one solution's PRM step scores


def test_sum_form_keeps_the_rewards_and_the_return_is_their_sum():
    # Math-Shepherd: r = (0.9, 0.2, 0.7); returns from each step 1.8, 0.9, 0.7
    assert sum_form(STEPS) == STEPS
    assert step_returns(sum_form(STEPS)) == pytest.approx([1.8, 0.9, 0.7])


def test_min_form_hard_puts_the_minimum_on_the_worst_step():
    # PURE, T = 0: the return of the solution is min = 0.2, carried by step 2 alone
    assert min_form(STEPS) == [0.0, 0.2, 0.0]
    assert step_returns(min_form(STEPS)) == pytest.approx([0.2, 0.2, 0.0])
    # ties: the first worst step takes it
    assert min_form([0.3, 0.3]) == [0.3, 0.0]
    assert min_form([]) == []


def test_min_form_soft_is_the_softmin_weighted_rewards():
    # T = 0.1: w = softmax(-r / 0.1) = softmax(-9, -2, -7)
    e = [math.exp(-9), math.exp(-2), math.exp(-7)]
    w = [x / sum(e) for x in e]
    expected = [wk * rk for wk, rk in zip(w, STEPS)]
    assert min_form(STEPS, temperature=0.1) == pytest.approx(expected)
    # the sum approaches the minimum as T -> 0
    assert sum(min_form(STEPS, temperature=0.1)) == pytest.approx(0.2040, abs=1e-4)  # w = (0.0009, 0.9924, 0.0067)
    assert sum(min_form(STEPS, temperature=0.01)) == pytest.approx(0.2, abs=1e-12)
    with pytest.raises(ValueError):
        min_form(STEPS, temperature=-1)


def test_progress_form_is_the_change_in_value_from_a_baseline():
    # PAV: v = (0.9, 0.2, 0.7), v_{-1} = 0.5 -> r = (0.4, -0.7, 0.5); sum = 0.7 - 0.5
    assert progress_form(STEPS) == pytest.approx([0.4, -0.7, 0.5])
    assert sum(progress_form(STEPS)) == pytest.approx(STEPS[-1] - 0.5)
    # the prompt's own value as baseline
    assert progress_form(STEPS, baseline=0.8) == pytest.approx([0.1, -0.7, 0.5])


def test_process_grpo_normalises_over_all_steps_of_the_group():
    # two solutions: steps (1, 0) and (0.5); pooled mean 0.5, sample std 0.5: r~ = (r - 0.5) / 0.5001
    group = [[1.0, 0.0], [0.5]]
    assert process_grpo_rewards(group) == [pytest.approx([0.5 / 0.5001, -0.5 / 0.5001]), pytest.approx([0.0])]
    # advantage of a step: sum of the normalised rewards from it on
    assert process_grpo_advantages(group) == [pytest.approx([0.0, -0.5 / 0.5001]), pytest.approx([0.0])]


def test_process_grpo_on_a_bigger_group_matches_torch():
    group = [[0.9, 0.8, 0.1], [0.6, 0.7], [0.95]]
    pooled = torch.tensor([r for s in group for r in s])
    mean, std = pooled.mean().item(), pooled.std().item()
    expected = [[(r - mean) / (std + 1e-4) for r in s] for s in group]
    got = process_grpo_rewards(group)
    for g, e in zip(got, expected):
        assert g == pytest.approx(e, abs=1e-6)
    assert process_grpo_advantages(group)[0] == pytest.approx(
        [expected[0][0] + expected[0][1] + expected[0][2], expected[0][1] + expected[0][2], expected[0][2]], abs=1e-6)


def test_process_grpo_degenerate_groups():
    assert process_grpo_rewards([[], []]) == [[], []]
    assert process_grpo_rewards([[0.7]]) == [[0.0]]  # one reward in all: 0
    assert process_grpo_rewards([[0.5, 0.5], [0.5]]) == [[0.0, 0.0], [0.0]]  # all equal: all 0
    assert group_normalise([1.0, 0.0]) == pytest.approx([0.5 / (math.sqrt(0.5) + 1e-4), -0.5 / (math.sqrt(0.5) + 1e-4)])


def test_assign_credit_dispatches_every_form():
    group = [STEPS, [0.4]]
    assert assign_credit("sum", group) == [STEPS, [0.4]]
    assert assign_credit("min", group) == [[0.0, 0.2, 0.0], [0.4]]
    assert assign_credit("progress", group, baseline=0.5) == [pytest.approx([0.4, -0.7, 0.5]), pytest.approx([-0.1])]
    assert assign_credit("process_grpo", group) == process_grpo_rewards(group)
    assert set(CREDIT_FORMS) == {"sum", "min", "process_grpo", "progress"}
    with pytest.raises(ValueError, match="unknown credit form"):
        assign_credit("mean", group)


def test_reward_to_go_on_tokens_gives_the_process_grpo_advantage_of_each_token():
    # a 6-token response, steps end at tokens 1 and 4, token 5 is EOS; normalised (1, -1)
    rewards = torch.tensor([[0.0, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    adv = reward_to_go(rewards, mask)
    assert adv.tolist() == [[0.0, 0.0, -1.0, -1.0, -1.0, 0.0, 0.0]]
    # discounted
    assert reward_to_go(torch.tensor([[1.0, 0.0, 2.0]]), gamma=0.5).tolist() == [[1.5, 1.0, 2.0]]


def test_process_grpo_is_the_toolkit_ppos_process_group_advantages():
    """One definition: the per-step lists here and prm.ppo.advantages on tokens agree."""
    from prm.ppo.advantages import process_group_advantages

    group = [[0.9, 0.8, 0.1], [0.6, 0.7], [0.95], []]
    # tokens: solution i's step k ends at token 2k + 1; rows of 8 tokens, the last ones padding
    rewards, placed, mask = torch.zeros(4, 8), torch.zeros(4, 8), torch.zeros(4, 8)
    for i, steps in enumerate(group):
        mask[i, : 2 * len(steps) + 1] = 1
        for k, r in enumerate(steps):
            rewards[i, 2 * k + 1], placed[i, 2 * k + 1] = r, 1
    token_adv = process_group_advantages(rewards, placed, mask, group_size=4)
    normalised = process_grpo_rewards(group)
    placed_normalised = torch.zeros(4, 8)
    for i, steps in enumerate(normalised):
        for k, r in enumerate(steps):
            placed_normalised[i, 2 * k + 1] = r
    torch.testing.assert_close(reward_to_go(placed_normalised, mask), token_adv, atol=1e-5, rtol=0)
    for i, steps in enumerate(process_grpo_advantages(group)):
        assert steps == pytest.approx([token_adv[i, 2 * k + 1].item() for k in range(len(steps))], abs=1e-5)
