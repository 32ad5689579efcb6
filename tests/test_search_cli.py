"""`prm search` and `prm eval-search`: what their accuracy is over when a problem is skipped as
too long for the models, and what a `--resume` must match (the device among it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.eval_search import EvalSearchConfig, eval_search
from commands.search import SearchConfig, run_search

SHORT = [{"prompt": f"What is {a} + {b}?", "reference": str(a + b)} for a, b in [(1, 2), (3, 4)]]
# Far more than the tiny policy's 512 positions: `HFPolicy.start` raises TooLong for it.
TOO_LONG = {"prompt": "What is 3 + 4? " * 300, "reference": "7"}


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    from generation.tiny import save_tiny_causal_lm

    return str(save_tiny_causal_lm(tmp_path_factory.mktemp("policy"),
                                   ["Question: What is 3 + 4?\nSolution:\n3 + 4 = 7\nThe answer is 7\n"] * 4,
                                   size="tiny", seed=0))


def _options(tiny_policy: str, problems: str, output: Path) -> dict:
    return dict(policy=tiny_policy, prm="verifier", problems=problems, width=2, beam_width=1, max_steps=1,
                max_step_tokens=4, device="cpu", output=str(output))


def test_search_accuracy_counts_a_skipped_problem_as_not_solved(tmp_path, tiny_policy, monkeypatch, capsys):
    import verifiers

    # Every searched problem is judged solved, so only the bookkeeping of the skip decides the
    # accuracy: over the 3 problems with a reference (the one without is not judged), 2 solved.
    monkeypatch.setattr(verifiers, "extract_answer", lambda text: "7")
    monkeypatch.setattr(verifiers, "answers_equivalent", lambda reference, answer: True)
    problems = _write(tmp_path / "problems.jsonl", [SHORT[0], TOO_LONG, SHORT[1], {"prompt": "What is 5 + 5?"}])
    output = tmp_path / "results.jsonl"
    metrics = run_search(SearchConfig(**_options(tiny_policy, problems, output)))
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert ["skipped" in row for row in rows] == [False, True, False, False]
    assert [row.get("correct") for row in rows] == [True, False, True, None]
    assert (metrics["problems"], metrics["judged"], metrics["skipped"]) == (4, 3, 1)
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert json.loads(Path(str(output) + ".metrics.json").read_text()) == metrics
    assert "accuracy 2/3 = 0.667 (1 skipped, counted as not solved)" in capsys.readouterr().out


def test_search_records_the_device_type_and_refuses_to_resume_on_another(tmp_path, tiny_policy, capsys):
    from commands.cli import main

    problems = _write(tmp_path / "problems.jsonl", SHORT)
    output = tmp_path / "results.jsonl"
    run_search(SearchConfig(**_options(tiny_policy, problems, output)))
    record = Path(str(output) + ".run.json")
    assert json.loads(record.read_text())["device"] == "cpu"
    # As if the first line had been written on a GPU: the CPU would sample from another random
    # stream, so going on here would mix two runs in one file.
    output.write_text(output.read_text().splitlines(keepends=True)[0])
    record.write_text(json.dumps({**json.loads(record.read_text()), "device": "cuda"}))
    kept = output.read_text()
    capsys.readouterr()
    assert main(["search", "--policy", tiny_policy, "--prm", "verifier", "--problems", problems, "--width", "2",
                 "--beam_width", "1", "--max_steps", "1", "--max_step_tokens", "4", "--device", "cpu",
                 "--output", str(output), "--resume", "latest"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "device: earlier output 'cuda', now 'cpu'" in err, err
    assert output.read_text() == kept


def test_eval_search_reports_the_skipped_problems_beside_the_accuracy(tmp_path, tiny_policy):
    # Every method is evaluated on the same problems, those that fit the policy.
    problems = _write(tmp_path / "problems.jsonl", [SHORT[0], TOO_LONG, SHORT[1]])
    out = tmp_path / "out"
    results = eval_search(EvalSearchConfig(policy=tiny_policy, problems=problems, n_problems=0, methods="majority",
                                           ns="1", seeds="0", max_new_tokens=8, device="cpu", output_dir=str(out)))
    assert (results["problems"], results["skipped"]) == (2, 1)
    assert json.loads((out / "results.json").read_text())["skipped"] == 1
    assert "2 problems, 1 skipped as too long for the policy" in (out / "results.md").read_text().splitlines()[0]
