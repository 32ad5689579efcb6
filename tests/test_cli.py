"""The `prm` entry point: help that says what flags do, and one line for a user's mistake."""

import json
from pathlib import Path

import pytest

from commands.cli import main


def test_no_flags_say_they_turn_the_option_off(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--no_progress, --no-progress Turn off --progress" in text
    assert "(default: '\\n')" in text and "(default: )" not in text


def test_a_bad_record_is_one_line_naming_file_and_line(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"prompt": "Q", "completions": ["a", "b"], "labels": [True]}) + "\n")
    assert main(["train", "--data", str(data), "--output_dir", str(tmp_path / "out"), "--max_steps", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(data) in err and "line 1" in err and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError):
        main(["train", "--objective", "nonsense", "--debug"])


def test_a_bad_option_value_is_one_line(capsys):
    assert main(["train", "--objective", "nonsense"]) == 1
    assert "--objective must be" in capsys.readouterr().err


def test_a_command_ends_by_saying_what_it_wrote_and_where(tmp_path, capsys):
    import json as json_module
    from pathlib import Path as P

    from commands.cli import main

    source = tmp_path / "candidates.jsonl"
    source.write_text(json_module.dumps({"prompt": "What is 3 + 4?", "completions": ["3 + 4 = 7\nThe answer is 7"]}) + "\n")
    model = P(__file__).resolve().parents[1] / "prm" / "assets" / "demo" / "reward"
    target = tmp_path / "scores.jsonl"
    assert main(["score", "--model", str(model), "--input", str(source), "--output", str(target)]) == 0
    assert f"prm score: wrote {target}" in capsys.readouterr().out


DEMO = Path(__file__).resolve().parents[1] / "prm" / "assets" / "demo"


@pytest.mark.parametrize("args, fragment", [
    (["search", "--prm", "verifier", "--max_step_tokens", "0"], "--max_step_tokens must be >= 1, got 0"),
    (["search", "--prm", "verifier", "--max_new_tokens", "0"], "--max_new_tokens must be >= 1, got 0"),
    (["eval-search", "--methods", "majority", "--max_step_tokens", "0"], "--max_step_tokens must be >= 1, got 0"),
    (["eval-search", "--methods", "majority", "--seeds", ""], "--seeds must name at least one seed"),
    (["eval-search", "--methods", "majority", "--seeds", " , "], "--seeds must name at least one seed"),
    (["eval-search", "--problems", "synthetic:tiny", "--n_problems", "0"], "--n_problems must be >= 1"),
    (["rerank", "--methods", "majority", "--seeds", ""], "--seeds must name at least one seed"),
])
def test_a_bad_search_option_is_one_line_before_any_model_or_file_is_read(tmp_path, capsys, args, fragment):
    # The policy and input named do not exist: the option is refused before either is looked at.
    missing = str(tmp_path / "no-such-model")
    where = (["--input", str(tmp_path / "nope.jsonl"), "--output_dir", str(tmp_path / "out")] if args[0] == "rerank"
             else ["--policy", missing] + (["--output", str(tmp_path / "out.jsonl")] if args[0] == "search"
                                           else ["--output_dir", str(tmp_path / "out")]))
    assert main(args + where) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err and "Traceback" not in err, err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("option", ["max_step_tokens", "max_new_tokens"])
def test_the_policy_refuses_a_token_limit_below_one(option):
    from generation.policy import HFPolicy

    with pytest.raises(ValueError, match=f"{option} must be >= 1, got 0"):
        HFPolicy.from_pretrained(str(DEMO / "policy"), device="cpu", **{option: 0})


def test_score_of_a_hub_dataset_writes_into_the_current_folder(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    cached = cache / "someone" / "cands" / "test.jsonl"
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps({"prompt": "What is 3 + 4?", "completions": ["3 + 4 = 7\nThe answer is 7"]}) + "\n")
    monkeypatch.setenv("PRM_DATA_CACHE", str(cache))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["score", "--model", str(DEMO / "reward"), "--input", "someone/cands:test"]) == 0
    target = work / "cands.test.scored.jsonl"
    assert f"prm score: wrote {target.name}" in capsys.readouterr().out
    assert len(target.read_text().splitlines()) == 1
    assert sorted(path.name for path in cache.rglob("*") if path.is_file()) == ["test.jsonl"]  # cache untouched


def test_a_warning_is_one_line_naming_the_command(tmp_path):
    # A length warning used to come out as a Python warning: "commands/cli.py:167: UserWarning: ..."
    # and then the source line of the call.
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    record = {"prompt": "a long question " * 30, "completions": ["1 + 1 = 2", "The answer is 2"], "labels": [True, True]}
    short = {"prompt": "What is 1 + 1?", "completions": ["1 + 1 = 2", "The answer is 2"], "labels": [True, True]}
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [record] + [short] * 8))
    done = subprocess.run([sys.executable, "-m", "commands.cli", "train", "--data", str(data), "--eval_fraction", "0",
                           "--model", "tiny:tiny", "--max_length", "40", "--max_steps", "1", "--batch_size", "4",
                           "--no_progress", "--output_dir", str(tmp_path / "run")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "max_length" in line]
    assert lines and all(line.startswith("prm train: warning: ") for line in lines), done.stderr
    assert "UserWarning" not in done.stderr and "with_local_records" not in done.stderr
