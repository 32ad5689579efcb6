"""Wall time per PPO update: `prm ppo` vs TRL's experimental PPOTrainer.

Same policy (a fresh `generation.tiny` "base" model, 4.7 M parameters), same batch (8 prompts of
the synthetic task), same response length (32 tokens: a fresh model almost never stops
early, and TRL runs without a stop token), 4 PPO epochs, one minibatch, a reward model of
the policy's size. TRL scores whole responses with a sequence-classification reward model
and trains a separate value model; `prm ppo` scores every step with a PRM (`prm.load`) and
is timed with its default value head and with a separate critic (TRL's layout).

TRL is not a dependency: install it apart from the project's environment, e.g.

    pip install --target /tmp/trl-pkgs --no-deps trl==1.12.0
    python benchmarks/ppo.py --trl-path /tmp/trl-pkgs --json ppo_bench.json

The TRL part runs in a subprocess with `--trl-path` on its PYTHONPATH. One thread each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH, RESPONSE_LENGTH, EPOCHS, SIZE = 8, 32, 4, "base"


def build_models(root: Path) -> tuple[Path, Path, list[str]]:
    """A policy dir and a PRM dir of the same size, plus the prompt texts."""
    from prm.modeling import RewardModel
    from generation.tiny import save_tiny_causal_lm
    from tasks.math.prompts import format_solution, policy_prompt
    from tasks.math.synthetic import generate_problems

    problems = generate_problems(200, preset="tiny", seed=0)
    texts = [policy_prompt(p.question) + format_solution(list(p.steps)) for p in problems]
    policy_dir = save_tiny_causal_lm(root / "policy", texts, size=SIZE, seed=0)
    prm_dir = root / "prm"
    reward_model = RewardModel.from_backbone(str(policy_dir))
    reward_model.save_pretrained(prm_dir)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(policy_dir).save_pretrained(prm_dir)
    return policy_dir, prm_dir, [policy_prompt(p.question) for p in problems]


def time_ours(root: Path, policy_dir: Path, prm_dir: Path, updates: int, critic: str) -> list[float]:
    import torch

    from prm.ppo.train import PPOConfig, train_ppo

    torch.set_num_threads(1)
    out = root / f"ours-{critic}"
    config = PPOConfig(policy=str(policy_dir), prm=str(prm_dir), mode="dense", data="synthetic:tiny", n_train=200,
                       n_eval=0, batch_size=BATCH, max_new_tokens=RESPONSE_LENGTH, ppo_epochs=EPOCHS, n_minibatches=1,
                       max_updates=updates + 1, save_every=0, output_dir=str(out), critic=critic, temperature=1.0)
    train_ppo(config)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["seconds"] for r in records[1:]]  # the first update warms up


def time_trl(root: Path, policy_dir: Path, prompts: list[str], updates: int) -> list[float]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl.experimental.ppo import PPOConfig as TRLConfig
    from trl.experimental.ppo import PPOTrainer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    tokenizer.padding_side = "left"
    policy = AutoModelForCausalLM.from_pretrained(policy_dir)
    reference = AutoModelForCausalLM.from_pretrained(policy_dir)
    reward = AutoModelForSequenceClassification.from_pretrained(policy_dir, num_labels=1)
    value = AutoModelForSequenceClassification.from_pretrained(policy_dir, num_labels=1)
    dataset = Dataset.from_dict({"input_ids": [tokenizer(p, add_special_tokens=False).input_ids for p in prompts]})
    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    args = TRLConfig(output_dir=str(root / "trl"), per_device_train_batch_size=BATCH, gradient_accumulation_steps=1,
                     num_mini_batches=1, num_ppo_epochs=EPOCHS, response_length=RESPONSE_LENGTH,
                     total_episodes=BATCH * (updates + 1), stop_token=None, temperature=1.0,
                     num_sample_generations=0, report_to=[], save_strategy="no", logging_steps=1000,
                     use_cpu=True, seed=0, local_rollout_forward_batch_size=BATCH)
    trainer = PPOTrainer(args=args, processing_class=tokenizer, model=policy, ref_model=reference,
                         reward_model=reward, value_model=value, train_dataset=dataset, callbacks=[Stamp()])
    started = time.perf_counter()
    trainer.train()
    stamps.insert(0, started)
    return [b - a for a, b in zip(stamps, stamps[1:])][1:]


def summary(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "mean_s": statistics.fmean(times), "updates": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=5, help="timed updates (after one warm-up)")
    parser.add_argument("--trl-path", default=None, help="directory holding the trl package (pip install --target ...)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--only-trl", default=None, help=argparse.SUPPRESS)  # the subprocess: workdir
    args = parser.parse_args()

    if args.only_trl:
        root = Path(args.only_trl)
        prompts = json.loads((root / "prompts.json").read_text())
        print(json.dumps(time_trl(root, root / "policy", prompts, args.updates)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        policy_dir, prm_dir, prompts = build_models(root)
        (root / "prompts.json").write_text(json.dumps(prompts))
        results = {
            "prm ppo (value head)": summary(time_ours(root, policy_dir, prm_dir, args.updates, "head")),
            "prm ppo (separate critic)": summary(time_ours(root, policy_dir, prm_dir, args.updates, "separate")),
        }
        if args.trl_path:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([args.trl_path, os.environ.get("PYTHONPATH", "")])}
            completed = subprocess.run([sys.executable, __file__, "--only-trl", str(root), "--updates", str(args.updates)],
                                       env=env, capture_output=True, text=True)
            if completed.returncode:
                print(completed.stderr[-3000:], file=sys.stderr)
                results["trl PPOTrainer"] = {"error": completed.stderr.strip().splitlines()[-1]}
            else:
                results["trl PPOTrainer"] = summary(json.loads(completed.stdout.strip().splitlines()[-1]))

    trl = results.get("trl PPOTrainer", {}).get("median_s")
    print(f"PPO update, {SIZE} policy (4.7 M), batch {BATCH}, {RESPONSE_LENGTH}-token responses, {EPOCHS} epochs, 1 thread")
    print(f"{'trainer':<28} {'median s/update':>16} {'mean':>8} {'vs TRL':>8}")
    for name, row in results.items():
        if "error" in row:
            print(f"{name:<28} error: {row['error']}")
            continue
        ratio = f"{row['median_s'] / trl:.2f}x" if trl else "-"
        print(f"{name:<28} {row['median_s']:>16.3f} {row['mean_s']:>8.3f} {ratio:>8}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
