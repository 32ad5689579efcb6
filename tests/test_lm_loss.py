"""The auxiliary language-model loss on correct steps (`--lm_coef`, GenRM-style joint SFT):
which tokens it trains on, its equality across batch layouts, and that it trains."""

import json
import sys
from pathlib import Path

import pytest
import torch

from prm.collate import collate_features
from prm.train import TrainConfig, encode_records, loss_sums, model_inputs, train

sys.path.insert(0, str(Path(__file__).parent))
from test_shared_prompts import joint_model as prm_model  # noqa: E402,F401  (the fixture)
from test_train import toy_records, write_jsonl  # noqa: E402


def test_targets_are_the_next_tokens_inside_correct_steps_only(prm_model):
    tokenizer, model = prm_model
    record = {"prompt": "Problem 1: check", "completions": ["add two ok", "take half no", "sum ok"],
              "labels": [True, False, True]}
    (feature,), _ = encode_records(tokenizer, [record], model.settings, 512)
    batch = collate_features([feature], tokenizer.pad_token_id)
    ids, targets, weights = feature["input_ids"], batch["lm_targets"][0], batch["lm_weights"][0]
    starts = [feature["prompt_length"]] + [end + 1 for end in feature["label_positions"][:-1]]
    expected = torch.full((len(ids),), -100)
    for (start, end), label in zip(zip(starts, feature["label_positions"]), record["labels"]):
        if label:  # a correct step: every token predicts the next one of the same step
            expected[start:end] = torch.tensor(ids[start + 1:end + 1])
    assert torch.equal(targets[:len(ids)], expected)
    assert torch.equal(weights > 0, expected >= 0)
    assert (targets[feature["label_positions"]] == -100).all()  # a step end predicts nothing


def test_a_soft_label_of_one_half_is_a_correct_step_for_the_lm_loss_too(prm_model):
    """0.5 (2 of 4 rollouts) counts as correct everywhere (`is_true_label`, the metrics, the
    first-wrong cut), so the LM loss trains on it as well."""
    tokenizer, model = prm_model
    hard = {"prompt": "Problem 1: check", "completions": ["add two ok", "take half no"], "labels": [True, False]}
    soft = {**hard, "labels": [0.5, 0.0]}
    weights = [collate_features(encode_records(tokenizer, [r], model.settings, 512)[0], tokenizer.pad_token_id)["lm_weights"]
               for r in (hard, soft)]
    assert weights[0].sum() > 0 and torch.equal(weights[0], weights[1])


def test_lm_loss_is_the_same_in_shared_rows_and_padded_rows(prm_model):
    tokenizer, model = prm_model
    records = toy_records(12, 5, solutions_per_prompt=4)
    records[1] = {**records[0], "labels": [0.7] * len(records[0]["labels"])}  # a duplicate with soft labels
    features, _ = encode_records(tokenizer, records, model.settings, 512)
    config = TrainConfig(objective="joint", lm_coef=0.5)
    results = []
    for solutions_per_row in (1, 4):
        batch = collate_features(features, tokenizer.pad_token_id, solutions_per_row=solutions_per_row)
        model.zero_grad()
        output = model(batch["input_ids"], **model_inputs(batch, use_mask=False, dtype=torch.float32, lm=True))
        sums = loss_sums(output, batch, config)
        sums["lm"].backward()
        results.append((batch, sums["lm"].detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                     if p.grad is not None}))
    (padded, lm_padded, grads_padded), (shared, lm_shared, grads_shared) = results
    assert "position_ids" in shared  # the shared layout was really used
    assert shared["lm_weights"].sum() == padded["lm_weights"].sum() > 0
    torch.testing.assert_close(lm_shared, lm_padded, rtol=1e-5, atol=1e-5)
    for name in grads_padded:
        torch.testing.assert_close(grads_shared[name], grads_padded[name], rtol=1e-4, atol=1e-6)


def test_lm_coef_needs_step_labels():
    with pytest.raises(ValueError, match="lm_coef"):
        TrainConfig(objective="orm", lm_coef=0.5)
    with pytest.raises(ValueError, match="lm_coef"):
        TrainConfig(lm_coef=-1.0)


def test_training_with_lm_coef_lowers_the_lm_loss_and_keeps_the_prm(tmp_path):
    train_path = write_jsonl(tmp_path / "train.jsonl", toy_records(160, 0))
    eval_path = write_jsonl(tmp_path / "eval.jsonl", toy_records(40, 1))
    run = train(TrainConfig(data=train_path, eval_data=eval_path, model="tiny:tiny", vocab_size=300,
                            output_dir=str(tmp_path / "run"), batch_size=8, max_steps=60, lr=1e-2, warmup_steps=2,
                            eval_every=0, log_every=1, progress=False, seed=0, lm_coef=1.0))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lm = [row["loss_lm"] for row in rows if "loss_lm" in row]
    assert len(lm) == 60 and sum(lm[-10:]) / 10 < 0.8 * sum(lm[:5]) / 5
    assert json.loads((run / "eval_results.json").read_text())["step_auc"] >= 0.9
