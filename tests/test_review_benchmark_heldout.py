"""Held-out problems of the benchmark experiments share no question with what the measured models
were trained on (the synthetic generator repeats questions across seeds)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return module


def questions(problems) -> set[str]:
    return {p.question for p in problems}


def test_ppo_experiment_evaluates_every_seed_on_one_set_disjoint_from_all_training(tmp_path, monkeypatch):
    from prm.ppo import train as ppo_train
    from prm.ppo.train import load_problems
    from tasks.math.synthetic import generate_problems

    bench = load("ppo_experiment")
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    # What `prm sft` records; the held-out problems must leave its training questions out.
    (policy_dir / "sft_config.json").write_text(json.dumps({"data": "synthetic:tiny", "n_train": 4000, "seed": 0}))
    args = argparse.Namespace(n_eval=100, eval_every=6, batch_size=32, lr=1e-4, kl_coef=0.02,
                              step_score_form="centred", step_coef=0.5, updates=1, seeds=3)
    configs = []

    def fake_train_ppo(config):
        configs.append(config)
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(config.output_dir) / "metrics.jsonl").write_text("")

    monkeypatch.setattr(ppo_train, "train_ppo", fake_train_ppo)
    heldout_file = bench.write_heldout(tmp_path, policy_dir, args)
    for seed in range(args.seeds):
        bench.run_ppo(tmp_path, policy_dir, tmp_path / "prm", "dense", seed, args, heldout_file)

    sft = questions(generate_problems(4000, "tiny", seed=0))
    prm_data = questions(generate_problems(400, "tiny", seed=7)) | questions(generate_problems(800, "tiny", seed=11))
    evaluated = [load_problems(config) for config in configs]
    first = [p.question for p in evaluated[0][1]]
    assert len(first) == args.n_eval
    for train, heldout in evaluated:
        assert [p.question for p in heldout] == first  # one set for every seed (and the start accuracy)
        assert not questions(heldout) & (sft | prm_data | questions(train))
    assert [p.question for p in bench.read_heldout(heldout_file)] == first


def test_train_benchmark_heldout_solutions_are_of_other_problems():
    bench = load("train")
    train = bench.synthetic_split(300, 0, 2)
    heldout = bench.heldout_split(300, 0, train)
    assert len(heldout) == 300
    assert not {r["prompt"] for r in heldout} & {r["prompt"] for r in train}
