"""Quiet by default (issue #17, item 6): the toolkit's own calls print no transformers deprecation
warnings and no "Loading weights" / "Writing model shards" bars; `--log_level` turns them back on;
`prm --version` names the toolkit's version."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_REWARD = ROOT / "prm" / "assets" / "demo" / "reward"
NOISE = ("FutureWarning", "DeprecationWarning", "is deprecated", "Loading weights", "Writing model shards")


def _prm(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-m", "commands.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_version():
    from prm import __version__

    result = _prm("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"prm-toolkit {__version__}"
    assert __version__[0].isdigit()


@pytest.fixture(scope="module")
def candidates(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("quiet") / "candidates.jsonl"
    path.write_text(json.dumps({"prompt": "What is 2 + 3?", "completions": ["2 + 3 = 5", "The answer is 5"],
                                "labels": [True, True]}) + "\n")
    return path


def test_train_and_score_print_no_library_noise(tmp_path, candidates):
    train = _prm("train", "--synthetic_problems", "40", "--max_steps", "2", "--eval_every", "0", "--no_progress",
                 "--output_dir", str(tmp_path / "prm"))
    assert train.returncode == 0, train.stderr
    score = _prm("score", "--model", str(tmp_path / "prm"), "--input", str(candidates),
                 "--output", str(tmp_path / "scored.jsonl"))
    assert score.returncode == 0, score.stderr
    for result in (train, score):
        noise = [line for line in result.stderr.splitlines() if any(word in line for word in NOISE)]
        assert not noise, noise


def test_log_level_info_shows_the_library_progress_bars(tmp_path, candidates):
    score = _prm("score", "--model", str(DEMO_REWARD), "--input", str(candidates),
                 "--output", str(tmp_path / "scored.jsonl"), "--log_level", "info")
    assert score.returncode == 0, score.stderr
    assert "Loading weights" in score.stderr


def test_a_bad_log_level_is_one_line():
    result = _prm("score", "--model", str(DEMO_REWARD), "--input", "x.jsonl", "--log_level", "loud")
    assert result.returncode != 0
    assert "--log_level" in result.stderr and "Traceback" not in result.stderr
