"""Review regressions of the training recipe (prm/train.py, prm/recipe.py, prm/outputs.py):
exact resume with dropout, what the resume fingerprint covers, and what the model card states."""

import json

import pytest
import torch
from safetensors.torch import load_file

from prm.train import TrainConfig, train
from tests.test_train import _config as train_config, _log, toy_records, write_jsonl


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return write_jsonl(root / "train.jsonl", toy_records(96, 0)), write_jsonl(root / "eval.jsonl", toy_records(16, 1))


def _config(tmp_path, data, **overrides) -> TrainConfig:
    return train_config(tmp_path, data, **{"max_steps": 6, "save_minutes": 0, **overrides})


def test_resume_continues_a_model_with_dropout_to_the_same_result(tmp_path, toy_data, monkeypatch):
    # A backbone with dropout draws from the global torch RNG every step. The checkpoint's RNG
    # state must be what the next step draws from: the data loader's iterator (made on resume)
    # takes a draw of its own, which the uninterrupted run took before its first step.
    import generation.tiny

    plain = generation.tiny.tiny_config

    def with_dropout(*args, **kwargs):
        config = plain(*args, **kwargs)
        config.attention_dropout = 0.3
        return config

    monkeypatch.setattr(generation.tiny, "tiny_config", with_dropout)
    straight = train(_config(tmp_path / "a", toy_data, save_every=3))
    resumed = train(_config(tmp_path / "b", toy_data, resume=str(straight / "checkpoints" / "step-3")))
    assert _log(resumed, "loss") == pytest.approx(_log(straight, "loss")[3:], rel=1e-6)
    first, second = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=1e-6, atol=1e-7)


def test_resume_refuses_a_local_model_folder_changed_in_place(tmp_path, toy_data):
    # The checkpoint holds the weights, but the run goes on with the folder's config and saves an
    # adapter for its base (--adapter_only): a backbone retrained or replaced in place is another run.
    from generation.tiny import build_tiny_causal_lm, train_tokenizer

    tokenizer = train_tokenizer([json.dumps(record) for record in toy_records(40, 0)], vocab_size=300)
    base = tmp_path / "base"
    build_tiny_causal_lm(tokenizer, seed=0).save_pretrained(base)
    tokenizer.save_pretrained(base)
    run = train(_config(tmp_path, toy_data, model=str(base), max_steps=4, save_every=2))
    build_tiny_causal_lm(tokenizer, seed=1).save_pretrained(base)
    with pytest.raises(ValueError, match="different run.*model_files: the files model.safetensors"):
        train(_config(tmp_path, toy_data, model=str(base), max_steps=4, resume="latest"))
    build_tiny_causal_lm(tokenizer, seed=0).save_pretrained(base)
    assert train(_config(tmp_path, toy_data, model=str(base), max_steps=4, resume="latest")) == run


def test_resume_refuses_a_checkpoint_of_another_process_count(tmp_path, toy_data, monkeypatch):
    # Every optimizer step takes --batch_size examples from each process, and the sampler position
    # counts each process's micro-batches: the same options on another number of processes train
    # on other batches. (The process count is faked: one process that believes it is one of two.)
    from accelerate import Accelerator

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(Accelerator, "num_processes", property(lambda self: 2))
        train(_config(tmp_path, toy_data, max_steps=4, save_every=2))
    assert "batch 8 x 2 processes x 1 accumulation" in (run / "README.md").read_text()  # the card's real batch
    with pytest.raises(ValueError, match="different run.*num_processes: checkpoint 2"):
        train(_config(tmp_path, toy_data, max_steps=4, resume="latest"))
    # A single-process checkpoint records no process count, as those written before did.
    train(_config(tmp_path, toy_data, max_steps=4, save_every=2, overwrite_output_dir=True))
    assert "num_processes" not in json.loads((run / "checkpoints" / "step-2" / "run.json").read_text())
    assert train(_config(tmp_path, toy_data, max_steps=4, resume="latest")) == run


def _card_usage(run_dir) -> str:
    return (run_dir / "README.md").read_text().split("## Use", 1)[1].split("## How it was made", 1)[0]


def test_the_card_names_a_transformers_class_only_for_a_folder_that_class_loads(tmp_path, toy_data):
    # With --likelihood_features the heads are in reward_heads.safetensors beside a causal LM:
    # AutoModelForTokenClassification loads that folder with a freshly initialised `score` layer.
    from transformers import AutoModelForTokenClassification

    standard = train(_config(tmp_path / "standard", toy_data, max_steps=1))
    assert "AutoModelForTokenClassification.from_pretrained" in _card_usage(standard)
    AutoModelForTokenClassification.from_pretrained(standard)  # as the card says
    features = train(_config(tmp_path / "features", toy_data, max_steps=1, likelihood_features=True))
    usage = _card_usage(features)
    assert "prm.load" in usage and "from_pretrained" not in usage


def test_the_card_of_an_adapter_only_run_says_what_was_saved(tmp_path, toy_data):
    from generation.tiny import build_tiny_causal_lm, train_tokenizer

    tokenizer = train_tokenizer([json.dumps(record) for record in toy_records(40, 0)], vocab_size=300)
    base = tmp_path / "base"
    build_tiny_causal_lm(tokenizer, seed=0).save_pretrained(base)
    tokenizer.save_pretrained(base)
    run = train(_config(tmp_path, toy_data, model=str(base), max_steps=1, lora_r=4, adapter_only=True))
    card = (run / "README.md").read_text()
    assert not (run / "model.safetensors").exists()
    assert "(merged)" not in card and "adapter only" in card
    assert "from_pretrained" not in _card_usage(run)
