"""Shared rows: solutions of one prompt in one prefix tree under a tree attention mask give
the logits, losses and gradients of the padded layout, and the sampler keeps them together."""

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from prm.collate import LengthGroupedBatchSampler, collate_features, collate_pairs
from prm.modeling import RewardModel, RewardSettings
from generation.tiny import build_tiny_causal_lm, train_tokenizer
from prm.train import TrainConfig, encode_records, loss_sums, model_inputs, train

sys.path.insert(0, str(Path(__file__).parent))
from test_train import toy_records, write_jsonl  # noqa: E402


@pytest.fixture(scope="module")
def joint_model():
    records = toy_records(40, 3, solutions_per_prompt=4)
    tokenizer = train_tokenizer([r["prompt"] for r in records] + [s for r in records for s in r["completions"]],
                                vocab_size=300)
    torch.manual_seed(0)
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer), RewardSettings(objective="joint"))
    return tokenizer, model


def _features(tokenizer, model, max_length=512):
    # Prompts with 1, 5 (a row of 4 + a row of 1) and 3 solutions, interleaved as a sampler may
    # give them; two solutions of prompt 2 agree on their first step, one is a duplicate with
    # other (soft) labels, so rows share step prefixes and whole solutions, not only prompts.
    records = toy_records(9, 5, solutions_per_prompt=1)
    prompts = ["Problem 1: check", "Problem 2: check", "Problem 2: check", "Problem 3: check", "Problem 2: check",
               "Problem 3: check", "Problem 2: check", "Problem 3: check", "Problem 2: check"]
    records = [{**record, "prompt": prompt + " each step in turn"} for record, prompt in zip(records, prompts)]
    records[2] = {**records[1], "completions": records[1]["completions"][:1] + ["take half no", "sum two no"],
                  "labels": records[1]["labels"][:1] + [0.0, 0.0]}
    records[4] = {**records[1], "labels": [0.7] * len(records[1]["labels"])}
    features, _ = encode_records(tokenizer, records, model.settings, max_length)
    return features


def _run(model, batch, config):
    model.zero_grad()
    output = model(batch["input_ids"], **model_inputs(batch, use_mask=False, dtype=torch.float32))
    sums = loss_sums(output, batch, config)
    sum(sums.values()).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return output, sums, grads


@pytest.mark.parametrize("max_length", [512, 28])
def test_shared_rows_give_the_padded_logits_losses_and_gradients(joint_model, max_length):
    tokenizer, model = joint_model
    features = _features(tokenizer, model, max_length)
    assert any(f["n_dropped"] for f in features) == (max_length < 512)  # truncated sequences share rows too
    config = TrainConfig(objective="joint")
    padded = collate_features(features, tokenizer.pad_token_id)
    shared = collate_features(features, tokenizer.pad_token_id, solutions_per_row=4)
    assert "position_ids" in shared and shared["input_ids"].shape[0] < len(features)
    assert shared["num_tokens"] == padded["num_tokens"] == sum(len(f["input_ids"]) for f in features)
    assert shared["num_computed"] < padded["num_computed"]  # a row computes a prompt or step prefix once
    # The duplicated solution adds label weight, not tokens.
    pair, with_duplicate = ([features[i] for i in rows] for rows in ([1, 2], [1, 2, 4]))
    assert (collate_features(pair, tokenizer.pad_token_id, solutions_per_row=4)["num_computed"]
            == collate_features(with_duplicate, tokenizer.pad_token_id, solutions_per_row=4)["num_computed"])
    out_padded, sums_padded, grads_padded = _run(model, padded, config)
    out_shared, sums_shared, grads_shared = _run(model, shared, config)
    # Step logits: every labelled position of the padded layout has its value in the shared rows,
    # which hold each distinct step prefix once (so fewer positions, weighted by their count).
    shared_values = out_shared.step_logits[shared["step_mask"]]
    padded_values = out_padded.step_logits[padded["step_mask"]]
    assert len(shared_values) < len(padded_values)
    assert (padded_values[:, None] - shared_values[None, :]).abs().min(dim=1).values.max() < 1e-5
    assert shared["step_weights"].sum() == padded["step_mask"].sum()
    # Outcome logits: one per feature, in feature order, in both layouts.
    read = lambda out, batch: out.outcome_logits.reshape(-1)[batch["outcome_positions"].clamp(min=0)]  # noqa: E731
    torch.testing.assert_close(read(out_shared, shared), read(out_padded, padded), rtol=1e-5, atol=1e-5)
    assert torch.equal(shared["outcome_positions"] >= 0, padded["outcome_positions"] >= 0)
    for name in sums_padded:
        torch.testing.assert_close(sums_shared[name], sums_padded[name], rtol=1e-5, atol=1e-5)
    assert grads_shared.keys() == grads_padded.keys()
    for name in grads_padded:
        torch.testing.assert_close(grads_shared[name], grads_padded[name], rtol=1e-4, atol=1e-6)


def test_pairs_share_their_prompt(joint_model):
    tokenizer, model = joint_model
    settings = RewardSettings(objective="pairwise")
    records = [{"prompt": f"Problem {i}: check", "chosen": "add two ok", "rejected": "take half no\nsum no"}
               for i in range(3)]
    features, _ = encode_records(tokenizer, records, settings, 512)
    padded = collate_pairs(features, tokenizer.pad_token_id)
    shared = collate_pairs(features, tokenizer.pad_token_id, solutions_per_row=2)
    assert shared["input_ids"].shape[0] == 3 and padded["input_ids"].shape[0] == 6
    with torch.no_grad():
        values = [model(b["input_ids"], **model_inputs(b, use_mask=False, dtype=torch.float32))
                  .outcome_logits.reshape(-1)[b["outcome_positions"]] for b in (padded, shared)]
    torch.testing.assert_close(values[1], values[0], rtol=1e-5, atol=1e-5)


def test_distinct_prompts_of_alike_length_stay_padded(joint_model):
    tokenizer, model = joint_model
    records = [{"prompt": f"Problem {i}: check", "completions": ["add two ok", "sum three no"], "labels": [True, False]}
               for i in range(6)]
    features, _ = encode_records(tokenizer, records, model.settings, 512)
    plain = collate_features(features, tokenizer.pad_token_id)
    asked = collate_features(features, tokenizer.pad_token_id, solutions_per_row=4)
    assert "position_ids" not in asked
    for key in plain:
        assert torch.equal(plain[key], asked[key]), key


def test_sampler_keeps_solutions_of_a_prompt_together():
    prompts = [i // 5 for i in range(60)]  # 12 prompts x 5 solutions
    lengths = [10 + (i * 7) % 13 for i in range(60)]
    sampler = LengthGroupedBatchSampler(lengths, 8, seed=1, group_by_length=False, prompts=prompts, solutions_per_prompt=3)
    batches = list(sampler)
    assert len(batches) == 7 and all(len(b) == 8 for b in batches)
    order = [i for b in batches for i in b]
    assert len(set(order)) == len(order)
    # A prompt's 5 solutions come as units of 3 + 2, each contiguous in the order: at most two runs.
    run_prompts = [prompts[order[0]]] + [prompts[c] for p, c in zip(order, order[1:]) if prompts[p] != prompts[c]]
    assert max(run_prompts.count(prompt) for prompt in set(prompts)) <= 2
    assert len(run_prompts) < len(order) / 2
    assert batches == list(LengthGroupedBatchSampler(lengths, 8, seed=1, group_by_length=False, prompts=prompts,
                                                     solutions_per_prompt=3))
    halves = [LengthGroupedBatchSampler(lengths, 4, num_processes=2, process_index=p, seed=1, group_by_length=False,
                                        prompts=prompts, solutions_per_prompt=3) for p in range(2)]
    assert [a + b for a, b in zip(*halves)] == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_one_solution_per_prompt_is_the_plain_random_sampler():
    lengths = [(i * 37) % 101 for i in range(64)]
    plain = LengthGroupedBatchSampler(lengths, 8, seed=3, group_by_length=False)
    keyed = LengthGroupedBatchSampler(lengths, 8, seed=3, group_by_length=False, prompts=[i // 4 for i in range(64)],
                                      solutions_per_prompt=1)
    assert list(plain) == list(keyed)


def test_training_with_shared_prompts_learns_and_reports_the_saving(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", toy_records(160, 0, solutions_per_prompt=4))
    held_out = write_jsonl(tmp_path / "eval.jsonl", toy_records(40, 1, solutions_per_prompt=4))
    run_dir = train(TrainConfig(data=data, eval_data=held_out, model="tiny:tiny", vocab_size=300,
                                output_dir=str(tmp_path / "run"), batch_size=8, max_steps=60, lr=1e-2, warmup_steps=2,
                                eval_every=0, log_every=1, progress=False, seed=0, solutions_per_prompt=4))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = next(row for row in rows if "prompt_sharing_saving" in row)
    assert summary["prompt_sharing_saving"] > 0.1
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert results["step_auc"] >= 0.9


def test_first_wrong_only_per_sequence_in_shared_rows(joint_model):
    from prm.collate import drop_labels_after_first_wrong
    from prm.losses import step_bce_loss

    tokenizer, model = joint_model
    features = _features(tokenizer, model)
    kept = [drop_labels_after_first_wrong(f) for f in features]
    assert sum(len(f["labels"]) for f in kept) < sum(len(f["labels"]) for f in features)  # something is cut
    padded = collate_features(features, tokenizer.pad_token_id)
    shared = collate_features(kept, tokenizer.pad_token_id, solutions_per_row=4)
    assert "position_ids" in shared
    assert drop_labels_after_first_wrong({"labels": [1.0, 0.0, 1.0], "label_positions": [3, 5, 7]}) == {
        "labels": [1.0, 0.0], "label_positions": [3, 5]}
    with torch.no_grad():
        logits = [model(b["input_ids"], **model_inputs(b, use_mask=False, dtype=torch.float32)).step_logits
                  for b in (padded, shared)]
    # Expected: each sequence alone, its steps up to and including its first wrong one.
    expected = torch.zeros(())
    for row, feature in enumerate(features):
        first_wrong = next((i for i, label in enumerate(feature["labels"]) if label < 0.5), len(feature["labels"]))
        positions = feature["label_positions"][:first_wrong + 1]
        expected = expected + F.binary_cross_entropy_with_logits(
            logits[0][row, positions], torch.tensor(feature["labels"][:first_wrong + 1]), reduction="sum")
    got = step_bce_loss(logits[1], shared["step_labels"], shared["step_mask"], weights=shared["step_weights"],
                        reduction="sum")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_short_trees_are_packed_beside_long_ones(joint_model):
    tokenizer, model = joint_model
    long_records = [{"prompt": "Problem 1: check each step in turn", "completions": [f"{w} two ok", "sum three no", "half no"],
                     "labels": [True, False, False]} for w in ("add", "take", "sum", "half")]
    short_records = [{"prompt": f"P{i}", "completions": ["ok"], "labels": [True]} for i in range(4)]
    features, _ = encode_records(tokenizer, long_records + short_records, model.settings, 512)
    batch = collate_features(features, tokenizer.pad_token_id, solutions_per_row=4)
    # One row holds the tree of the long solutions, one the four short trees side by side.
    assert batch["input_ids"].shape[0] == 2 and (batch["input_ids"][1] != tokenizer.pad_token_id).sum() > 12
    padded = collate_features(features, tokenizer.pad_token_id)
    with torch.no_grad():
        shared_out = model(batch["input_ids"], **model_inputs(batch, use_mask=False, dtype=torch.float32))
        padded_out = model(padded["input_ids"])
    torch.testing.assert_close(shared_out.outcome_logits.reshape(-1)[batch["outcome_positions"]],
                               padded_out.outcome_logits.reshape(-1)[padded["outcome_positions"]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_tree_mask_holds_under_every_supported_attention(joint_model, attention, dtype, atol):
    # eager attention adds a 4-D mask to the scores instead of selecting with it, so a mask
    # that is right for sdpa can leave eager unmasked: both must score a shared row as the
    # sequences alone, also in a half-precision model (whose mask must be in its dtype).
    from transformers import AutoModelForCausalLM

    from generation.tiny import tiny_config

    tokenizer, _ = joint_model
    torch.manual_seed(0)
    backbone = AutoModelForCausalLM.from_config(tiny_config(tokenizer), attn_implementation=attention)
    assert backbone.config._attn_implementation == attention
    model = RewardModel.from_backbone(backbone, RewardSettings(objective="joint")).eval().to(dtype)
    prompt = "Problem 1: check each step in turn, add the two sums and take half of the rest"
    records = [{"prompt": prompt, "completions": ["add two ok", "sum three no"], "labels": [True, False]},
               {"prompt": prompt, "completions": ["take half no", "half ok"], "labels": [False, True]}]
    features, _ = encode_records(tokenizer, records, model.settings, 512)
    batch = collate_features(features, tokenizer.pad_token_id, solutions_per_row=2)
    first, second = (len(f["input_ids"]) for f in features)
    shared = features[0]["prompt_length"]
    # One row: the first solution, then the second one's steps (the solutions share the prompt only).
    assert "position_ids" in batch and batch["input_ids"].shape == (1, first + second - shared)
    where = [torch.arange(first), torch.cat([torch.arange(shared), torch.arange(first, first + second - shared)])]
    for feature, columns in zip(features, where):
        assert batch["input_ids"][0, columns].tolist() == feature["input_ids"]
    with torch.no_grad():
        together = model(batch["input_ids"], **model_inputs(batch, use_mask=False, dtype=dtype))
        for feature, columns in zip(features, where):
            alone = model(torch.tensor([feature["input_ids"]]))
            torch.testing.assert_close(together.step_logits[0, columns], alone.step_logits[0], rtol=0, atol=atol)
            torch.testing.assert_close(together.outcome_logits[0, columns], alone.outcome_logits[0], rtol=0, atol=atol)
