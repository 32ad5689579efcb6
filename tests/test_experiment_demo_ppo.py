"""The demo's PPO experiments: settings are tried on a validation set that shares no question with
training or the demo's held-out problems, the overrides reach the PPO runs, and the one-batch
policy-gradient probe reports every setting."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))


def test_validation_problems_are_unseen_and_counted():
    import demo_ppo

    from commands.demo import DemoConfig, make_problems

    config = DemoConfig()
    train, heldout = make_problems(config)
    validation = demo_ppo.validation_problems(config, train, heldout, seed=777, count=64)
    assert len(validation) == 64
    questions = [p.question for p in validation]
    assert len(set(questions)) == 64
    assert not set(questions) & ({p.question for p in train} | {p.question for p in heldout})


def test_settings_and_the_starting_policy_override_the_demo_ppo_runs(tmp_path):
    import shutil

    import demo_ppo

    from commands.demo import ASSETS

    policy = shutil.copytree(ASSETS / "policy", tmp_path / "other-policy")
    reward = shutil.copytree(ASSETS / "reward", tmp_path / "other-reward")
    run = tmp_path / "run"
    demo_ppo.main(["--smoke", "--ppo_modes", "dense", "--ppo_seeds", "1", "--validation_seed", "777",
                   "--lr", "3e-5", "--samples_per_prompt", "2", "--batch_size", "2", "--ppo_epochs", "1",
                   "--rollout_temperature", "1.0", "--ptx_coef", "2", "--max_new_tokens", "48", "--workers", "1", "--policy", str(policy),
                   "--reward", str(reward), "--output_dir", str(run)])
    written = json.loads((run / "ppo.json").read_text())
    assert (written["policy"], written["reward"]) == (str(policy), str(reward))
    assert written["settings"] == {"lr": 3e-5, "batch_size": 2, "samples_per_prompt": 2, "ppo_epochs": 1,
                                   "temperature": 1.0, "ptx_coef": 2.0, "max_new_tokens": 48}
    assert written["validation_seed"] == 777
    used = json.loads((run / "ppo" / "dense-seed0" / "ppo_config.json").read_text())
    assert (used["lr"], used["batch_size"], used["samples_per_prompt"], used["ppo_epochs"], used["temperature"],
            used["ptx_coef"], used["max_new_tokens"]) == (3e-5, 2, 2, 1, 1.0, 2.0, 48)
    assert used["n_minibatches"] == 2  # not overridden: the demo's value
    assert (used["policy"], used["prm"]) == (str(policy), str(reward))
    assert (run / "validation_problems.jsonl").exists()


def test_one_batch_probe_reports_every_setting_for_the_policy_given(tmp_path):
    import shutil

    import ppo_one_batch

    from commands.demo import ASSETS

    policy = shutil.copytree(ASSETS / "policy", tmp_path / "other-policy")
    result = ppo_one_batch.main(["--problems", "2", "--samples", "2", "--steps", "1", "--other_problems", "2",
                                 "--policy", str(policy)])
    assert result["policy"] == str(policy)
    assert set(result["settings"]) == set(ppo_one_batch.SETTINGS)
    for row in result["settings"].values():
        assert 0.0 <= row["same"] <= 1.0 and 0.0 <= row["other"] <= 1.0


def test_the_held_out_and_validation_problems_leave_out_what_the_given_policy_was_trained_on(tmp_path, monkeypatch):
    import shutil

    import demo_ppo

    import commands.demo
    from commands.demo import ASSETS
    from tasks.math.synthetic import generate_problems

    # Another SFT run's policy: the 4,000 problems of seed 1, which neither the demo's training
    # problems nor the shipped policy's hold.
    policy = shutil.copytree(ASSETS / "policy", tmp_path / "other-policy")
    sft = json.loads((policy / "sft_config.json").read_text())
    (policy / "sft_config.json").write_text(json.dumps({**sft, "seed": 1}))
    trained_on = {p.question for p in generate_problems(4000, "tiny", seed=1)}

    def no_ppo(config, run, policy_dir, reward_dir, train_file, heldout_file, start, settings, pool):
        return {"outcome": [{"seed": 0, "updates": [0], "accuracy": [start]}]}

    monkeypatch.setattr(commands.demo, "run_ppo", no_ppo)
    for extra, written in (([], "heldout_problems.jsonl"), (["--validation_seed", "777"], "validation_problems.jsonl")):
        run = tmp_path / written
        demo_ppo.main(["--ppo_eval_problems", "64", "--workers", "1", "--policy", str(policy),
                       "--output_dir", str(run), *extra])
        questions = [json.loads(line)["question"] for line in (run / written).read_text().splitlines()]
        assert len(questions) == 64 and not set(questions) & trained_on, written
