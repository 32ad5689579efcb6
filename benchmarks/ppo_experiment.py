"""Dense (PRM step rewards + outcome) vs outcome-only PPO on the synthetic "tiny" task.

1. policy: a "small" (0.8 M) `generation.tiny` model after a short `prm sft` (or `--policy DIR`);
2. PRM: trained with `prm train` on the policy's own samples of training problems, each
   step labelled by the sympy verifier (`verifiers.verify_solution`: steps before the first
   wrong one are correct), plus the task's corrupted reference solutions;
3. PPO from that policy, `--seeds` seeds x {dense, outcome}, identical settings except the
   PRM step rewards; greedy accuracy on held-out problems every `--eval-every` updates: one set
   for every run and the start, sharing no question with the SFT policy's training problems, the
   PRM's data or any seed's PPO training problems (the generator repeats questions across seeds).

Prints a table (mean and spread over seeds), writes a PNG and a JSON:

    python benchmarks/ppo_experiment.py --out runs/ppo_experiment
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def train_policy(out: Path, steps: int) -> Path:
    from prm.sft import SFTConfig, train_sft

    return train_sft(SFTConfig(data="synthetic:tiny", model="tiny:small", output_dir=str(out / "policy"), n_train=4000,
                               max_steps=steps, batch_size=32, lr=3e-3, n_eval=0, save_every=0))


def policy_sample_records(policy_dir: Path, problems: list, samples: int, seed: int) -> list[dict]:
    """Step-labelled records from the policy's own solutions, labelled by the verifier."""
    from generation.policy import HFPolicy
    from tasks.math.prompts import policy_prompt
    from tasks.math.steps import split_steps
    from verifiers import verify_solution

    policy = HFPolicy.from_pretrained(str(policy_dir), device="cpu", temperature=1.0, max_new_tokens=96, seed=seed,
                                      batch_size=64)
    completions = policy.complete([policy_prompt(p.question) for p in problems], samples)
    records = []
    for problem, group in zip(problems, completions):
        for text in group:
            steps = split_steps(text, style="lines")
            if not steps:
                continue
            first_wrong = verify_solution(problem, steps).first_wrong
            labels = [first_wrong < 0 or index < first_wrong for index in range(len(steps))]
            records.append({"prompt": problem.question, "completions": steps, "labels": labels})
    return records


N_TRAIN, HELDOUT_SEED = 2000, 2_000_003  # PPO training problems per seed; the held-out draw's seed


def prm_problems(seed: int) -> tuple[list, list]:
    """The problems of the PRM's data: those the policy samples, those whose corrupted references join."""
    from tasks.math.synthetic import generate_problems

    return generate_problems(400, preset="tiny", seed=seed + 7), generate_problems(800, preset="tiny", seed=seed + 11)


def write_heldout(out: Path, policy_dir: Path, args) -> Path:
    """`args.n_eval` problems whose questions are neither the policy's SFT questions (its
    sft_config.json), the PRM recipe's nor any seed's PPO training questions, in out/heldout.jsonl."""
    from commands.demo import training_questions, unseen_problems, write_problems
    from tasks.math.synthetic import generate_problems

    sampled, references = prm_problems(0)
    taken = set(training_questions(policy_dir)) | {p.question for p in sampled + references}
    for seed in range(args.seeds):
        taken |= {p.question for p in generate_problems(N_TRAIN, preset="tiny", seed=seed)}
    problems = unseen_problems(4 * args.n_eval + 100, "tiny", HELDOUT_SEED, taken)
    if len(problems) < args.n_eval:
        raise RuntimeError(f"only {len(problems)} unseen held-out problems, --n-eval asks for {args.n_eval}")
    return write_problems(problems[: args.n_eval], out / "heldout.jsonl")


def read_heldout(path: Path) -> list:
    from tasks.math.records import read_problems

    return read_problems(path)


def train_prm(out: Path, policy_dir: Path, steps: int, seed: int) -> Path:
    from prm.train import TrainConfig, train
    from tasks.math.synthetic import step_labelled_records

    sampled, references = prm_problems(seed)
    records = policy_sample_records(policy_dir, sampled, samples=4, seed=seed + 7)
    records += step_labelled_records(references, corrupt_fraction=0.5, seed=seed)
    data = out / "prm_data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    positive = sum(all(r["labels"]) for r in records)
    print(f"PRM data: {len(records)} solutions, {positive} fully correct", flush=True)
    train(TrainConfig(data=str(data), model=str(policy_dir), output_dir=str(out / "prm"), max_steps=steps,
                      batch_size=32, lr=1e-3, eval_every=0, progress=False, seed=seed))
    return out / "prm"


def run_ppo(out: Path, policy_dir: Path, prm_dir: Path, mode: str, seed: int, args, heldout: Path) -> list[dict]:
    import torch

    from prm.ppo.train import PPOConfig, train_ppo

    torch.set_num_threads(1)

    run_dir = out / f"{mode}-seed{seed}"
    config = PPOConfig(policy=str(policy_dir), prm=str(prm_dir), mode=mode, data="synthetic:tiny", n_train=N_TRAIN,
                       eval_data=str(heldout), n_eval=args.n_eval, eval_every=args.eval_every, batch_size=args.batch_size,
                       max_new_tokens=80, temperature=1.0, ppo_epochs=4, n_minibatches=2, lr=args.lr,
                       kl_coef=args.kl_coef, step_score_form=args.step_score_form, step_coef=args.step_coef,
                       max_updates=args.updates, save_every=0, output_dir=str(run_dir), seed=seed)
    train_ppo(config)
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def first_update_reaching(curve: list[tuple[int, float]], level: float) -> int | None:
    return next((update for update, accuracy in curve if accuracy >= level - 1e-9), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/ppo_experiment")
    parser.add_argument("--policy", default=None, help="SFT policy dir (default: train one for --sft-steps)")
    parser.add_argument("--prm", default=None, help="PRM dir (default: train one on the policy's samples)")
    parser.add_argument("--sft-steps", type=int, default=500)
    parser.add_argument("--prm-steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=24)
    parser.add_argument("--eval-every", type=int, default=6)
    parser.add_argument("--n-eval", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--kl-coef", type=float, default=0.02)
    parser.add_argument("--step-score-form", default="centred")
    parser.add_argument("--step-coef", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=1, help="PPO runs in parallel (one thread each)")
    parser.add_argument("--json", default=None, help="also write the results here (default: OUT/results.json)")
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    policy_dir = Path(args.policy) if args.policy else train_policy(out, args.sft_steps)
    prm_dir = Path(args.prm) if args.prm else train_prm(out, policy_dir, args.prm_steps, seed=0)
    heldout_file = write_heldout(out, policy_dir, args)

    curves: dict[str, list[list[tuple[int, float]]]] = {"dense": [], "outcome": []}
    jobs = [(mode, seed) for seed in range(args.seeds) for mode in curves]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_ppo, out, policy_dir, prm_dir, mode, seed, args, heldout_file) for mode, seed in jobs]
        for (mode, seed), future in zip(jobs, futures):
            records = future.result()
            curves[mode].append([(r["update"], r["heldout_accuracy"]) for r in records if "heldout_accuracy" in r])
            print(f"{mode} seed {seed}: {curves[mode][-1]}", flush=True)

    from generation.loading import load_policy
    from prm.sft import heldout_accuracy

    model, tokenizer = load_policy(str(policy_dir))
    heldout = read_heldout(heldout_file)
    start_accuracy = heldout_accuracy(model, tokenizer, heldout, temperature=0.0, max_new_tokens=80)

    updates = [u for u, _ in curves["dense"][0]]
    summary = {}
    for mode, runs in curves.items():
        table = np.array([[a for _, a in run] for run in runs])
        summary[mode] = {"updates": updates, "mean": table.mean(0).tolist(), "std": table.std(0).tolist(),
                         "runs": table.tolist()}
    outcome_final = summary["outcome"]["mean"][-1]
    dense_curve = list(zip(updates, summary["dense"]["mean"]))
    reach = first_update_reaching(dense_curve, outcome_final)
    result = {"start_accuracy": start_accuracy, "outcome_final_mean": outcome_final,
              "dense_final_mean": summary["dense"]["mean"][-1], "dense_updates_to_outcome_final": reach,
              "total_updates": args.updates, "ratio": None if reach is None else reach / args.updates,
              "seconds": time.perf_counter() - started, "settings": vars(args), "curves": summary}
    Path(args.json or out / "results.json").write_text(json.dumps(result, indent=2))

    print(f"held-out greedy accuracy (n={len(heldout)}), start {start_accuracy:.3f}; mean ± std over {args.seeds} seeds")
    print(f"{'update':>6} | {'dense':>13} | {'outcome':>13}")
    for index, update in enumerate(updates):
        cells = [f"{summary[m]['mean'][index]:.3f} ± {summary[m]['std'][index]:.3f}" for m in ("dense", "outcome")]
        print(f"{update:>6} | {cells[0]:>13} | {cells[1]:>13}")
    verdict = "never" if reach is None else f"at update {reach} ({reach / args.updates:.2f} of {args.updates})"
    print(f"dense reaches outcome-only's final accuracy {outcome_final:.3f}: {verdict}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for mode, colour in (("dense", "tab:blue"), ("outcome", "tab:orange")):
        mean, std = np.array(summary[mode]["mean"]), np.array(summary[mode]["std"])
        axis.plot([0] + updates, [start_accuracy, *mean], color=colour, label=f"{mode} (mean of {args.seeds})")
        axis.fill_between(updates, mean - std, mean + std, color=colour, alpha=0.2)
    axis.set_xlabel("PPO update")
    axis.set_ylabel("held-out accuracy (greedy)")
    axis.set_title("PPO on synthetic 'tiny': dense PRM rewards vs outcome only")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "ppo_dense_vs_outcome.png", dpi=120)
    print(f"plot: {out / 'ppo_dense_vs_outcome.png'}")


if __name__ == "__main__":
    main()
