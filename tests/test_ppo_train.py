"""End-to-end PPO on tiny models: no motion without signal, learning a toy reward, resume."""

import json

import pytest
import torch
from safetensors.torch import load_file

from prm.ppo.train import PPOConfig, train_ppo
from generation.tiny import save_tiny_causal_lm
from tasks.math.prompts import format_solution, policy_prompt

QUESTIONS = [(f"Tom has {a} apples and buys {b} more. How many apples does he have?", a, b) for a in range(1, 6) for b in range(1, 5)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ppo")
    problems = root / "problems.jsonl"
    texts = []
    with problems.open("w") as handle:
        for question, a, b in QUESTIONS:
            steps = [f"{a} + {b} = {a + b}", f"The answer is {a + b}"]
            handle.write(json.dumps({"question": question, "answer": str(a + b), "steps": steps}) + "\n")
            texts.append(policy_prompt(question) + format_solution(steps))
    save_tiny_causal_lm(root / "policy", texts, size="tiny", seed=0)
    return root


class AsciiShare:
    """Toy outcome: the share of characters that are ASCII (a random policy is near 1/2)."""

    def score(self, prompt: str, completion: str) -> float:
        return sum(c.isascii() for c in completion) / max(len(completion), 1)


class ConstantPRM:
    def score_steps(self, prompt, steps):
        return [0.25 + 0.5 * (len(s) % 2) for s in steps]


def _config(workdir, name, **overrides):
    base = dict(policy=str(workdir / "policy"), data=str(workdir / "problems.jsonl"), n_eval=0,
                output_dir=str(workdir / name), batch_size=8, max_new_tokens=8, ppo_epochs=2, n_minibatches=2,
                max_updates=2, save_every=1, seed=3)
    base.update(overrides)
    return PPOConfig(**base)


def _metrics(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_zero_rewards_and_zero_kl_leave_the_policy_unchanged(workdir):
    config = _config(workdir, "still", mode="outcome", verifier_coef=0.0, kl_coef=0.0, ent_coef=0.0, max_updates=2)
    out = train_ppo(config)
    before = load_file(str(workdir / "policy" / "model.safetensors"))
    after = load_file(str(out / "policy" / "model.safetensors"))
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]), name
    for record in _metrics(out):
        assert record["clip_fraction"] == 0.0
        assert record["approx_kl"] == 0.0


# The std-normalised grpo_process gets groups of 4 (the same 32 responses per update as rloo):
# in a pair it would see only which sample did better (A = +-1/sqrt(2)), too noisy for 10 updates.
@pytest.mark.parametrize("mode, group_advantage, prompts, samples", [("outcome", "rloo", 16, 1), ("group", "rloo", 16, 2),
                                                                     ("group", "grpo_process", 8, 4)])
def test_ppo_raises_a_toy_reward(workdir, mode, group_advantage, prompts, samples):
    config = _config(workdir, f"toy-{mode}-{group_advantage}", mode=mode, group_advantage=group_advantage,
                     verifier_coef=0.0, orm_coef=1.0, kl_coef=0.0, lr=1e-2, max_updates=10, ppo_epochs=4,
                     batch_size=prompts, samples_per_prompt=samples, save_every=0, max_new_tokens=12)
    out = train_ppo(config, outcome_scorer=AsciiShare())
    rewards = [record["reward"] for record in _metrics(out)]
    assert sum(rewards[-3:]) / 3 > sum(rewards[:2]) / 2 + 0.1, rewards


def _interrupt_at(monkeypatch, update):
    """Send SIGINT to this process when the run rolls out `update` (0-based), as Ctrl-C would."""
    import signal

    import prm.ppo.train as ppo_train

    roll_out = ppo_train.roll_out

    def roll_out_then_signal(model, tokenizer, problems, config, seed):
        if seed == config.seed * 1_000_003 + update:  # the update's seed (one process)
            signal.raise_signal(signal.SIGINT)
        return roll_out(model, tokenizer, problems, config, seed)

    monkeypatch.setattr(ppo_train, "roll_out", roll_out_then_signal)
    return lambda: monkeypatch.setattr(ppo_train, "roll_out", roll_out)


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_result(workdir, monkeypatch):
    from prm.recipe import Interrupted

    common = dict(mode="dense", step_score_form="diff", kl_coef=0.1, kl_target=1.0, kl_estimator="k3", max_updates=3,
                  save_every=0, save_minutes=0, ptx_coef=0.5, ptx_batch_size=4)
    straight = train_ppo(_config(workdir, "straight", **common), step_scorer=ConstantPRM())
    restore = _interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt) as stopped:
        train_ppo(_config(workdir, "resumed", **common), step_scorer=ConstantPRM())
    restore()
    assert stopped.type is Interrupted
    checkpoint = workdir / "resumed" / "checkpoints" / "step-2"
    assert f"checkpoint saved to {checkpoint}" in str(stopped.value)
    assert "resume with: prm ppo" in str(stopped.value) and str(stopped.value).endswith("--resume latest")
    assert len(_metrics(workdir / "resumed")) == 2

    resumed = train_ppo(_config(workdir, "resumed", **common, resume="latest"), step_scorer=ConstantPRM())
    a = load_file(str(straight / "checkpoints" / "step-3" / "model.safetensors"))
    b = load_file(str(resumed / "checkpoints" / "step-3" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    straight_metrics, resumed_metrics = _metrics(straight), _metrics(resumed)
    assert [m["update"] for m in resumed_metrics] == [1, 2, 3]
    for x, y in zip(straight_metrics, resumed_metrics):
        assert x["reward"] == y["reward"] and x["kl_coef"] == y["kl_coef"]


def test_resume_refuses_a_checkpoint_of_another_run_and_may_extend_a_finished_one(workdir):
    common = dict(mode="outcome", verifier_coef=0.0, orm_coef=1.0, max_updates=1)
    train_ppo(_config(workdir, "extend", **common), outcome_scorer=AsciiShare())
    with pytest.raises(ValueError, match=r"step-1 was made by a different run \(lr: checkpoint 0.0001, now 0.001\)"):
        train_ppo(_config(workdir, "extend", **common, lr=1e-3, resume="latest"), outcome_scorer=AsciiShare())
    # The update count sets no schedule, so a finished run continues to more updates.
    train_ppo(_config(workdir, "extend", **{**common, "max_updates": 2}, resume="latest"), outcome_scorer=AsciiShare())
    assert [m["update"] for m in _metrics(workdir / "extend")] == [1, 2]


def test_a_used_output_dir_is_refused_unless_overwritten(workdir):
    config = dict(mode="outcome", verifier_coef=0.0, orm_coef=1.0, max_updates=1)
    train_ppo(_config(workdir, "used", **config), outcome_scorer=AsciiShare())
    with pytest.raises(ValueError, match="--overwrite_output_dir"):
        train_ppo(_config(workdir, "used", **config), outcome_scorer=AsciiShare())
    (workdir / "used" / "checkpoints" / "step-9").mkdir()  # a stale checkpoint must not survive
    train_ppo(_config(workdir, "used", **config, overwrite_output_dir=True), outcome_scorer=AsciiShare())
    assert sorted(p.name for p in (workdir / "used" / "checkpoints").iterdir()) == ["step-1"]
    assert len(_metrics(workdir / "used")) == 1


def test_a_problem_too_long_for_the_policy_is_skipped_with_a_counted_warning(workdir, capsys):
    problems = workdir / "with-long.jsonl"
    lines = (workdir / "problems.jsonl").read_text().splitlines()
    long_question = json.dumps({"question": "Tom has 3 apples and buys 4 more. " * 200, "answer": "7"})
    problems.write_text("\n".join(lines[:3] + [long_question] + lines[3:]) + "\n")
    out = train_ppo(_config(workdir, "long", data=str(problems), mode="outcome", verifier_coef=0.0, orm_coef=1.0,
                            max_updates=2, batch_size=len(lines) + 1), outcome_scorer=AsciiShare())
    err = capsys.readouterr().err
    assert "with-long.jsonl, problem with-long.jsonl:4: skipped, prompt of" in err
    assert f"1 of {len(lines) + 1} training problems skipped as too long for the policy" in err
    assert [m["update"] for m in _metrics(out)] == [1, 2]


def test_lora_uses_the_base_model_as_reference(workdir):
    config = _config(workdir, "lora", mode="group", samples_per_prompt=2, lora_r=4, max_updates=1,
                     verifier_coef=0.0, orm_coef=1.0, lr=1e-2)
    out = train_ppo(config, outcome_scorer=AsciiShare())
    record = _metrics(out)[0]
    # The first rollout is sampled from the reference itself (LoRA B starts at zero).
    assert abs(record["kl"]) < 1e-5
    assert (out / "policy" / "model.safetensors").exists()


def test_dense_mode_without_a_prm_is_an_error(workdir):
    with pytest.raises(ValueError, match="PRM"):
        train_ppo(_config(workdir, "bad", mode="dense"))


def test_the_logged_reward_is_the_task_reward_before_whitening(workdir):
    # The first rollout is the same with and without --reward_whiten (same seed, same start),
    # so its logged reward must be too: the curve stays on the scorer's scale, [0, 1] here.
    logged = {}
    for whiten_rewards in (False, True):
        config = _config(workdir, f"logged-{whiten_rewards}", mode="outcome", verifier_coef=0.0, orm_coef=1.0,
                         reward_whiten=whiten_rewards, max_updates=1, ppo_epochs=1, n_minibatches=1, save_every=0)
        logged[whiten_rewards] = _metrics(train_ppo(config, outcome_scorer=AsciiShare()))[0]["reward"]
    assert 0.0 <= logged[False] <= 1.0
    assert logged[True] == pytest.approx(logged[False], abs=1e-6)


@pytest.mark.parametrize("options", [["--n_minibatches", "0"], ["--ppo_epochs", "0"], ["--kl_target", "0"],
                                     ["--kl_target", "1", "--kl_horizon", "0"], ["--step_score_form", "nosuch"]])
def test_a_bad_ppo_option_is_one_line_before_any_model_and_writes_nothing(tmp_path, capsys, options):
    from commands.cli import main

    out = tmp_path / "out"
    # No policy at this path: the refusal has to come before anything is loaded.
    assert main(["ppo", "--policy", str(tmp_path / "no-policy"), "--mode", "outcome", "--output_dir", str(out),
                 *options]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("prm ppo: error: ") and len(err.splitlines()) == 1, err
    assert options[-2] in err and "Traceback" not in err
    assert not out.exists()


def test_first_ratio_is_exactly_one_for_a_model_with_dropout(workdir):
    # Old log-probs and the first minibatch's new log-probs come from the same weights; with
    # dropout active in only one of the two passes the ratio would start away from 1.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = workdir / "policy-dropout"
    AutoModelForCausalLM.from_pretrained(workdir / "policy", attention_dropout=0.5).save_pretrained(path)
    AutoTokenizer.from_pretrained(workdir / "policy").save_pretrained(path)
    config = _config(workdir, "dropout", policy=str(path), mode="outcome", verifier_coef=0.0, orm_coef=1.0,
                     max_updates=1, ppo_epochs=1, n_minibatches=1, temperature=0.5)
    record = _metrics(train_ppo(config, outcome_scorer=AsciiShare()))[0]
    assert record["approx_kl"] == 0.0 and record["clip_fraction"] == 0.0


def test_checker_step_rewards_alone_and_mixed_with_a_prm(workdir):
    from prm.ppo.train import step_reward_scorer

    steps = ["3 + 4 = 7", "7 - 2 = 6", "The answer is 6"]
    alone = step_reward_scorer(_config(workdir, "c", checker_coef=1.0), None)
    assert alone.score_steps("q", steps) == [1.0, 0.0, 0.5]
    mixed = step_reward_scorer(_config(workdir, "c", checker_coef=0.5), ConstantPRM())
    prm_scores = ConstantPRM().score_steps("q", steps)
    assert mixed.score_steps("q", steps) == pytest.approx([0.5 * p + 0.5 * c for p, c in zip(prm_scores, [1.0, 0.0, 0.5])])
    assert step_reward_scorer(_config(workdir, "c"), ConstantPRM()).score_steps("q", steps) == prm_scores
    with pytest.raises(ValueError, match="checker_coef"):
        step_reward_scorer(_config(workdir, "c", checker_coef=0.5), None)
    # Rule-based dense rewards need no PRM.
    out = train_ppo(_config(workdir, "checker", mode="dense", checker_coef=1.0, max_updates=1, save_every=0))
    assert _metrics(out)[0]["update"] == 1
    assert "step rewards: sympy checker step verdicts" in (out / "policy" / "README.md").read_text()


@pytest.mark.parametrize("options, says, never", [
    (dict(mode="dense", prm="runs/prm", checker_coef=0.25, step_score_form="diff", step_coef=2.0),
     ["step rewards: 0.75 x PRM runs/prm + 0.25 x sympy checker step verdicts (diff, x2)", "GAE"], ["PPO-ptx"]),
    (dict(mode="outcome", outcome_gate="checker", ptx_coef=4.0, kl_estimator="k3", kl_coef=0.1, temperature=1.5),
     ["outcome reward: verifier (x1), paid only when the sympy checker finds no false step",
      "KL to the reference: k3 as a loss term, beta 0.1", "PPO-ptx: next-token loss on reference solutions (x4)",
      "rollouts at T = 1.5"], ["step rewards"]),
    (dict(mode="group", samples_per_prompt=4, group_advantage="grpo_process", checker_coef=1.0, orm="runs/orm"),
     ["step rewards: sympy checker", "ORM runs/orm (x1)", "group baseline (grpo_process), no critic"], ["GAE"]),
])
def test_the_model_card_names_every_term_the_run_optimised(workdir, options, says, never):
    from prm.ppo.train import objective_summary

    summary = objective_summary(_config(workdir, "card", **options))
    for text in says:
        assert text in summary
    for text in never:
        assert text not in summary


def test_shared_prefixes_give_the_update_of_independent_responses(workdir, monkeypatch):
    # A group's samples share their prompt (and often their first steps); computing those once
    # must not change the update: after one update the weights agree to float rounding.
    from prm.ppo.model import ResponseBatch

    layouts = []
    original = ResponseBatch.from_ids.__func__

    def recording(cls, *args, **kwargs):
        batch = original(cls, *args, **kwargs)
        layouts.append(batch.position_ids is not None)
        return batch

    monkeypatch.setattr(ResponseBatch, "from_ids", classmethod(recording))
    runs = {}
    for share in (True, False):
        config = _config(workdir, f"share-{share}", mode="group", group_advantage="grpo_process", samples_per_prompt=4,
                         share_prefixes=share, verifier_coef=0.0, orm_coef=1.0, lr=1e-2, max_updates=1,
                         max_new_tokens=12, save_every=0)
        runs[share] = load_file(str(train_ppo(config, step_scorer=ConstantPRM(), outcome_scorer=AsciiShare())
                                    / "policy" / "model.safetensors"))
    half = len(layouts) // 2
    assert all(layouts[:half]) and not any(layouts[half:]), layouts  # shared rows, then padded rows
    before = load_file(str(workdir / "policy" / "model.safetensors"))
    assert any(not torch.equal(before[name], tensor) for name, tensor in runs[True].items())
    for name, tensor in runs[False].items():
        assert torch.allclose(runs[True][name], tensor, atol=1e-5), name


def test_the_checker_gate_gives_no_outcome_reward_to_a_right_answer_reached_through_a_false_step(workdir):
    # 26 % of the demo policy's distinct right-answer samples contain a false step; an outcome
    # reward pays them as much as clean ones (experiments/rft_baseline.py).
    from prm.ppo.train import outcome_rewards
    from tasks.math.types import Problem

    problem = Problem(id="p", question="Tom has 9 apples and buys 6 more, then eats 3. How many apples are left?",
                      answer="12", steps=())
    steps = [["9 + 6 = 15", "15 - 3 = 12", "The answer is 12"], ["9 + 6 = 16", "16 - 3 = 12", "The answer is 12"],
             ["9 + 6 = 15", "15 - 3 = 11", "The answer is 11"]]
    texts = ["\n".join(s) for s in steps]
    plain = outcome_rewards([problem] * 3, steps, texts, _config(workdir, "gate", verifier_coef=2.0))
    gated = outcome_rewards([problem] * 3, steps, texts, _config(workdir, "gate", verifier_coef=2.0, outcome_gate="checker"))
    assert plain == ([True, True, False], [2.0, 2.0, 0.0])
    assert gated == ([True, True, False], [2.0, 0.0, 0.0])  # accuracy still counts the answer
    with pytest.raises(ValueError, match="outcome_gate"):
        _config(workdir, "gate", outcome_gate="prm")


def test_the_outcome_needs_a_stated_answer_and_the_checker_rewards_read_what_the_gate_reads(workdir):
    # A response cut off after its last computation ("... 8 + 5 = 13", no answer line) was paid
    # the outcome reward when that number was the reference (the last-number fallback of answer
    # extraction). And --checker_coef scored an algebra step the gate calls false as neutral.
    from prm.ppo.train import outcome_rewards, step_reward_scorer
    from tasks.math.types import Problem

    problem = Problem(id="p", question="Tom has 3 apples, buys 5, then 5 more. How many?", answer="13", steps=())
    steps = [["3 + 5 = 8", "8 + 5 = 13"], ["3 + 5 = 8", "8 + 5 = 13", "The answer is 13"]]
    correct, paid = outcome_rewards([problem] * 2, steps, ["\n".join(s) for s in steps], _config(workdir, "stated"))
    assert paid == [0.0, 1.0] and correct == [True, True]  # accuracy is measured as everywhere

    algebra = ["x + 2 = 5", "x = 4", "The answer is 4"]
    scorer = step_reward_scorer(_config(workdir, "stated", checker_coef=1.0), None)
    gate_problem = Problem(id="q", question="x + 2 = 5. What is x?", answer="4", steps=())
    _, gated = outcome_rewards([gate_problem], [algebra], ["\n".join(algebra)],
                               _config(workdir, "stated", outcome_gate="checker"))
    assert gated == [0.0] and scorer.score_steps(gate_problem.question, algebra)[1] == 0.0


def test_warmup_raises_the_learning_rate_linearly_over_its_updates_then_holds_it(workdir):
    out = train_ppo(_config(workdir, "warmup", mode="outcome", lr=1e-4, warmup_updates=2, max_updates=3))
    assert [record["lr"] for record in _metrics(out)] == pytest.approx([5e-5, 1e-4, 1e-4])
    out = train_ppo(_config(workdir, "no-warmup", mode="outcome", lr=1e-4, max_updates=2))
    assert [record["lr"] for record in _metrics(out)] == pytest.approx([1e-4, 1e-4])


def _reference_nll(policy_dir, problems_file):
    """Mean token NLL of the problems' reference solutions under the policy, as `prm sft` scores them."""
    from generation.loading import load_policy
    from prm.sft import pad_batch, sft_example
    from tasks.math.records import read_problems

    model, tokenizer = load_policy(str(policy_dir), dtype=torch.float32)
    rows = [sft_example(tokenizer, p, max_length=512) for p in read_problems(str(problems_file))]
    with torch.no_grad():
        return model(**pad_batch(rows, tokenizer.pad_token_id)).loss.item()


def test_the_ptx_term_alone_fits_the_reference_solutions(workdir):
    # No reward and no KL: the advantages are all zero, so only the ptx term can move the policy.
    common = dict(mode="outcome", verifier_coef=0.0, kl_coef=0.0, max_updates=3, save_every=0, lr=3e-3,
                  max_new_tokens=32, ptx_batch_size=4)
    out = train_ppo(_config(workdir, "ptx", ptx_coef=1.0, **common))
    losses = [record["ptx_loss"] for record in _metrics(out)]
    start = _reference_nll(workdir / "policy", workdir / "problems.jsonl")
    assert _reference_nll(out / "policy", workdir / "problems.jsonl") < 0.8 * start
    assert losses[-1] < losses[0]
    assert "ptx_loss" not in _metrics(train_ppo(_config(workdir, "no-ptx", **common)))[0]


def test_the_ptx_term_needs_reference_steps(workdir):
    bare = workdir / "bare.jsonl"
    bare.write_text(json.dumps({"question": QUESTIONS[0][0], "answer": "5"}) + "\n")
    with pytest.raises(ValueError, match=r"bare.jsonl: --ptx_coef needs training problems with reference steps"):
        train_ppo(_config(workdir, "ptx-bare", data=str(bare), mode="outcome", ptx_coef=1.0, max_updates=1))
