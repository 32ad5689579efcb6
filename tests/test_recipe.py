"""Recipe plumbing: metrics and results stay valid JSON; a missing tracker fails before any folder;
`--resume latest` finds the newest complete checkpoint and a failed save keeps the previous one."""

import json
import math

import pytest

from prm.recipe import MetricsLogger, dumps, json_safe, require_tensorboard


def test_non_finite_metrics_are_written_as_null(tmp_path):
    logger = MetricsLogger(tmp_path)
    logger.log(3, {"step_auc": float("nan"), "loss": 0.5, "f1": float("inf")})
    row = json.loads((tmp_path / "metrics.jsonl").read_text())   # strict JSON parses
    assert row == {"step": 3, "step_auc": None, "loss": 0.5, "f1": None}
    assert "NaN" not in dumps({"a": [math.nan, {"b": -math.inf}]})
    assert json_safe({"a": (1.0, math.nan)}) == {"a": [1.0, None]}


def test_eval_results_of_a_one_class_eval_set_are_valid_json(tmp_path):
    from prm.train import TrainConfig, train

    data = tmp_path / "all_true.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"Q{i}", "completions": [f"{i} + 1 = {i + 1}"], "labels": [True]})
                              for i in range(12)) + "\n")
    out = tmp_path / "run"
    train(TrainConfig(data=str(data), model="tiny:tiny", output_dir=str(out), max_steps=2, batch_size=4,
                      eval_every=2, progress=False, cpu=True))
    results = json.loads((out / "eval_results.json").read_text(), parse_constant=lambda name: pytest.fail(name))
    assert results["step_auc"] is None       # AUC is undefined with one class: null, not NaN


def test_missing_tensorboard_fails_before_any_folder(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ValueError, match="pip install 'prm-toolkit\\[tensorboard\\]'"):
        require_tensorboard(True)
    from prm.train import TrainConfig

    with pytest.raises(ValueError, match="tensorboard"):
        TrainConfig(output_dir=str(tmp_path / "never"), tensorboard=True)
    assert not (tmp_path / "never").exists()


def test_resume_latest_takes_the_newest_complete_checkpoint(tmp_path):
    from prm.recipe import checkpoint_to_resume

    for name in ("step-2", "step-10", "step-12.partial"):  # a save cut short leaves a .partial folder
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
    assert checkpoint_to_resume(tmp_path, "latest") == tmp_path / "checkpoints" / "step-10"
    assert checkpoint_to_resume(tmp_path, True) == tmp_path / "checkpoints" / "step-10"  # the old boolean form
    assert checkpoint_to_resume(tmp_path, None) is None
    assert checkpoint_to_resume(tmp_path, str(tmp_path / "checkpoints" / "step-2")) == tmp_path / "checkpoints" / "step-2"
    with pytest.raises(FileNotFoundError, match="step-3"):
        checkpoint_to_resume(tmp_path, str(tmp_path / "checkpoints" / "step-3"))
    with pytest.raises(FileNotFoundError, match="no checkpoint under"):
        checkpoint_to_resume(tmp_path / "empty", "latest")


def test_a_save_that_fails_halfway_leaves_the_previous_checkpoint(tmp_path):
    from prm.recipe import saved_atomically

    target = tmp_path / "step-4"
    with saved_atomically(target) as partial:
        (partial / "state.pt").write_text("complete")
    with pytest.raises(OSError):
        with saved_atomically(target) as partial:
            (partial / "state.pt").write_text("half")
            raise OSError("disk full")
    assert (target / "state.pt").read_text() == "complete"
