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


def _trained_as_sampled(tokenizer, problem: Problem) -> tuple[list[int], list[int], int]:
    """sft_example's (ids, labels) and the prompt length, checked to start with the ids
    HFPolicy samples the problem's prompt from, none of them trained on."""
    from generation.policy import HFPolicy
    from generation.tiny import build_tiny_causal_lm

    ids, labels = sft_example(tokenizer, problem, max_length=256)
    sampler = HFPolicy(build_tiny_causal_lm(tokenizer, size="tiny", seed=0), tokenizer)
    (state,) = sampler.start([policy_prompt(problem.question)])
    n_prompt = len(state.token_ids)
    assert ids[:n_prompt] == list(state.token_ids) and labels[:n_prompt] == [-100] * n_prompt
    return ids, labels, n_prompt


def test_the_prompt_is_trained_as_the_samplers_render_it():
    # SFT trained the plain "Question: ...\nSolution:\n" prompt while PPO, search and label sample
    # a tokenizer with a chat template through that template (HFPolicy's default): the policy
    # was optimised and evaluated on a prompt format its fine-tuning never saw.
    from generation.tiny import train_tokenizer

    tokenizer = train_tokenizer(["Question: 1 + 1?\nSolution:\n1 + 1 = 2\nThe answer is 2\n<user> <bot>"] * 3)
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}<bot> {% endif %}")
    problem = Problem(id="a", question="1 + 1?", answer="2", steps=("1 + 1 = 2", "The answer is 2"))
    ids, labels, n_prompt = _trained_as_sampled(tokenizer, problem)
    assert labels[n_prompt] != -100


@pytest.mark.parametrize("chat", [False, True])
def test_the_prompt_is_trained_with_the_samplers_special_tokens(chat):
    # A tokenizer that adds a BOS (Llama, Mistral): the sampler reads a plain prompt with its BOS,
    # so SFT must train it so; a chat template writes its own BOS and gets no second one.
    from test_vllm_policy import LLAMA3, bos_tokenizer

    tokenizer = bos_tokenizer(LLAMA3 if chat else None)
    problem = Problem(id="a", question="What is 2 + 3?", answer="5", steps=("2 + 3 = 5", "The answer is 5"))
    ids, labels, n_prompt = _trained_as_sampled(tokenizer, problem)
    assert ids.count(tokenizer.bos_token_id) == 1
    assert labels[n_prompt:] == ids[n_prompt:] and ids[-1] == tokenizer.eos_token_id


def _interrupt_at(monkeypatch, step):
    """Send SIGINT to this process when the run draws the batch of `step` (0-based), as Ctrl-C would."""
    import signal

    draw = prm.sft.batch_indices

    def draw_then_signal(at, *args, **kwargs):
        if at == step:
            signal.raise_signal(signal.SIGINT)
        return draw(at, *args, **kwargs)

    monkeypatch.setattr(prm.sft, "batch_indices", draw_then_signal)
    return draw


def test_an_interrupted_run_resumed_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    from prm.recipe import Interrupted

    _write_problems(tmp_path / "train.jsonl")
    common = dict(data=str(tmp_path / "train.jsonl"), model="tiny:tiny", max_steps=8, batch_size=4, lr=1e-2,
                  warmup_steps=2, log_every=3, save_every=0, save_minutes=0, n_eval=0)
    straight = train_sft(SFTConfig(output_dir=str(tmp_path / "a"), **common))

    draw = _interrupt_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt) as stopped:
        train_sft(SFTConfig(output_dir=str(tmp_path / "b"), **common))
    monkeypatch.setattr(prm.sft, "batch_indices", draw)
    assert stopped.type is Interrupted
    checkpoint = tmp_path / "b" / "checkpoints" / "step-5"  # the step under way when the signal came is finished
    assert [p.name for p in (tmp_path / "b" / "checkpoints").iterdir()] == ["step-5"]
    assert f"checkpoint saved to {checkpoint}" in str(stopped.value)
    assert "resume with: prm sft" in str(stopped.value) and str(stopped.value).endswith("--resume latest")
    assert (checkpoint / "run.json").is_file()

    resumed = train_sft(SFTConfig(output_dir=str(tmp_path / "b"), **common, resume="latest"))
    from safetensors.torch import load_file

    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name
    assert _losses(resumed) == pytest.approx(_losses(straight), abs=1e-6)  # no window logged twice or cut short


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path, monkeypatch):
    _write_problems(tmp_path / "train.jsonl")
    common = dict(data=str(tmp_path / "train.jsonl"), model="tiny:tiny", max_steps=6, batch_size=4,
                  save_every=2, n_eval=0, output_dir=str(tmp_path / "run"))
    draw = _interrupt_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train_sft(SFTConfig(**common, lr=1e-2))
    monkeypatch.setattr(prm.sft, "batch_indices", draw)
    with pytest.raises(ValueError, match=r"step-4 was made by a different run \(lr: checkpoint 0.01, now 0.02\)"):
        train_sft(SFTConfig(**common, lr=2e-2, resume="latest"))
    _write_problems(tmp_path / "train.jsonl", n=23)  # the same file name, other data
    with pytest.raises(ValueError, match="data_sha256"):
        train_sft(SFTConfig(**common, lr=1e-2, resume=str(tmp_path / "run" / "checkpoints" / "step-2")))


def test_checkpoints_every_n_steps_and_every_few_minutes(tmp_path):
    _write_problems(tmp_path / "train.jsonl")
    common = dict(data=str(tmp_path / "train.jsonl"), model="tiny:tiny", max_steps=5, batch_size=4, n_eval=0)
    by_steps = train_sft(SFTConfig(**common, save_every=2, save_minutes=0, output_dir=str(tmp_path / "steps")))
    assert sorted(p.name for p in (by_steps / "checkpoints").iterdir()) == ["step-2", "step-4"]
    by_time = train_sft(SFTConfig(**common, save_every=0, save_minutes=1e-9, output_dir=str(tmp_path / "time")))
    assert sorted(p.name for p in (by_time / "checkpoints").iterdir()) == ["step-1", "step-2", "step-3", "step-4"]
    assert not list(tmp_path.glob("*/checkpoints/*.partial"))


def test_a_used_output_dir_is_refused_unless_overwritten(tmp_path):
    _write_problems(tmp_path / "train.jsonl")
    common = dict(data=str(tmp_path / "train.jsonl"), model="tiny:tiny", max_steps=4, batch_size=4, n_eval=0,
                  log_every=1, save_every=2, output_dir=str(tmp_path / "run"))
    out = train_sft(SFTConfig(**common))
    with pytest.raises(ValueError, match="--overwrite_output_dir"):
        train_sft(SFTConfig(**common))
    train_sft(SFTConfig(**{**common, "max_steps": 3}, overwrite_output_dir=True))
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2"]  # the old run's step-2 is gone
    assert json.loads((out / "checkpoints" / "step-2" / "run.json").read_text())["max_steps"] == 3


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


def test_an_outcome_record_labelled_false_is_not_a_reference_solution(tmp_path, capsys):
    path = tmp_path / "outcome.jsonl"
    path.write_text(json.dumps({"prompt": "What is 2+3?", "completion": "2+3=6\nThe answer is 6", "label": False}) + "\n"
                    + json.dumps({"prompt": "What is 2+3?", "completion": "2+3=5\nThe answer is 5", "label": True}) + "\n"
                    + json.dumps({"prompt": "What is 2+4?", "completion": "2+4=6\nThe answer is 6"}) + "\n")
    problems = load_sft_problems(str(path), n_train=0, seed=0)
    assert [p.steps for p in problems] == [("2+3=5", "The answer is 5"), ("2+4=6", "The answer is 6")]
    assert "1 records" in capsys.readouterr().out
    path.write_text(json.dumps({"prompt": "q", "completion": "a", "label": "yes"}) + "\n")
    with pytest.raises(RecordError, match="line 1, field 'label'"):
        load_sft_problems(str(path), 10, 0)
