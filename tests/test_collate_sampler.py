"""The batch sampler and gradient accumulation: how a global batch is split into micro-batches
(processes, accumulation steps) never changes which examples an optimizer step sees."""

import pytest

from prm.collate import LengthGroupedBatchSampler

LENGTHS = [(i * 37) % 101 + 1 for i in range(100)]  # 100: not a whole number of 8-example steps


def optimizer_steps(batch_size: int, accumulation_steps: int, num_processes: int = 1, **options) -> list[list[int]]:
    """The examples of each optimizer step of one epoch, over all processes and micro-batches."""
    shards = [list(LengthGroupedBatchSampler(LENGTHS, batch_size, num_processes=num_processes, process_index=p,
                                             accumulation_steps=accumulation_steps, **options))
              for p in range(num_processes)]
    micro = [sorted(index for shard in shards for index in shard[i]) for i in range(len(shards[0]))]
    assert len(micro) % accumulation_steps == 0  # an epoch holds whole optimizer steps only
    return [sorted(index for batch in micro[s:s + accumulation_steps] for index in batch)
            for s in range(0, len(micro), accumulation_steps)]


@pytest.mark.parametrize("group_by_length", [False, True])
@pytest.mark.parametrize("prompts", [None, [i // 3 for i in range(100)]])
def test_an_optimizer_step_sees_the_same_examples_however_its_batch_is_split(group_by_length, prompts):
    # --group_by_length sorted chunks of 16 micro-batches, so with --grad_accum 2 a chunk held
    # half the optimizer steps it holds with a batch twice as large: the steps saw other examples,
    # and `batch b x 2 accumulation steps == batch 2b` (the recipe's promise) failed.
    options = dict(seed=3, group_batches=4, group_by_length=group_by_length, prompts=prompts,
                   solutions_per_prompt=3 if prompts else 1)
    whole = optimizer_steps(8, 1, **options)
    assert len(whole) == 12
    assert optimizer_steps(4, 2, **options) == whole
    assert optimizer_steps(2, 4, **options) == whole
    assert optimizer_steps(2, 2, num_processes=2, **options) == whole


def test_length_grouping_still_groups_lengths_within_an_optimizer_step():
    grouped, shuffled = (optimizer_steps(4, 2, seed=3, group_batches=4, group_by_length=flag) for flag in (True, False))

    def spread(steps):
        return sum(max(LENGTHS[i] for i in step) - min(LENGTHS[i] for i in step) for step in steps) / len(steps)

    assert spread(grouped) < spread(shuffled) / 2


def test_too_few_examples_for_one_optimizer_step_is_refused():
    with pytest.raises(ValueError, match=r"6 examples are fewer than one optimizer step \(4 x 1 processes x 2 "
                                         r"accumulation steps\)"):
        LengthGroupedBatchSampler([3] * 6, 4, accumulation_steps=2)
