"""SFT of a tiny policy on reference solutions."""

import json

import pytest
import torch

import prm.sft
from prm.sft import SFTConfig, load_sft_problems, sft_example, train_sft
from tasks.math.prompts import policy_prompt
from tasks.math.types import Problem, RecordError


def _write_problems(path, n=24):
    with path.open("w") as handle:
        for i in range(n):
            a, b = i % 7 + 1, i % 5 + 2
            steps = [f"{a} + {b} = {a + b}", f"The answer is {a + b}"]
            handle.write(json.dumps({"question": f"Tom has {a} apples and buys {b} more. How many?",
                                     "answer": str(a + b), "steps": steps}) + "\n")


def _losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines() if "loss" in line]


def test_loss_falls_and_the_result_is_an_hf_dir(tmp_path):
    _write_problems(tmp_path / "train.jsonl")
    config = SFTConfig(data=str(tmp_path / "train.jsonl"), model="tiny:tiny", output_dir=str(tmp_path / "out"),
                       max_steps=30, batch_size=8, lr=1e-2, warmup_steps=5, log_every=5, save_every=0, n_eval=0)
    out = train_sft(config)
    losses = _losses(out)
    assert losses[-1] < 0.6 * losses[0], losses
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(tokenizer)


def test_prompt_tokens_carry_no_loss():
    from generation.tiny import train_tokenizer

    tokenizer = train_tokenizer(["Question: 1 + 1?\nSolution:\n1 + 1 = 2\nThe answer is 2\n"] * 3)
    problem = Problem(id="a", question="1 + 1?", answer="2", steps=("1 + 1 = 2", "The answer is 2"))
    ids, labels = sft_example(tokenizer, problem, max_length=256)
    n_prompt = len(tokenizer(policy_prompt(problem.question), add_special_tokens=False).input_ids)
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    assert ids[-1] == tokenizer.eos_token_id


def test_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    _write_problems(tmp_path / "train.jsonl")
    common = dict(data=str(tmp_path / "train.jsonl"), model="tiny:tiny", max_steps=8, batch_size=4, lr=1e-2,
                  warmup_steps=2, log_every=2, save_every=4, n_eval=0)
    straight = train_sft(SFTConfig(output_dir=str(tmp_path / "a"), **common))

    # Interrupt the second run right after its step-4 checkpoint, then resume it.
    save = prm.sft._save_checkpoint

    def save_then_crash(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(prm.sft, "_save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_sft(SFTConfig(output_dir=str(tmp_path / "b"), **common))
    monkeypatch.setattr(prm.sft, "_save_checkpoint", save)
    resumed = train_sft(SFTConfig(output_dir=str(tmp_path / "b"), **common, resume=True))
    from safetensors.torch import load_file

    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name


def test_bad_records_name_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "1", "steps": ["a"]}) + "\n" + json.dumps({"question": "q", "answer": "1"}) + "\n")
    with pytest.raises(RecordError, match=r"bad.jsonl, line 2, field 'steps'"):
        load_sft_problems(str(path), 10, 0)
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text(json.dumps({"prompt": "q", "completions": ["a", "b"], "labels": [True]}) + "\n")
    with pytest.raises(RecordError, match="line 1, field 'labels'"):
        load_sft_problems(str(labelled), 10, 0)


def test_the_rejection_sampling_export_trains_with_sft(tmp_path):
    from search.export import rejection_sample, write_sft_jsonl
    from search.scorers import VerifierScorer

    questions = [f"Tom has {a} apples and buys {b} more. How many apples does he have?" for a, b in ((2, 3), (4, 1))]
    samples = [["He buys 3: 2 + 3 = 5\nThe answer is 5", "2 + 3 = 6\nThe answer is 6"],
               ["He buys 1: 4 + 1 = 5\nThe answer is 5"]]
    records = rejection_sample(questions, samples, VerifierScorer(), k=1, references=["5", "5"], require_correct=True)
    path = write_sft_jsonl(records, tmp_path / "sft.jsonl")
    problems = load_sft_problems(str(path), n_train=0, seed=0)
    assert [p.steps for p in problems] == [("He buys 3: 2 + 3 = 5", "The answer is 5"),
                                           ("He buys 1: 4 + 1 = 5", "The answer is 5")]
    out = train_sft(SFTConfig(data=str(path), model="tiny:tiny", output_dir=str(tmp_path / "policy"), max_steps=2,
                              batch_size=2, n_eval=0, vocab_size=300))
    assert (out / "model.safetensors").exists()
