"""Training keeps float32 master weights whatever dtype a checkpoint was saved in: AdamW on
bf16 weights rounds most small updates away (a bf16 hub checkpoint loads as bf16)."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

TEXTS = ["Question: What is 3 + 4?\nSolution:\n3 + 4 = 7\nThe answer is 7\n"] * 4


@pytest.fixture(scope="module")
def bf16_policy(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from generation.tiny import save_tiny_causal_lm

    path = save_tiny_causal_lm(tmp_path_factory.mktemp("bf16") / "policy", TEXTS)
    model = AutoModelForCausalLM.from_pretrained(path)
    model.to(torch.bfloat16).save_pretrained(path, safe_serialization=True)
    assert AutoModelForCausalLM.from_pretrained(path).dtype == torch.bfloat16  # what a user's bf16 checkpoint does
    return str(path)


def trainable_dtypes(module) -> set:
    return {p.dtype for p in module.parameters() if p.requires_grad}


def test_prm_train_builds_a_float32_reward_model_from_a_bf16_checkpoint(bf16_policy):
    from prm.train import TrainConfig, build_model

    _, model = build_model(TrainConfig(model=bf16_policy, data="synthetic:tiny"), [])
    assert trainable_dtypes(model) == {torch.float32}


def test_sft_trains_and_saves_a_bf16_policy_in_float32(bf16_policy, tmp_path):
    import json

    from transformers import AutoModelForCausalLM

    from prm.sft import SFTConfig, train_sft

    data = tmp_path / "sft.jsonl"
    data.write_text(json.dumps({"question": "What is 3 + 4?", "answer": "7", "steps": ["3 + 4 = 7", "The answer is 7"]}) + "\n")
    out = train_sft(SFTConfig(data=str(data), model=bf16_policy, output_dir=str(tmp_path / "sft"), max_steps=1,
                              batch_size=1, warmup_steps=0, lr=1e-4, n_eval=0, save_every=0))
    assert AutoModelForCausalLM.from_pretrained(out).dtype == torch.float32


def test_ppo_loads_a_bf16_policy_in_float32(bf16_policy):
    from prm.ppo.train import PPOConfig, build_models

    actor, reference, _ = build_models(PPOConfig(policy=bf16_policy, mode="outcome"))
    assert trainable_dtypes(actor) == {torch.float32}
    assert {p.dtype for p in reference.policy.parameters()} == {torch.float32}


@pytest.fixture
def fresh_accelerator_state():
    """accelerate keeps one AcceleratorState a process, and refuses an Accelerator of another
    --mixed_precision than the first one made (an earlier test's "no"): reset it around the test,
    as accelerate's own test cases do."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


def test_mixed_precision_evaluates_and_fits_the_model_as_it_is_saved(tmp_path, monkeypatch, fresh_accelerator_state):
    # Under --mixed_precision the held-out metrics and the outcome likelihood fit ran under
    # accelerate's autocast, while the saved model scores in float32: the reported metrics and
    # the fitted weights described another model than the one `prm.load` gives (bf16 autocast
    # runs on CPU too).
    import json

    from transformers import AutoTokenizer

    import prm.train
    from prm.modeling import RewardModel
    from prm.train import TrainConfig, encode_records, evaluate, fit_outcome_likelihood, train
    from test_train import toy_records, write_jsonl

    train_records, eval_records = toy_records(48, 0), toy_records(16, 1)
    scored = []  # the scores each metric is computed from, step AUC and outcome AUC in turn
    auc = prm.train.step_auc
    monkeypatch.setattr(prm.train, "step_auc", lambda scores, labels: scored.append(list(scores)) or auc(scores, labels))
    trained_in = set()  # the dtype of the training forward's step logits
    sums = prm.train.loss_sums
    monkeypatch.setattr(prm.train, "loss_sums",
                        lambda output, *args: trained_in.add(output.step_logits.dtype) or sums(output, *args))
    run = train(TrainConfig(data=write_jsonl(tmp_path / "train.jsonl", train_records),
                            eval_data=write_jsonl(tmp_path / "eval.jsonl", eval_records), model="tiny:tiny",
                            vocab_size=300, output_dir=str(tmp_path / "run"), objective="joint", batch_size=8,
                            max_steps=3, lr=3e-3, warmup_steps=1, eval_every=0, progress=False, seed=0,
                            likelihood_features=True, outcome_likelihood_features=True, mixed_precision="bf16"))
    assert trained_in == {torch.bfloat16}  # training itself still runs in the mixed precision
    reported, scored[:] = scored[:], []
    model, tokenizer = RewardModel.from_pretrained(run), AutoTokenizer.from_pretrained(run)
    features, _ = encode_records(tokenizer, eval_records, model.settings, 512)
    results = json.loads((run / "eval_results.json").read_text())
    assert evaluate(model, features, "joint", tokenizer.pad_token_id) == {k: v for k, v in results.items() if k != "step"}
    assert len(reported) == 2 and reported == scored
    fitted = model.outcome_likelihood_head.weight.clone()
    features, _ = encode_records(tokenizer, train_records, model.settings, 512)
    fit_outcome_likelihood(model, features, tokenizer.pad_token_id)
    torch.testing.assert_close(model.outcome_likelihood_head.weight, fitted, rtol=0, atol=1e-6)
