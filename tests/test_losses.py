"""Losses keep soft labels soft, mask as documented and match their formulas; metrics too."""

import math

import pytest
import torch

from prm.collate import LengthGroupedBatchSampler, collate_features
from prm.losses import outcome_bce_loss, pairwise_loss, step_bce_loss
from prm.metrics import processbench_f1, step_accuracy, step_auc


def _bce(logit, label):
    p = 1 / (1 + math.exp(-logit))
    return -(label * math.log(p) + (1 - label) * math.log(1 - p))


def test_soft_label_is_not_rounded():
    logits = torch.tensor([[0.0, 1.2, 0.0, -0.4]])
    mask = torch.tensor([[False, True, False, True]])
    soft = torch.tensor([[0.0, 0.3, 0.0, 1.0]])
    hard = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    loss = step_bce_loss(logits, soft, mask)
    assert loss.item() == pytest.approx((_bce(1.2, 0.3) + _bce(-0.4, 1.0)) / 2, rel=1e-6)
    assert loss.item() != pytest.approx(step_bce_loss(logits, hard, mask).item(), rel=1e-3)


def test_step_loss_is_one_term_per_labelled_position():
    labels = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    mask = torch.tensor([[True, True, True, True], [True, False, True, True]])
    logits = torch.randn(2, 4)
    terms = step_bce_loss(logits, labels, mask, reduction="none")
    assert terms.tolist() == pytest.approx([_bce(logit, label) for logit, label in zip(logits[mask].tolist(),
                                                                                        labels[mask].tolist())])
    assert step_bce_loss(logits, labels, mask, reduction="sum").item() == pytest.approx(terms.sum().item())


def test_outcome_and_pairwise_formulas():
    logits, labels = torch.tensor([0.5, -1.0]), torch.tensor([1.0, 0.25])
    assert outcome_bce_loss(logits, labels).item() == pytest.approx((_bce(0.5, 1) + _bce(-1.0, 0.25)) / 2, rel=1e-6)
    chosen, rejected, margin = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 2.0]), torch.tensor([0.2, 0.0])
    expected = [-math.log(1 / (1 + math.exp(-(1.0 - 0.5 - 0.2)))) + 0.1 * 1.5 ** 2,
                -math.log(1 / (1 + math.exp(-(0.0 - 2.0)))) + 0.1 * 2.0 ** 2]
    got = pairwise_loss(chosen, rejected, margin, centering_coef=0.1, reduction="none")
    assert got.tolist() == pytest.approx(expected, rel=1e-6)
    # A larger margin asks for a larger gap: the loss grows.
    assert pairwise_loss(chosen, rejected, margin + 1).item() > pairwise_loss(chosen, rejected, margin).item()


def test_metrics():
    assert step_auc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert step_auc([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]) == 0.0
    assert step_auc([0.5, 0.5, 0.5], [1, 0, 1]) == 0.5
    assert step_auc([0.7, 0.3, 0.7, 0.1], [0.9, 0.2, 0.1, 0.0]) == pytest.approx(5 / 6)
    assert step_accuracy([0.9, 0.4], [True, True]) == 0.5
    result = processbench_f1([[0.9, 0.2, 0.1], [0.9, 0.9], [0.9, 0.1]], [[1, 0, 0], [1, 1], [1, 1]])
    assert result["error_accuracy"] == 1.0 and result["correct_accuracy"] == 0.5
    assert result["f1"] == pytest.approx(2 / 3)


def test_collate_pads_and_places_labels():
    features = [
        {"input_ids": [5, 6, 7], "label_positions": [2], "labels": [0.3], "outcome_position": 2, "outcome_label": 0.3},
        {"input_ids": [5, 6, 7, 8, 9], "label_positions": [1, 4], "labels": [1.0, 0.0], "outcome_position": 4,
         "outcome_label": 0.0},
    ]
    batch = collate_features(features, pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]]
    assert batch["attention_mask"].sum(1).tolist() == [3, 5]
    assert batch["step_labels"][0, 2].item() == pytest.approx(0.3)
    assert batch["step_mask"].nonzero().tolist() == [[0, 2], [1, 1], [1, 4]]


def test_length_grouped_sampler_is_seeded_sharded_and_grouped():
    lengths = [(i * 37) % 101 for i in range(64)]
    one = LengthGroupedBatchSampler(lengths, 8, seed=3, group_batches=4)
    shards = [LengthGroupedBatchSampler(lengths, 4, num_processes=2, process_index=p, seed=3, group_batches=4)
              for p in range(2)]
    assert list(one) == list(LengthGroupedBatchSampler(lengths, 8, seed=3, group_batches=4))
    for batch, first, second in zip(one, *shards):
        assert batch == first + second  # 2 processes x 4 see the same global batch as 1 x 8
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in one) / len(one)
    random_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b)
                        for b in LengthGroupedBatchSampler(lengths, 8, seed=3, group_by_length=False)) / len(one)
    assert spread < random_spread / 2
    one.set_epoch(1)
    epoch_one = list(one)
    assert epoch_one != list(LengthGroupedBatchSampler(lengths, 8, seed=3, group_batches=4))
    one.set_epoch(1, start_batch=3)
    assert list(one) == epoch_one[3:]
