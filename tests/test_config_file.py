"""Config files (issue #17, item 5): every subcommand reads `--config FILE.yaml|json`, flags on the
command line override the file, and the resolved config a run saves in its output folder repeats it."""

import json
from dataclasses import asdict

import pytest

from commands.cli import COMMANDS, main, parse_command


def test_yaml_file_then_flags_override(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("objective: joint\nmax_steps: 7\nlr: 1e-4\nseparator: \"\\n\"\nprogress: false\n")
    config = parse_command("train", ["--config", str(path), "--max_steps", "3"])
    assert config.objective == "joint" and config.max_steps == 3
    assert config.lr == pytest.approx(1e-4) and isinstance(config.lr, float)  # YAML reads 1e-4 as a string
    assert config.progress is False and config.separator == "\n"


def test_json_file_gives_required_options(tmp_path):
    path = tmp_path / "score.json"
    path.write_text(json.dumps({"model": "runs/prm", "input": "x.jsonl", "batch_size": 4}))
    config = parse_command("score", [f"--config={path}"])
    assert (config.model, config.input, config.batch_size) == ("runs/prm", "x.jsonl", 4)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_repeats_from_its_saved_config(tmp_path, name):
    required = {"score": ["--model", "m", "--input", "x.jsonl"], "rerank": ["--input", "x.jsonl"],
                "search": ["--policy", "p", "--prm", "verifier"], "eval-search": ["--policy", "p"],
                "label": ["--input", "x.jsonl"], "export-sft": ["--input", "x.jsonl", "--output", "o.jsonl"]}
    first = parse_command(name, required.get(name, []))
    saved = tmp_path / f"{name}.json"
    saved.write_text(json.dumps(asdict(first)))
    assert parse_command(name, ["--config", str(saved)]) == first


def test_unknown_option_in_the_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"max_stepz": 3}))
    assert main(["train", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "max_stepz" in err


def test_missing_or_broken_file_is_one_line(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["train", "--config", str(broken)]) == 1
    assert "broken.json" in capsys.readouterr().err


def test_a_train_run_repeats_from_its_saved_config(tmp_path):
    out = tmp_path / "prm"
    path = tmp_path / "train.yaml"
    path.write_text(f"synthetic_problems: 40\nmax_steps: 1\neval_every: 0\nprogress: false\noutput_dir: {out}\n")
    assert main(["train", "--config", str(path), "--max_steps", "2"]) == 0
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["max_steps"] == 2 and saved["synthetic_problems"] == 40
    again = parse_command("train", ["--config", str(out / "train_config.json")])
    assert asdict(again) == saved


def test_rerank_saves_its_config_in_its_output_folder(tmp_path):
    candidates = tmp_path / "candidates.jsonl"
    candidates.write_text(json.dumps({"prompt": "What is 2 + 3?", "reference": "5",
                                      "completions": ["2 + 3 = 5\nThe answer is 5", "2 + 3 = 6\nThe answer is 6"]}) + "\n")
    out = tmp_path / "rerank"
    assert main(["rerank", "--input", str(candidates), "--methods", "verifier-min", "--output_dir", str(out)]) == 0
    saved = json.loads((out / "rerank_config.json").read_text())
    assert parse_command("rerank", ["--config", str(out / "rerank_config.json")]) == \
        parse_command("rerank", ["--input", str(candidates), "--methods", "verifier-min", "--output_dir", str(out)])
    assert saved["input"] == str(candidates)
