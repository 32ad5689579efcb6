"""Model cards, the hub and trackers (issue #17, items 3 and 4), for `prm train`, `prm sft` and
`prm ppo` alike: a README.md model card in every output folder, `--push_to_hub` / `--hub_model_id`
(checked against a fake hub client: the hub is never called), and `--report_to` through accelerate's
tracker classes (a fake tracker stands in for wandb), with metrics.jsonl always written."""

import json
from pathlib import Path

import pytest

from commands.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "prm" / "assets" / "demo"


class FakeTracker:
    """Stands in for accelerate's WandBTracker: records what it is given."""

    name = "wandb"
    requires_logging_directory = False
    made: list["FakeTracker"] = []

    def __init__(self, run_name, **kwargs):
        self.run_name, self.kwargs = run_name, kwargs
        self.started, self.finished, self.config, self.logs = False, False, None, []
        FakeTracker.made.append(self)

    def start(self):
        self.started = True

    def store_init_configuration(self, values):
        self.config = values

    def log(self, values, step=None, **kwargs):
        self.logs.append((step, dict(values)))

    def finish(self):
        self.finished = True


class FakeHfApi:
    calls: list[tuple] = []

    def __init__(self, *args, **kwargs):
        pass

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", repo_id, kwargs))
        return repo_id

    def upload_folder(self, **kwargs):
        FakeHfApi.calls.append(("upload_folder", kwargs["repo_id"], kwargs))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run of each recipe, with --report_to wandb (fake) and --push_to_hub (fake)."""
    import accelerate.tracking
    import huggingface_hub

    import prm.outputs

    base = tmp_path_factory.mktemp("outputs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(accelerate.tracking.LOGGER_TYPE_TO_CLASS, "wandb", FakeTracker)
        patch.setattr(prm.outputs, "package_available", lambda name: True)
        patch.setattr(huggingface_hub, "HfApi", FakeHfApi)
        hub = ["--report_to", "wandb", "--push_to_hub", "--hub_model_id"]
        commands = {
            "train": ["train", "--synthetic_problems", "40", "--max_steps", "2", "--eval_every", "0", "--log_every", "1",
                      "--no_progress", "--output_dir", str(base / "train"), *hub, "me/tiny-prm"],
            "sft": ["sft", "--n_train", "40", "--n_eval", "0", "--max_steps", "2", "--log_every", "1", "--save_every", "0",
                    "--output_dir", str(base / "sft"), *hub, "me/tiny-policy"],
            "ppo": ["ppo", "--policy", str(DEMO / "policy"), "--prm", str(DEMO / "reward"), "--n_train", "20",
                    "--n_eval", "4", "--eval_every", "1", "--max_updates", "1", "--batch_size", "2",
                    "--max_new_tokens", "16", "--output_dir", str(base / "ppo"), *hub, "me/tiny-ppo"],
        }
        results = {}
        for name, argv in commands.items():
            FakeTracker.made.clear()
            FakeHfApi.calls.clear()
            assert main(argv) == 0, name
            results[name] = {"dir": base / name, "trackers": list(FakeTracker.made), "hub": list(FakeHfApi.calls)}
    return results


@pytest.mark.parametrize("name", ["train", "sft", "ppo"])
def test_model_card(runs, name):
    from prm import __version__

    card = (runs[name]["dir"] / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: transformers" in card and "prm-toolkit" in card
    assert __version__ in card
    assert f"prm {name} " in card  # the command that made it
    base = {"train": "tiny:small", "sft": "tiny:small", "ppo": str(DEMO / "policy")}[name]
    assert base in card
    assert "records" in card.lower() and "steps" in card.lower()
    if name == "train":
        assert "Objective" in card and "prm" in card and "step_auc" in card  # held-out metrics
        assert "training records" in card
    if name == "ppo":
        assert "heldout_accuracy" in card and "dense" in card


def test_train_card_counts_label_sources(tmp_path):
    from prm.outputs import label_source_counts

    data = tmp_path / "labelled.jsonl"
    rows = [{"prompt": "Q", "completions": ["a", "b"], "labels": [True, False], "label_sources": ["symbolic", "rollout"]},
            {"prompt": "Q", "completions": ["a"], "labels": [True], "label_sources": ["symbolic"]}]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert label_source_counts(str(data)) == {"symbolic": 2, "rollout": 1}
    assert label_source_counts("synthetic:tiny") == {"synthetic generator": None}


@pytest.mark.parametrize("name", ["train", "sft", "ppo"])
def test_push_to_hub_uploads_the_model_folder_only(runs, name):
    from prm.outputs import upload_plan

    calls = runs[name]["hub"]
    repo = {"train": "me/tiny-prm", "sft": "me/tiny-policy", "ppo": "me/tiny-ppo"}[name]
    assert [call[0] for call in calls] == ["create_repo", "upload_folder"] and calls[0][1] == repo
    upload = calls[1][2]
    folder = Path(upload["folder_path"])
    plan = upload_plan(folder)
    assert "README.md" in plan and "config.json" in plan and "model.safetensors" in plan
    assert not any(path.startswith(("checkpoint", "tensorboard")) for path in plan)
    assert any("checkpoint" in pattern for pattern in upload["ignore_patterns"])


def test_no_push_without_the_flag(tmp_path, monkeypatch):
    import huggingface_hub

    FakeHfApi.calls.clear()
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    assert main(["train", "--synthetic_problems", "30", "--max_steps", "1", "--eval_every", "0", "--no_progress",
                 "--output_dir", str(tmp_path / "out")]) == 0
    assert FakeHfApi.calls == [] and (tmp_path / "out" / "README.md").is_file()


@pytest.mark.parametrize("name", ["train", "sft", "ppo"])
def test_report_to_feeds_accelerate_trackers_and_metrics_jsonl(runs, name):
    (tracker,) = runs[name]["trackers"]
    assert tracker.started and tracker.finished and tracker.config["output_dir"] == str(runs[name]["dir"])
    assert tracker.logs and all(isinstance(step, int) for step, _ in tracker.logs)
    logged = {key for _, values in tracker.logs for key in values}
    assert any("loss" in key for key in logged)
    lines = (runs[name]["dir"] / "metrics.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line) for line in lines)


@pytest.mark.parametrize("name,extra", [("train", []), ("sft", []), ("ppo", ["--prm", "verifier"])])
@pytest.mark.parametrize("tracker", ["wandb", "trackio"])
def test_a_missing_tracker_is_one_line_before_any_folder(tmp_path, capsys, name, extra, tracker):
    import importlib.util

    if importlib.util.find_spec(tracker) is not None:
        pytest.skip(f"{tracker} is installed here")
    out = tmp_path / "out"
    assert main([name, "--report_to", tracker, "--output_dir", str(out), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"prm-toolkit[{tracker}]" in err
    assert not out.exists()


def test_tensorboard_flag_is_an_alias(monkeypatch):
    from prm.outputs import trackers_of
    from prm.train import TrainConfig

    import prm.outputs

    monkeypatch.setattr(prm.outputs, "package_available", lambda name: True)
    assert trackers_of(TrainConfig(tensorboard=True)) == ["tensorboard"]
    assert trackers_of(TrainConfig(tensorboard=True, report_to="wandb,tensorboard")) == ["wandb", "tensorboard"]
    assert trackers_of(TrainConfig()) == []
    with pytest.raises(ValueError, match="--report_to"):
        TrainConfig(report_to="comet")
