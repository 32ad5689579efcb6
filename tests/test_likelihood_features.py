"""Step likelihood features: the min and mean log-probability the model gives the tokens of
each step, read at the step's end; the same in padded and shared-prompt rows; trained weights."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from prm.collate import collate_features
from prm.modeling import RewardModel, RewardSettings, digit_token_ids, step_likelihood_features
from generation.tiny import build_tiny_causal_lm, train_tokenizer
from prm.train import TrainConfig, encode_records, model_inputs, train

sys.path.insert(0, str(Path(__file__).parent))
from test_train import toy_records, write_jsonl  # noqa: E402

SEP = 9


def test_features_cover_each_step_after_its_first_token():
    # ids: prompt 1 2 SEP | step 3 4 SEP | step 5 SEP ; logits put log-prob -k on token k.
    ids = torch.tensor([[1, 2, SEP, 3, 4, SEP, 5, SEP]])
    vocab = 10
    logits = torch.zeros(1, 8, vocab)
    logits[..., :] = -torch.arange(vocab, dtype=torch.float)  # same distribution everywhere
    log_p = torch.log_softmax(logits[0, 0], -1)
    features = step_likelihood_features(logits, ids, SEP)
    # Step "3 4 SEP" ends at index 5: its tokens after the first are 4 and SEP.
    expected = torch.stack([log_p[[4, SEP]].min(), log_p[[4, SEP]].mean()])
    torch.testing.assert_close(features[0, 5], expected)
    # Step "5 SEP" ends at index 7: only SEP.
    torch.testing.assert_close(features[0, 7], torch.stack([log_p[SEP], log_p[SEP]]))
    # Padding after the end, or a position jump, starts a new step.
    padded = step_likelihood_features(logits, ids, SEP, padding_mask=torch.tensor([[1] * 6 + [0, 0]]))
    torch.testing.assert_close(padded[0, 5], expected)
    jumped = step_likelihood_features(logits, ids, SEP, position_ids=torch.tensor([[0, 1, 2, 3, 4, 5, 3, 4]]))
    torch.testing.assert_close(jumped[0, 7], torch.stack([log_p[SEP], log_p[SEP]]))
    # With "digit" tokens {4, 5}: two more features over those tokens only; a step without any gets 0, 0.
    with_numbers = step_likelihood_features(logits, ids, SEP, number_ids=torch.tensor([4, 5]))
    torch.testing.assert_close(with_numbers[0, 5], torch.cat([expected, torch.stack([log_p[4], log_p[4]])]))
    torch.testing.assert_close(with_numbers[0, 7][2:], torch.zeros(2))  # "5 SEP": its 5 is the step's first token


@pytest.fixture(scope="module", params=["min_mean", "with_numbers"])
def likelihood_model(request):
    records = toy_records(40, 3, solutions_per_prompt=4)
    tokenizer = train_tokenizer([r["prompt"] for r in records] + [s for r in records for s in r["completions"]],
                                vocab_size=300)
    torch.manual_seed(0)
    settings = RewardSettings(objective="joint", likelihood_features=True)
    weights = [[0.5, 0.8]]
    if request.param == "with_numbers":
        settings.number_token_ids = digit_token_ids(tokenizer)
        assert settings.number_token_ids  # the toy prompts are numbered
        weights = [[0.5, 0.8, 0.6, 0.3]]
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer), settings, tokenizer=tokenizer)
    with torch.no_grad():
        model.likelihood_head.weight.copy_(torch.tensor(weights))
    return tokenizer, model


def test_shared_rows_give_the_padded_step_logits(likelihood_model):
    tokenizer, model = likelihood_model
    records = toy_records(12, 5, solutions_per_prompt=4)
    features, _ = encode_records(tokenizer, records, model.settings, 512)
    values = []
    for solutions_per_row in (1, 4):
        batch = collate_features(features, tokenizer.pad_token_id, solutions_per_row=solutions_per_row)
        with torch.no_grad():
            output = model(batch["input_ids"], **model_inputs(batch, use_mask=False, dtype=torch.float32))
        values.append((output.step_logits[batch["step_mask"]], batch))
    (padded, _), (shared, shared_batch) = values
    assert "position_ids" in shared_batch
    # Every padded step logit appears among the shared rows' (which hold each prefix once).
    assert (padded[:, None] - shared[None, :]).abs().min(dim=1).values.max() < 1e-4


def test_a_model_with_likelihood_features_saves_and_reloads_exactly(tmp_path, likelihood_model):
    tokenizer, model = likelihood_model
    model.save_pretrained(tmp_path / "rm")
    loaded = RewardModel.from_pretrained(tmp_path / "rm")
    assert loaded.settings.likelihood_features and loaded.settings.separator_token_id == model.settings.separator_token_id
    assert loaded.settings.number_token_ids == model.settings.number_token_ids
    ids = torch.tensor([tokenizer.encode("Problem 1: check\nadd two ok 12\ntake no 3\n")])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).step_logits, model(ids).step_logits)


def test_training_learns_the_likelihood_weights(tmp_path):
    train_path = write_jsonl(tmp_path / "train.jsonl", toy_records(160, 0))
    eval_path = write_jsonl(tmp_path / "eval.jsonl", toy_records(40, 1))
    run = train(TrainConfig(data=train_path, eval_data=eval_path, model="tiny:tiny", vocab_size=300,
                            output_dir=str(tmp_path / "run"), batch_size=8, max_steps=60, lr=1e-2, warmup_steps=2,
                            eval_every=0, log_every=1, progress=False, seed=0, likelihood_features=True, lm_coef=1.0))
    model = RewardModel.from_pretrained(run)
    assert model.likelihood_head.weight.abs().sum() > 0  # moved from its zero start
    assert json.loads((run / "eval_results.json").read_text())["step_auc"] >= 0.9


def test_likelihood_features_need_a_step_head():
    with pytest.raises(ValueError, match="likelihood_features"):
        TrainConfig(objective="orm", likelihood_features=True)


def test_number_features_and_a_head_learning_rate_train_and_reload(tmp_path):
    train_path = write_jsonl(tmp_path / "train.jsonl", toy_records(80, 0))
    config = TrainConfig(data=train_path, eval_data=train_path, model="tiny:tiny", vocab_size=300,
                         output_dir=str(tmp_path / "run"), batch_size=8, max_steps=5, lr=1e-4, head_lr=1e-2,
                         warmup_steps=0, lr_scheduler="constant", eval_every=0, progress=False, seed=0,
                         likelihood_features=True, number_features=True)
    model = RewardModel.from_pretrained(train(config))
    assert model.settings.number_token_ids and model.likelihood_head.weight.shape == (1, 4)
    slow = RewardModel.from_pretrained(train(replace(config, head_lr=0.0, output_dir=str(tmp_path / "slow"))))
    # Adam moves a weight by about its learning rate per step: the heads' own rate shows.
    assert model.likelihood_head.weight.abs().max() > 10 * slow.likelihood_head.weight.abs().max()
    with pytest.raises(ValueError, match="--number_features"):
        TrainConfig(number_features=True)


def test_head_lr_puts_the_heads_in_their_own_parameter_group(likelihood_model):
    from prm.train import make_optimizer

    _, model = likelihood_model
    optimizer, _ = make_optimizer(TrainConfig(lr=1e-4, head_lr=1e-2), model, torch.device("cpu"))
    by_lr = {group["initial_lr"]: sum(p.numel() for p in group["params"]) for group in optimizer.param_groups}
    heads = sum(p.numel() for name, p in model.named_parameters() if name.split(".")[0].endswith("_head"))
    assert by_lr[1e-2] == heads and by_lr[1e-4] == sum(p.numel() for p in model.parameters()) - heads
