"""`prm demo --retrain --resume` with models already in the run: the held-out problems leave out
what a reused policy was trained on, and a reward model made with other options is refused."""

import json
import shutil

import pytest

from commands.demo import ASSETS, DemoConfig


class _Stop(Exception):
    pass


def test_a_reused_policy_trained_on_other_problems_keeps_them_out_of_the_held_out_set(tmp_path, monkeypatch):
    import commands.demo as demo
    from tasks.math.synthetic import generate_problems

    # A policy trained on the 4,000 problems of seed 0 (the shipped one), resumed by a run of seed 1.
    shutil.copytree(ASSETS / "policy", tmp_path / "models" / "policy")
    sft = json.loads((tmp_path / "models" / "policy" / "sft_config.json").read_text())
    trained_on = {p.question for p in generate_problems(sft["n_train"], "tiny", seed=sft["seed"])}

    def stop(*args, **kwargs):  # the held-out file is written by then; no reward model is needed
        raise _Stop

    monkeypatch.setattr(demo, "train_reward_model", stop)
    config = DemoConfig(smoke=True, retrain=True, resume=True, seed=1, output_dir=str(tmp_path))
    config.ppo_eval_problems = 64
    with pytest.raises(_Stop):
        demo.run_demo(config)
    heldout = [json.loads(line)["question"] for line in (tmp_path / "heldout_problems.jsonl").read_text().splitlines()]
    assert len(heldout) == 64
    assert not set(heldout) & trained_on


def _fake_model(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"weights")


def _reused_reward(tmp_path, made_with: DemoConfig, now: DemoConfig):
    """Train (with training stubbed out) a reward model under `made_with`, then resume under `now`."""
    from commands.demo import make_problems, train_reward_model

    policy_dir = tmp_path / "models" / "policy"
    _fake_model(policy_dir)
    train, _ = make_problems(made_with)

    def trained(*args, **kwargs):
        _fake_model(tmp_path / "models" / "reward")
        return tmp_path / "models" / "reward"

    import commands.demo as demo
    import prm.train
    from verifiers.labelling import LabelStats

    labelled = ([], LabelStats())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prm.train, "train", trained)
        patch.setattr(demo, "label_policy_samples", lambda *args, **kwargs: labelled)
        train_reward_model(made_with, tmp_path, policy_dir, None, train, cpu=True)
    return train_reward_model(now, tmp_path, policy_dir, None, make_problems(now)[0], cpu=True)


def test_a_reward_model_made_with_the_same_options_is_reused(tmp_path):
    config = DemoConfig(smoke=True, retrain=True, resume=True)
    path, info = _reused_reward(tmp_path, config, DemoConfig(smoke=True, retrain=True, resume=True))
    assert path == tmp_path / "models" / "reward" and info["synthetic"] == config.prm_synthetic


@pytest.mark.parametrize("change", [{"prm_first_problem": 3}, {"seed": 1}, {"prm_steps": 7}, {"n_rollouts": 3}])
def test_a_reward_model_made_with_other_options_is_refused(tmp_path, change):
    made_with, now = DemoConfig(smoke=True, retrain=True, resume=True), DemoConfig(smoke=True, retrain=True, resume=True)
    for name, value in change.items():  # after __post_init__, which sets the smoke sizes
        setattr(now, name, value)
    with pytest.raises(ValueError, match=next(iter(change))):
        _reused_reward(tmp_path, made_with, now)


def test_a_reward_model_of_another_policy_is_refused(tmp_path):
    from commands.demo import make_problems, train_reward_model

    config = DemoConfig(smoke=True, retrain=True, resume=True)
    _reused_reward(tmp_path, config, config)
    (tmp_path / "models" / "policy" / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(ValueError, match="policy"):
        train_reward_model(config, tmp_path, tmp_path / "models" / "policy", None, make_problems(config)[0], cpu=True)


def test_a_reward_model_that_records_nothing_is_refused(tmp_path):
    from commands.demo import make_problems, train_reward_model

    config = DemoConfig(smoke=True, retrain=True, resume=True)
    _fake_model(tmp_path / "models" / "policy")
    _fake_model(tmp_path / "models" / "reward")
    (tmp_path / "reward_data.json").write_text(json.dumps({"policy_samples": 0, "synthetic": 40, "stats": {}}))
    with pytest.raises(ValueError, match="cannot be checked"):
        train_reward_model(config, tmp_path, tmp_path / "models" / "policy", None, make_problems(config)[0], cpu=True)


def test_retrain_replaces_a_reward_model_left_by_an_earlier_run(tmp_path, monkeypatch):
    import commands.demo as demo
    from commands.demo import make_problems, train_reward_model
    from verifiers.labelling import LabelStats

    # An earlier `prm demo --retrain` in the same folder (or one stopped mid-training) left its reward model.
    (tmp_path / "models" / "reward").mkdir(parents=True)
    (tmp_path / "models" / "reward" / "metrics.jsonl").write_text('{"step": 1500}\n')
    config = DemoConfig(smoke=True, retrain=True)
    config.prm_steps = 1
    monkeypatch.setattr(demo, "label_policy_samples", lambda *args, **kwargs: ([], LabelStats()))
    path, _ = train_reward_model(config, tmp_path, ASSETS / "policy", None, make_problems(config)[0], cpu=True)
    assert (path / "config.json").is_file()
    assert '"step": 1500' not in (path / "metrics.jsonl").read_text()


def test_the_training_questions_of_a_demo_reward_model_include_its_recorded_problems(tmp_path):
    from commands.demo import training_questions
    from tasks.math.synthetic import generate_problems

    # A reward model exported from a run whose sampled problems lie past the policy's SFT problems.
    shutil.copytree(ASSETS / "policy", tmp_path / "policy")
    (tmp_path / "reward").mkdir()
    options = {**{name: getattr(DemoConfig(), name) for name in ("preset", "seed", "prm_problems", "prm_synthetic")},
               "prm_first_problem": 4500}
    (tmp_path / "reward" / "reward_data.json").write_text(json.dumps({"made_by": {"options": options}}))
    sampled = {p.question for p in generate_problems(4800, "tiny", seed=0)[4500:]}
    assert not sampled <= training_questions(tmp_path / "policy")
    assert sampled <= training_questions(tmp_path / "policy", tmp_path / "reward")
