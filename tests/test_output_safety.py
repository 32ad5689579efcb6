"""Commands that write results never replace an earlier output silently: `prm score` and
`prm search` (one output file) refuse an existing file unless --overwrite_output, and continue it
with --resume latest only when it was made by the same run; `prm rerank` and `prm eval-search`
(an output folder) refuse a used folder unless --overwrite_output_dir."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from commands.eval_search import EvalSearchConfig, eval_search
from commands.rerank import RerankConfig, rerank_file
from commands.score import ScoreConfig, score_file
from commands.search import SearchConfig, run_search

STEPS = [{"prompt": f"What is {a} + {b}?", "completions": [f"{a} + {b} = {a + b}", f"The answer is {a + b}"],
          "labels": [True, True]} for a, b in [(1, 2), (3, 4), (5, 6), (2, 2), (7, 1)]]
PROBLEMS = [{"prompt": f"What is {a} + {b}?", "reference": str(a + b)} for a, b in [(1, 2), (3, 4), (2, 5)]]
CANDIDATES = [{"prompt": "What is 3 + 4?", "completions": ["3 + 4 = 7\nThe answer is 7", "The answer is 8"],
               "reference": "7"}]


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture(scope="module")
def tiny_prm(tmp_path_factory):
    from prm.train import TrainConfig, train

    out = tmp_path_factory.mktemp("prm") / "model"
    return str(train(TrainConfig(data="synthetic:tiny", synthetic_problems=20, model="tiny:tiny", max_steps=1,
                                 eval_every=0, progress=False, output_dir=str(out))))


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    from generation.tiny import save_tiny_causal_lm

    return str(save_tiny_causal_lm(tmp_path_factory.mktemp("policy"),
                                   ["Question: What is 3 + 4?\nSolution:\n3 + 4 = 7\nThe answer is 7\n"] * 4,
                                   size="tiny", seed=0))


def test_score_refuses_an_existing_output_and_resumes_only_its_own_run(tmp_path, tiny_prm):
    source = _write(tmp_path / "in.jsonl", STEPS)
    output = tmp_path / "out.jsonl"
    score_file(ScoreConfig(model=tiny_prm, input=source, output=str(output)))
    full = output.read_text()
    with pytest.raises(ValueError, match="--overwrite_output"):
        score_file(ScoreConfig(model=tiny_prm, input=source, output=str(output)))
    # An interrupted run: two complete lines and half of the third.
    lines = full.splitlines(keepends=True)
    output.write_text("".join(lines[:2]) + lines[2][:10])
    score_file(ScoreConfig(model=tiny_prm, input=source, output=str(output), resume="latest"))
    assert output.read_text() == full
    other = _write(tmp_path / "other.jsonl", STEPS[:3])
    with pytest.raises(ValueError, match=r"out\.jsonl was made by a different run \(input: earlier output '"):
        score_file(ScoreConfig(model=tiny_prm, input=other, output=str(output), resume="latest"))
    score_file(ScoreConfig(model=tiny_prm, input=other, output=str(output), overwrite_output=True))
    assert len(output.read_text().splitlines()) == 3


def test_score_refuses_to_resume_with_a_model_retrained_in_place(tmp_path, tiny_prm):
    import shutil

    from prm.train import TrainConfig, train

    model = tmp_path / "model"
    shutil.copytree(tiny_prm, model)
    source = _write(tmp_path / "in.jsonl", STEPS)
    output = tmp_path / "out.jsonl"
    score_file(ScoreConfig(model=str(model), input=source, output=str(output)))
    output.write_text(output.read_text().splitlines(keepends=True)[0])
    # Another model under the same path: the lines scored so far came from the first one.
    train(TrainConfig(data="synthetic:tiny", synthetic_problems=20, model="tiny:tiny", max_steps=2, eval_every=0,
                      progress=False, output_dir=str(model), overwrite_output_dir=True, seed=1))
    with pytest.raises(ValueError, match=r"different run \(model_files: the files .*model\.safetensors.* differ"):
        score_file(ScoreConfig(model=str(model), input=source, output=str(output), resume="latest"))


def test_search_refuses_an_existing_output_and_resumes_to_the_same_results(tmp_path, tiny_policy):
    problems = _write(tmp_path / "problems.jsonl", PROBLEMS)
    output = tmp_path / "results.jsonl"
    options = dict(policy=tiny_policy, prm="verifier", problems=problems, width=2, beam_width=1, max_steps=2,
                   max_step_tokens=8, device="cpu", output=str(output))
    metrics = run_search(SearchConfig(**options))
    full = output.read_text()
    with pytest.raises(ValueError, match="--overwrite_output"):
        run_search(SearchConfig(**options))
    output.write_text(full.splitlines(keepends=True)[0])
    resumed = run_search(SearchConfig(**options, resume="latest"))
    assert output.read_text() == full
    assert resumed == metrics  # the metrics cover the whole output, not only the resumed part
    with pytest.raises(ValueError, match="different run"):
        run_search(SearchConfig(**{**options, "width": 4}, resume="latest"))


def test_rerank_refuses_a_used_output_folder(tmp_path, tiny_prm):
    source = _write(tmp_path / "in.jsonl", CANDIDATES)
    out = tmp_path / "out"
    rerank_file(RerankConfig(input=source, output_dir=str(out), prm=tiny_prm, device="cpu"))
    with pytest.raises(ValueError, match="--overwrite_output_dir"):
        rerank_file(RerankConfig(input=source, output_dir=str(out), prm=tiny_prm, device="cpu"))
    rerank_file(RerankConfig(input=source, output_dir=str(out), prm=tiny_prm, device="cpu", overwrite_output_dir=True))
    assert (out / "choices.jsonl").exists()


def test_eval_search_refuses_a_used_output_folder_before_sampling(tmp_path, tiny_policy):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}\n")
    with pytest.raises(ValueError, match="--overwrite_output_dir"):
        eval_search(EvalSearchConfig(policy=tiny_policy, methods="majority", n_problems=2, ns="1", seeds="0",
                                     max_new_tokens=8, device="cpu", output_dir=str(out)))
    assert (out / "results.json").read_text() == "{}\n"


def test_search_runs_a_batch_of_problems_in_lockstep_and_resumes_inside_a_batch(tmp_path, tiny_policy, monkeypatch):
    from generation.policy import HFPolicy
    from search.beam import BeamConfig, search_many
    from search.scorers import VerifierScorer

    problems = _write(tmp_path / "problems.jsonl", PROBLEMS)
    output = tmp_path / "results.jsonl"
    options = dict(policy=tiny_policy, prm="verifier", problems=problems, width=4, beam_width=2, max_steps=3,
                   max_step_tokens=8, device="cpu", output=str(output), questions_per_batch=2, seed=5)
    expand = HFPolicy.expand
    calls = []  # states per policy.expand call
    monkeypatch.setattr(HFPolicy, "expand", lambda self, states, k, **kw: calls.append(len(states))
                        or expand(self, states, k, **kw))
    run_search(SearchConfig(**options))
    full = output.read_text()
    rows = [json.loads(line) for line in full.splitlines()]
    # Problems 0-1 are one lockstep batch seeded by its first problem's seed, problem 2 the next.
    policy = HFPolicy.from_pretrained(tiny_policy, device="cpu", temperature=0.7, max_new_tokens=256,
                                      max_step_tokens=8, seed=0, batch_size=16)
    questions = [row["prompt"] for row in PROBLEMS]
    configs = [BeamConfig(width=4, beam_width=2, max_steps=3, temperature=0.7, seed=5 + i) for i in range(3)]
    expected = (search_many(questions[:2], policy, VerifierScorer(), configs[:2])
                + search_many(questions[2:], policy, VerifierScorer(), configs[2:]))
    assert [row["best"]["steps"] for row in rows] == [result.best.steps for result in expected]
    assert [row["counters"] for row in rows] == [asdict(result.counters) for result in expected]
    assert calls[0] == 2  # the first batch's two roots went to the policy in one expansion
    # Interrupted after the first problem of a batch: the batch is searched again, the line kept.
    output.write_text(full.splitlines(keepends=True)[0])
    run_search(SearchConfig(**options, resume="latest"))
    assert output.read_text() == full
    with pytest.raises(ValueError, match="different run"):
        run_search(SearchConfig(**{**options, "questions_per_batch": 1}, resume="latest"))


def test_search_refuses_to_resume_with_another_batch_size(tmp_path, tiny_policy):
    # The policy splits a round's rows into chunks of batch_size // k, which changes the order of
    # the sampler's draws, so another batch size is another run.
    problems = _write(tmp_path / "problems.jsonl", PROBLEMS[:2])
    output = tmp_path / "results.jsonl"
    options = dict(policy=tiny_policy, prm="verifier", problems=problems, width=2, beam_width=1, max_steps=1,
                   max_step_tokens=4, device="cpu", output=str(output), batch_size=16)
    run_search(SearchConfig(**options))
    output.write_text(output.read_text().splitlines(keepends=True)[0])
    kept = output.read_text()
    with pytest.raises(ValueError, match="different run.*batch_size: earlier output 16, now 2"):
        run_search(SearchConfig(**{**options, "batch_size": 2}, resume="latest"))
    assert output.read_text() == kept


def test_rerank_overwrite_replaces_the_saved_config(tmp_path):
    from commands.cli import main

    source = _write(tmp_path / "in.jsonl", CANDIDATES)
    out = tmp_path / "out"
    assert main(["rerank", "--input", source, "--output_dir", str(out), "--methods", "majority", "--seeds", "0"]) == 0
    assert main(["rerank", "--input", source, "--output_dir", str(out), "--methods", "verifier-mean", "--seeds", "7",
                 "--overwrite_output_dir"]) == 0
    saved = json.loads((out / "rerank_config.json").read_text())
    assert json.loads((out / "metrics.json").read_text())["methods"] == ["verifier-mean"]
    assert (saved["methods"], saved["seeds"]) == ("verifier-mean", "7")


def test_eval_search_overwrite_replaces_the_saved_config(tmp_path, tiny_policy):
    from commands.cli import main

    out = tmp_path / "out"
    common = ["eval-search", "--policy", tiny_policy, "--problems", "synthetic:tiny", "--n_problems", "1", "--ns", "1",
              "--methods", "majority", "--n_subsets", "1", "--max_new_tokens", "8", "--device", "cpu",
              "--output_dir", str(out)]
    assert main(common + ["--seeds", "0"]) == 0
    assert main(common + ["--seeds", "5", "--temperature", "0.3", "--overwrite_output_dir"]) == 0
    saved = json.loads((out / "eval_search_config.json").read_text())
    assert json.loads((out / "results.json").read_text())["config"]["seeds"] == "5"
    assert (saved["seeds"], saved["temperature"]) == ("5", 0.3)
