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
