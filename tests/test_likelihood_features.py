"""Step likelihood features: the min and mean log-probability the model gives the tokens of
each step, read at the step's end; the same in padded and shared-prompt rows; trained weights."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from prm.collate import collate_features
from prm.encoding import encode_steps
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


def _outcome_model(tokenizer, with_numbers: bool):
    torch.manual_seed(1)
    settings = RewardSettings(objective="joint", likelihood_features=True, outcome_likelihood_features=True)
    if with_numbers:
        settings.number_token_ids = digit_token_ids(tokenizer)
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer), settings, tokenizer=tokenizer)
    with torch.no_grad():
        model.likelihood_head.weight.normal_()
        model.outcome_likelihood_head.weight.normal_()
    return model


@pytest.mark.parametrize("with_numbers", [False, True])
def test_the_outcome_reads_the_lowest_step_features_alike_in_one_pass_and_step_by_step(with_numbers):
    """The outcome of a solution adds the weighted min over its steps of the likelihood features,
    in one pass over the whole solution and when beam search extends a KV-cached prefix."""
    from prm.modeling import step_likelihood_features
    from prm.scoring import RewardScorer

    records = toy_records(20, 4, solutions_per_prompt=2)
    tokenizer = train_tokenizer([r["prompt"] for r in records] + [s for r in records for s in r["completions"]],
                                vocab_size=300)
    model = _outcome_model(tokenizer, with_numbers)
    scorer = RewardScorer(model, tokenizer)
    prompt, steps = records[0]["prompt"], records[0]["completions"]
    encoded = scorer._encode(prompt, steps)
    ids = torch.tensor([encoded.input_ids])
    with torch.no_grad():
        output = model(ids)
        features = step_likelihood_features(model._lm_logits(model.backbone.base_model(input_ids=ids).last_hidden_state),
                                            ids, model.settings.separator_token_id, number_ids=model.number_ids)
        lowest = features[0, encoded.step_ends].min(dim=0).values
        expected = torch.sigmoid(output.outcome_logits[0, encoded.step_ends[-1]]
                                 + model.outcome_likelihood_head(lowest)[0]).item()
        plain = torch.sigmoid(output.outcome_logits[0, encoded.step_ends[-1]]).item()
    (_,), (one_pass,) = scorer.score_solutions(prompt, [steps])
    assert one_pass == pytest.approx(expected, abs=1e-5) and abs(expected - plain) > 1e-3
    state = scorer._blank(prompt)
    for step in steps:
        _, (state,) = scorer._advance([state], [[step]], keep_cache=True)
    assert state.outcome_score == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("first_wrong_only", [False, True])
def test_outcome_likelihood_weights_are_fitted_after_training_and_reload_exactly(tmp_path, first_wrong_only):
    from prm.train import fit_outcome_likelihood

    train_path = write_jsonl(tmp_path / "train.jsonl", toy_records(120, 0))
    config = TrainConfig(data=train_path, eval_data=train_path, model="tiny:tiny", vocab_size=300, objective="joint",
                         output_dir=str(tmp_path / "run"), batch_size=8, max_steps=20, lr=1e-2, warmup_steps=2,
                         eval_every=0, progress=False, seed=0, likelihood_features=True, lm_coef=1.0,
                         outcome_likelihood_features=True, first_wrong_only=first_wrong_only)
    run = train(config)
    model = RewardModel.from_pretrained(run)
    fitted = model.outcome_likelihood_head.weight.clone()
    assert fitted.abs().sum() > 0  # fitted, not left at its zero start
    # Refitting the reloaded model on the same data finds the same weights: they are the optimum
    # the saved model holds, and no other weight moved. The fit sees every step, as the outcome
    # does at inference, also when the step loss stops at the first wrong step.
    features, _ = encode_records(model_tokenizer(run), toy_records(120, 0), model.settings, config.max_length)
    fit_outcome_likelihood(model, features, model_tokenizer(run).pad_token_id)
    torch.testing.assert_close(model.outcome_likelihood_head.weight, fitted, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="--outcome_likelihood_features"):
        TrainConfig(outcome_likelihood_features=True, likelihood_features=True)  # objective prm: no outcome head


def model_tokenizer(run):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(run)


def test_the_outcome_likelihood_head_is_not_a_trained_parameter():
    """It is fitted after training (Newton steps), never by the optimizer: as a trainable parameter
    without a gradient it made multi-process (DDP) training fail at its second step."""
    from prm.train import make_optimizer

    tokenizer = train_tokenizer(["3 + 4 = 7\nThe answer is 7\n"] * 4, vocab_size=300)
    settings = RewardSettings(objective="joint", likelihood_features=True, outcome_likelihood_features=True)
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, size="tiny"), settings, tokenizer=tokenizer)
    head = model.outcome_likelihood_head.weight
    optimizer, _ = make_optimizer(TrainConfig(objective="joint", likelihood_features=True, outcome_likelihood_features=True),
                                  model, torch.device("cpu"))
    assert not head.requires_grad
    assert all(p is not head for group in optimizer.param_groups for p in group["params"])


def test_a_separator_that_repeats_its_end_token_is_refused():
    """Steps end at every copy of the separator's last token: with "\\n\\n" as two "\\n" tokens
    the second one alone would be a step, and every step's features would be 0 and 0."""
    records = toy_records(10, 3, solutions_per_prompt=1)
    tokenizer = train_tokenizer([r["prompt"] for r in records] + [s for r in records for s in r["completions"]],
                                vocab_size=300)
    ids = tokenizer.encode("\n\n", add_special_tokens=False)
    assert len(ids) == 2 and ids[0] == ids[1]
    backbone = build_tiny_causal_lm(tokenizer)
    with pytest.raises(ValueError, match="separator"):
        RewardModel.from_backbone(backbone, RewardSettings(separator="\n\n", likelihood_features=True),
                                  tokenizer=tokenizer)
    tokenizer.add_tokens(["\n\n"], special_tokens=True)  # --add_separator_token: one token, accepted
    backbone.resize_token_embeddings(len(tokenizer))
    model = RewardModel.from_backbone(backbone, RewardSettings(separator="\n\n", likelihood_features=True),
                                      tokenizer=tokenizer)
    encoded = encode_steps(tokenizer, "Problem: add", ["1 + 2 = 3", "3 + 4 = 7"], model.settings)
    with torch.no_grad():
        features = model(torch.tensor([encoded.input_ids])).step_features[0, encoded.step_ends]
    assert (features != 0).all()
