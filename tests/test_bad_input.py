"""Bad input through the real command line (`python -m commands.cli ...` in a subprocess, with a
timeout): one line of error (no traceback) or a counted warning, a non-zero exit where it failed,
no hang, and an interrupted run that saves a checkpoint and prints how to resume it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE",
       "TOKENIZERS_PARALLELISM": "false"}


def prm(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "commands.cli", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


STEP = json.dumps({"prompt": "What is 3 + 4?", "completions": ["3 + 4 = 7", "The answer is 7"],
                   "labels": [True, True], "reference": "7"})


@pytest.mark.parametrize("name, line, fragment", [
    ("malformed", '{"prompt": "q", "completions": [', "line 2"),
    ("label count", json.dumps({"prompt": "q", "completions": ["a", "b"], "labels": [True], "reference": "1"}), "line 2"),
    ("string labels", json.dumps({"prompt": "q", "completions": ["a"], "labels": ["yes"], "reference": "1"}), "line 2"),
    ("empty solution", json.dumps({"prompt": "q", "completions": [""], "labels": [True], "reference": "1"}), "line 2"),
])
def test_prm_label_names_the_bad_line(tmp_path, name, line, fragment):
    source = write_lines(tmp_path / "in.jsonl", [STEP, line])
    assert_one_line_error(prm("label", "--input", str(source), "--output", str(tmp_path / "out.jsonl")), fragment)


def test_prm_label_non_utf8_names_file_and_line(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(STEP.encode() + b"\n" + b'{"prompt": "\xff\xfe"}\n')
    assert_one_line_error(prm("label", "--input", str(source), "--output", str(tmp_path / "out.jsonl")),
                          "in.jsonl", "line 2")


def test_prm_label_missing_path(tmp_path):
    assert_one_line_error(prm("label", "--input", str(tmp_path / "nope.jsonl")), "nope.jsonl")


def test_prm_score_hub_id_offline_fails_fast(tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [STEP])
    started = time.monotonic()
    result = prm("score", "--model", "no-such-org/no-such-prm", "--input", str(source))
    assert_one_line_error(result)
    assert time.monotonic() - started < 30


def test_prm_label_refuses_a_used_output_and_a_resume_of_another_input(tmp_path):
    source = write_lines(tmp_path / "a.jsonl", [STEP, STEP])
    other = write_lines(tmp_path / "b.jsonl", [STEP])
    output = tmp_path / "out.jsonl"
    assert prm("label", "--input", str(source), "--output", str(output)).returncode == 0
    kept = output.read_text()
    assert_one_line_error(prm("label", "--input", str(source), "--output", str(output)), "--overwrite_output")
    assert_one_line_error(prm("label", "--input", str(other), "--output", str(output), "--resume", "latest"),
                          "different run", "input")
    assert output.read_text() == kept  # nothing appended from the other file
    again = prm("label", "--input", str(source), "--output", str(output), "--resume", "latest")
    assert again.returncode == 0, again.stderr
    assert output.read_text() == kept
    assert prm("label", "--input", str(other), "--output", str(output), "--overwrite_output").returncode == 0
    assert len(output.read_text().splitlines()) == 1


@pytest.fixture(scope="module")
def tiny_prm(tmp_path_factory):
    out = tmp_path_factory.mktemp("prm") / "model"
    result = prm("train", "--data", "synthetic:tiny", "--synthetic_problems", "20", "--model", "tiny:tiny",
                 "--max_steps", "1", "--eval_every", "0", "--no_progress", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_prm_score_skips_a_2mb_line_with_a_counted_warning_and_keeps_the_rest(tmp_path, tiny_prm):
    huge = json.dumps({"prompt": "What is 3 + 4? " * 140_000, "completions": ["3 + 4 = 7"], "labels": [True]})
    source = write_lines(tmp_path / "in.jsonl", [STEP, huge, STEP])
    started = time.monotonic()
    result = prm("score", "--model", str(tiny_prm), "--input", str(source), "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 45
    assert "in.jsonl, line 2: skipped" in result.stderr and "1 of 3 records skipped" in result.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["step_scores"] is None for row in rows] == [False, True, False]
    assert len(rows[0]["step_scores"]) == 2


def test_prm_search_skips_a_2mb_problem_and_searches_the_rest(tmp_path):
    from generation.tiny import save_tiny_causal_lm

    policy = save_tiny_causal_lm(tmp_path / "policy", ["Question: What is 3 + 4?\nSolution:\n3 + 4 = 7\nThe answer is 7\n"] * 4,
                                 size="tiny", seed=0)
    problems = write_lines(tmp_path / "problems.jsonl", [
        json.dumps({"prompt": "What is 3 + 4?", "reference": "7"}),
        json.dumps({"prompt": "What is 3 + 4? " * 140_000, "reference": "7"}),
        json.dumps({"prompt": "What is 2 + 2?", "reference": "4"}),
    ])
    output = tmp_path / "results.jsonl"
    started = time.monotonic()
    result = prm("search", "--policy", str(policy), "--prm", "verifier", "--problems", str(problems), "--width", "2",
                 "--beam_width", "1", "--max_steps", "2", "--max_step_tokens", "8", "--device", "cpu",
                 "--output", str(output), timeout=90)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    assert "problem problems.jsonl:2: skipped" in result.stderr and "1 of 3 problems skipped" in result.stderr
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert ["skipped" in row for row in rows] == [False, True, False]


def test_prm_rerank_skips_a_2mb_problem_with_a_counted_warning(tmp_path, tiny_prm):
    small = json.dumps({"prompt": "What is 3 + 4?", "completions": ["3 + 4 = 7\nThe answer is 7", "The answer is 8"],
                        "reference": "7"})
    huge = json.dumps({"prompt": "What is 3 + 4? " * 140_000, "completions": ["The answer is 7"], "reference": "7"})
    source = write_lines(tmp_path / "in.jsonl", [small, huge, small])
    result = prm("rerank", "--input", str(source), "--prm", str(tiny_prm), "--device", "cpu",
                 "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "in.jsonl, line 2: skipped" in result.stderr and "1 of 3 problems skipped" in result.stderr
    rows = [json.loads(line) for line in (tmp_path / "out" / "choices.jsonl").read_text().splitlines()]
    assert sorted(row["line"] for row in rows) == [1, 2, 3]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["skipped"] == 1


# ------------------------------------------------------------------ sft, ppo, eval-search
PROBLEM = json.dumps({"question": "What is 3 + 4?", "answer": "7", "steps": ["3 + 4 = 7", "The answer is 7"]})
HUGE_PROBLEM = json.dumps({"question": "What is 3 + 4? " * 140_000, "answer": "7", "steps": ["3 + 4 = 7", "The answer is 7"]})


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    from generation.tiny import save_tiny_causal_lm

    return save_tiny_causal_lm(tmp_path_factory.mktemp("policy") / "policy",
                               ["Question: What is 3 + 4?\nSolution:\n3 + 4 = 7\nThe answer is 7\n"] * 4, size="tiny",
                               seed=0)


def run_on(command: str, data: Path, out: Path, policy: Path) -> subprocess.CompletedProcess:
    """`prm <command>` on the problems file `data`, as small and short as the command allows."""
    if command == "sft":
        return prm("sft", "--data", str(data), "--model", "tiny:tiny", "--vocab_size", "300", "--max_steps", "2",
                   "--batch_size", "2", "--n_eval", "0", "--output_dir", str(out))
    if command == "ppo":
        return prm("ppo", "--policy", str(policy), "--mode", "outcome", "--data", str(data), "--n_eval", "0",
                   "--max_updates", "1", "--batch_size", "2", "--max_new_tokens", "4", "--ppo_epochs", "1",
                   "--n_minibatches", "1", "--output_dir", str(out))
    return prm("eval-search", "--policy", str(policy), "--problems", str(data), "--methods", "majority", "--ns", "1",
               "--seeds", "0", "--n_subsets", "1", "--max_new_tokens", "4", "--device", "cpu",
               "--output_dir", str(out))


TRAINING_COMMANDS = ("sft", "ppo", "eval-search")


@pytest.mark.parametrize("command", TRAINING_COMMANDS)
def test_a_malformed_problems_line_is_named(tmp_path, tiny_policy, command):
    data = write_lines(tmp_path / "problems.jsonl", [PROBLEM, '{"question": "What is', PROBLEM])
    assert_one_line_error(run_on(command, data, tmp_path / "out", tiny_policy), "problems.jsonl", "line 2")


@pytest.mark.parametrize("command", TRAINING_COMMANDS)
def test_non_utf8_problems_name_file_and_line(tmp_path, tiny_policy, command):
    data = tmp_path / "problems.jsonl"
    data.write_bytes(PROBLEM.encode() + b"\n" + b'{"question": "\xff\xfe", "answer": "7"}\n')
    assert_one_line_error(run_on(command, data, tmp_path / "out", tiny_policy), "problems.jsonl", "line 2")


@pytest.mark.parametrize("command", TRAINING_COMMANDS)
def test_a_missing_problems_file_is_named(tmp_path, tiny_policy, command):
    assert_one_line_error(run_on(command, tmp_path / "nope.jsonl", tmp_path / "out", tiny_policy), "nope.jsonl")


@pytest.mark.parametrize("command", ("sft", "ppo"))
def test_an_output_dir_with_an_earlier_run_is_refused(tmp_path, tiny_policy, command):
    data = write_lines(tmp_path / "problems.jsonl", [PROBLEM, PROBLEM])
    out = tmp_path / "out"
    (out / "checkpoints" / "step-5").mkdir(parents=True)
    write_lines(out / "metrics.jsonl", ['{"step": 5, "loss": 1.0}'])
    started = time.monotonic()
    assert_one_line_error(run_on(command, data, out, tiny_policy), str(out), "--overwrite_output_dir", "--resume latest")
    assert time.monotonic() - started < 30  # refused before any model is built
    assert (out / "metrics.jsonl").read_text() == '{"step": 5, "loss": 1.0}\n'


def test_sft_skips_a_record_longer_than_max_length_with_a_counted_warning(tmp_path):
    data = write_lines(tmp_path / "problems.jsonl", [PROBLEM, HUGE_PROBLEM, PROBLEM])
    result = run_on("sft", data, tmp_path / "out", Path())
    assert result.returncode == 0, result.stderr
    assert "problems.jsonl:2: skipped" in result.stderr and "1 of 3 records skipped" in result.stderr
    assert json.loads((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()[-1])["loss"] is not None


def test_ppo_skips_a_2mb_problem_with_a_counted_warning(tmp_path, tiny_policy):
    data = write_lines(tmp_path / "problems.jsonl", [PROBLEM, HUGE_PROBLEM, PROBLEM])
    result = run_on("ppo", data, tmp_path / "out", tiny_policy)
    assert result.returncode == 0, result.stderr
    assert "problem problems.jsonl:2: skipped" in result.stderr
    assert "1 of 3 training problems skipped as too long for the policy" in result.stderr
    assert len((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()) == 1


def test_eval_search_skips_a_2mb_problem_with_a_counted_warning(tmp_path, tiny_policy):
    data = write_lines(tmp_path / "problems.jsonl", [PROBLEM, HUGE_PROBLEM, PROBLEM])
    result = run_on("eval-search", data, tmp_path / "out", tiny_policy)
    assert result.returncode == 0, result.stderr
    assert "problems.jsonl:2: skipped" in result.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text())["problems"] == 2


@pytest.mark.parametrize("command", ("train", "sft", "ppo"))
def test_sigint_saves_a_checkpoint_and_prints_the_resume_command(tmp_path, tiny_policy, command):
    out = tmp_path / "run"
    if command == "train":
        args = ["train", "--data", "synthetic:tiny", "--synthetic_problems", "40", "--model", "tiny:tiny",
                "--max_steps", "100000", "--batch_size", "4", "--eval_every", "0", "--log_every", "1", "--no_progress"]
    else:
        data = write_lines(tmp_path / "problems.jsonl", [PROBLEM] * 4)
        args = (["sft", "--model", "tiny:tiny", "--vocab_size", "300", "--max_steps", "100000", "--batch_size", "2",
                 "--n_eval", "0", "--log_every", "1"] if command == "sft" else
                ["ppo", "--policy", str(tiny_policy), "--mode", "outcome", "--n_eval", "0", "--max_updates", "100000",
                 "--batch_size", "2", "--max_new_tokens", "4", "--ppo_epochs", "1", "--n_minibatches", "1"])
        args += ["--data", str(data)]
    args += ["--save_every", "0"]  # only the signal saves (within --save_minutes' 10), so exactly one checkpoint
    process = subprocess.Popen([sys.executable, "-m", "commands.cli", *args, "--output_dir", str(out)],
                               cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().strip()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    checkpoints = list((out / "checkpoints").glob("step-*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "run.json").is_file(), stderr
    assert f"checkpoint saved to {checkpoints[0]}" in stderr
    assert f"resume with: prm {command}" in stderr and f"--output_dir {out}" in stderr
    assert stderr.rstrip().endswith("--resume latest"), stderr


CANDIDATE = json.dumps({"prompt": "What is 3 + 4?", "completions": ["3 + 4 = 7\nThe answer is 7"], "reference": "7"})
# A well-formed first line per command (the bad line is line 2).
FIRST_LINE = {"score": STEP, "train": STEP, "rerank": CANDIDATE, "export-sft": CANDIDATE, "search": PROBLEM}


def run_reader(command: str, data: Path, tmp_path: Path, prm_dir: Path, policy: Path) -> subprocess.CompletedProcess:
    """`prm <command>` reading `data`, writing under tmp_path/out."""
    out = tmp_path / "out"
    if command == "score":
        return prm("score", "--model", str(prm_dir), "--input", str(data), "--output", str(out / "scored.jsonl"))
    if command == "train":
        return prm("train", "--data", str(data), "--model", "tiny:tiny", "--max_steps", "1", "--eval_every", "0",
                   "--no_progress", "--output_dir", str(out))
    if command == "rerank":
        return prm("rerank", "--input", str(data), "--device", "cpu", "--output_dir", str(out))
    if command == "export-sft":
        return prm("export-sft", "--input", str(data), "--scorer", "verifier", "--output", str(out / "sft.jsonl"))
    return prm("search", "--policy", str(policy), "--prm", "verifier", "--problems", str(data), "--width", "2",
               "--beam_width", "1", "--max_steps", "1", "--max_step_tokens", "4", "--device", "cpu",
               "--output", str(out / "results.jsonl"))


@pytest.mark.parametrize("command", sorted(FIRST_LINE))
def test_record_readers_name_a_malformed_a_non_utf8_line_and_a_missing_file(tmp_path, tiny_prm, tiny_policy, command):
    malformed = write_lines(tmp_path / "malformed.jsonl", [FIRST_LINE[command], '{"prompt": "q", "completions": ['])
    assert_one_line_error(run_reader(command, malformed, tmp_path, tiny_prm, tiny_policy), "malformed.jsonl", "line 2")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(FIRST_LINE[command].encode() + b"\n" + b'{"prompt": "\xff\xfe"}\n')
    assert_one_line_error(run_reader(command, binary, tmp_path, tiny_prm, tiny_policy), "binary.jsonl", "line 2")
    assert_one_line_error(run_reader(command, tmp_path / "nope.jsonl", tmp_path, tiny_prm, tiny_policy), "nope.jsonl")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.jsonl"))  # nothing half-written


# What each command's earlier output looks like, and the flag that would replace it.
EARLIER_OUTPUT = {"score": ("scored.jsonl", "--overwrite_output"), "search": ("results.jsonl", "--overwrite_output"),
                  "export-sft": ("sft.jsonl", "--overwrite_output"), "rerank": ("choices.jsonl", "--overwrite_output_dir"),
                  "train": ("metrics.jsonl", "--overwrite_output_dir")}


@pytest.mark.parametrize("command", sorted(EARLIER_OUTPUT))
def test_an_earlier_output_is_refused_fast_and_kept(tmp_path, tiny_prm, tiny_policy, command):
    data = write_lines(tmp_path / "in.jsonl", [FIRST_LINE[command]])
    name, flag = EARLIER_OUTPUT[command]
    (tmp_path / "out").mkdir()
    earlier = write_lines(tmp_path / "out" / name, ['{"earlier": true}'])
    started = time.monotonic()
    assert_one_line_error(run_reader(command, data, tmp_path, tiny_prm, tiny_policy), flag)
    assert time.monotonic() - started < 30
    assert earlier.read_text() == '{"earlier": true}\n'


def test_prm_score_nulls_only_the_candidate_that_is_too_long(tmp_path, tiny_prm):
    # One candidate past the model's positions nulled the scores of every candidate of the
    # record, and the closing line counted the skipped records as scored.
    candidates = json.dumps({"prompt": "What is 3 + 4?", "completions": ["3 + 4 = 7\nThe answer is 7",
                                                                         "3 + 4 = 7 " * 3000, "The answer is 7"]})
    source = write_lines(tmp_path / "in.jsonl", [STEP, candidates])
    result = prm("score", "--model", str(tiny_prm), "--input", str(source), "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "in.jsonl, line 2: completion 1 skipped" in result.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    scores = rows[1]["scores"]
    assert scores[1] is None and rows[1]["step_scores"][1] is None
    assert isinstance(scores[0], float) and isinstance(scores[2], float) and len(rows[1]["step_scores"][0]) == 2
    assert "scored 2 of 2 records" in result.stdout and "1 of 3 candidates" in result.stderr

    huge = json.dumps({"prompt": "What is 3 + 4? " * 4000, "completions": ["3 + 4 = 7"], "labels": [True]})
    source = write_lines(tmp_path / "in2.jsonl", [STEP, huge])
    result = prm("score", "--model", str(tiny_prm), "--input", str(source), "--output", str(tmp_path / "out2.jsonl"))
    assert "scored 1 of 2 records (1 skipped" in result.stdout, result.stdout


def test_prm_score_copies_the_labels_as_they_were_written(tmp_path, tiny_prm):
    record = json.dumps({"prompt": "What is 3 + 4?", "completions": ["3 + 4 = 7", "7 - 1 = 5", "The answer is 7"],
                         "labels": [1, 0.7, 0]})
    source = write_lines(tmp_path / "in.jsonl", [record])
    result = prm("score", "--model", str(tiny_prm), "--input", str(source), "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert row["labels"] == [1, 0.7, 0] and [type(label) for label in row["labels"]] == [int, float, int]
