"""The `prm` entry point: help that says what flags do, and one line for a user's mistake."""

import json

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
