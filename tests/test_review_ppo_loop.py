"""Review regressions of `prm ppo`'s loop: what a resume accepts, how many minibatch updates an
epoch makes, and two processes that agree on beta and on when to stop an update's epochs."""

import json
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from prm.ppo.train import PPOConfig, train_ppo

sys.path.insert(0, str(Path(__file__).parent))
from test_multiprocess import run_two_workers  # noqa: E402
from test_ppo_train import AsciiShare, _config, _metrics, workdir  # noqa: E402,F401


def test_resume_refuses_a_checkpoint_once_the_policy_was_retrained_in_place(workdir):
    # The reference and the starting point are read from --policy again on resume: other weights
    # there make another run, as `prm search` / `prm label` / `prm score` already refuse.
    from transformers import AutoModelForCausalLM

    policy = workdir / "policy-retrained"
    shutil.copytree(workdir / "policy", policy)
    common = dict(policy=str(policy), mode="outcome", verifier_coef=0.0, orm_coef=1.0, max_updates=1)
    train_ppo(_config(workdir, "retrained", **common), outcome_scorer=AsciiShare())
    model = AutoModelForCausalLM.from_pretrained(policy)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01)
    model.save_pretrained(policy, safe_serialization=True)
    with pytest.raises(ValueError, match=r"different run \(policy_files: the files model.safetensors differ"):
        train_ppo(_config(workdir, "retrained", **{**common, "max_updates": 2}, resume="latest"),
                  outcome_scorer=AsciiShare())


@pytest.mark.parametrize("prompts, minibatches", [(5, 4), (6, 4), (3, 2)])
def test_every_epoch_makes_n_minibatches_updates(workdir, prompts, minibatches):
    config = _config(workdir, f"minibatches-{prompts}-{minibatches}", mode="outcome", verifier_coef=0.0, orm_coef=1.0,
                     batch_size=prompts, n_minibatches=minibatches, ppo_epochs=2, max_updates=1, save_every=0)
    assert _metrics(train_ppo(config, outcome_scorer=AsciiShare()))[0]["minibatch_updates"] == 2 * minibatches


def test_more_minibatches_than_prompt_groups_is_refused():
    # A minibatch holds whole groups: 1 prompt x 2 samples cannot make 2 minibatches.
    with pytest.raises(ValueError, match="--n_minibatches 2 is more than the 1 prompts"):
        PPOConfig(mode="group", batch_size=1, samples_per_prompt=2, n_minibatches=2)


# --------------------------------------------------------------------------- two processes


WORKER_TIMEOUT = 150


def _worker(rank: int, port: int, options: dict, log: Path) -> None:
    import faulthandler

    faulthandler.dump_traceback_later(WORKER_TIMEOUT - 15, file=open(log / f"stack{rank}.txt", "w"))
    import prm.ppo.train as ppo_train

    # The processes see different responses, so their KLs differ; here rank 0 reads none and
    # rank 1 a large one, so that beta would fall on rank 0 and rise on rank 1, and only rank 1's
    # own reading would pass --target_kl.
    policy_loss = ppo_train.policy_loss

    def skewed_policy_loss(*args, **kwargs):
        loss, stats = policy_loss(*args, **kwargs)
        return loss, {**stats, "approx_kl": stats["approx_kl"] * (1e6 if rank == 1 else 0.0)}

    ppo_train.policy_loss = skewed_policy_loss
    kl_estimate = ppo_train.kl_estimate
    ppo_train.kl_estimate = lambda *args: kl_estimate(*args) * (1e6 if rank == 1 else 0.0)
    update = ppo_train.KLController.update

    def logged_update(self, observed_kl, n):
        update(self, observed_kl, n)
        with open(log / f"beta{rank}.txt", "a") as handle:
            handle.write(f"{self.value!r}\n")

    ppo_train.KLController.update = logged_update
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "ACCELERATE_USE_CPU": "1"})
    train_ppo(PPOConfig(**options), outcome_scorer=AsciiShare())
    with open(log / f"done{rank}.txt", "w") as handle:
        handle.write("ok")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # as tests/test_multiprocess.py: skip torch/Gloo's teardown


def _run_two(tmp_path, options: dict) -> Path:
    log = tmp_path / "log"
    log.mkdir()
    run_two_workers(_worker, (options, log), log, WORKER_TIMEOUT)
    return log


def test_two_processes_share_beta_and_the_early_stop_and_run_group_mode(workdir, tmp_path):
    options = _config(workdir, "unused", mode="group", samples_per_prompt=2, batch_size=2, verifier_coef=0.0,
                      orm_coef=1.0, lr=1e-2, max_updates=3, ppo_epochs=3, n_minibatches=1, save_every=0,
                      kl_coef=0.1, kl_target=0.01, kl_horizon=4, target_kl=1e-3, ptx_coef=0.1, ptx_batch_size=2,
                      disable_tqdm=True)
    options = {**asdict(options), "output_dir": str(tmp_path / "two")}
    log = _run_two(tmp_path, options)
    betas = [(log / f"beta{rank}.txt").read_text().split() for rank in range(2)]
    assert len(betas[0]) == 3 and betas[0] == betas[1]
    logged = [record["kl_coef"] for record in _metrics(tmp_path / "two")]
    assert logged == [float(b) for b in betas[0]]
    # Rank 1's KL stops both processes after the second epoch (the first one's only minibatch
    # has a ratio of exactly 1, so no KL): of 3 epochs, 2 minibatch updates each.
    assert {record["minibatch_updates"] for record in _metrics(tmp_path / "two")} == {2}
    saved = torch.load(tmp_path / "two" / "checkpoints" / "step-3" / "state.pt", weights_only=True)
    assert saved["kl_coef"] == float(betas[1][-1])
    assert json.loads((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[-1])["update"] == 3
