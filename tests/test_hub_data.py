"""Hub datasets in every command that reads records (issue #17, item 7): an `owner/name[:split]` id
is read through `datasets.load_dataset` (faked here: nothing is downloaded) and validated by the
command's own reader; offline, a hub id that is not cached fails at once in one line."""

import json
import time
from pathlib import Path

import pytest

from commands.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO_REWARD = ROOT / "prm" / "assets" / "demo" / "reward"
ROWS = [{"prompt": "What is 2 + 3?", "completions": ["2 + 3 = 5", "The answer is 5"], "labels": [True, True]},
        {"prompt": "What is 1 + 1?", "completions": ["1 + 1 = 3", "The answer is 3"], "labels": [False, False]}]


@pytest.fixture
def fake_hub(monkeypatch):
    import datasets

    calls = []

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        if path == "me/steps":
            return datasets.Dataset.from_list(ROWS)
        if path == "me/bad":
            return datasets.Dataset.from_list([{"prompt": "Q", "completions": ["a", "b"], "labels": [True]}])
        raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_score_reads_a_hub_dataset(tmp_path, fake_hub, monkeypatch):
    monkeypatch.setenv("PRM_DATA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "scored.jsonl"
    assert main(["score", "--model", str(DEMO_REWARD), "--input", "me/steps:test", "--output", str(out)]) == 0
    assert fake_hub == [("me/steps", None, "test")]
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and all("step_scores" in json.loads(line) or json.loads(line) for line in lines)


def test_a_bad_hub_record_is_one_line_naming_dataset_and_row(tmp_path, fake_hub, monkeypatch, capsys):
    monkeypatch.setenv("PRM_DATA_CACHE", str(tmp_path / "cache"))
    assert main(["score", "--model", str(DEMO_REWARD), "--input", "me/bad", "--output", str(tmp_path / "o.jsonl")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "me/bad" in err and "line 1" in err


def test_every_record_reading_command_takes_hub_ids():
    from commands.hub_data import RECORD_OPTIONS

    assert RECORD_OPTIONS == {"score": ("input",), "label": ("input",), "rerank": ("input",),
                              "search": ("problems",), "eval-search": ("problems",), "sft": ("data",),
                              "ppo": ("data", "eval_data")}


def test_local_paths_and_synthetic_are_left_alone(tmp_path):
    from commands.hub_data import is_hub_dataset

    (tmp_path / "x.jsonl").write_text("")
    for local in (str(tmp_path / "x.jsonl"), "runs/missing.jsonl", "synthetic:tiny", "synthetic", "./a/b", "data.csv"):
        assert not is_hub_dataset(local), local
    assert is_hub_dataset("openai/gsm8k") and is_hub_dataset("trl-lib/math_shepherd:test")


def test_offline_a_hub_id_fails_at_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PRM_DATA_CACHE", str(tmp_path / "cache"))
    started = time.perf_counter()
    assert main(["score", "--model", str(DEMO_REWARD), "--input", "nobody/nothing-here",
                 "--output", str(tmp_path / "o.jsonl")]) == 1
    assert time.perf_counter() - started < 30
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nobody/nothing-here" in err and "offline" in err.lower()


@pytest.mark.parametrize("option", ["--data", "--eval_data"])
def test_train_with_an_unreachable_hub_fails_at_once_in_one_line(tmp_path, capsys, monkeypatch, fake_hub, option):
    # prm train reads hub ids itself (load_step_dataset detects Math-Shepherd, PRM800K, ...); with
    # no network, datasets retried for about 28 s and printed 23 warning lines before its error.
    import commands.hub_data

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(commands.hub_data, "_hub_reachable", lambda timeout=3.0: False)
    local = tmp_path / "steps.jsonl"
    local.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    data = {"--data": str(local), "--eval_data": str(local), option: "nobody/nothing-here"}
    assert main(["train", "--data", data["--data"], "--eval_data", data["--eval_data"], "--model", "tiny:tiny",
                 "--output_dir", str(tmp_path / "run"), "--max_steps", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nobody/nothing-here" in err and "cannot be reached" in err
    assert fake_hub == [] and not (tmp_path / "run").exists()
