"""PRM training: this toolkit's `prm train` vs TRL 1.13.0's PRMTrainer, side by side.

Same tiny Qwen2 backbone (saved once, loaded by both), same tokenizer, same synthetic data,
batch size, steps, learning-rate schedule, fp32, no gradient checkpointing, one CPU thread
each. The training data is shaped like Math-Shepherd / PRM800K / `prm label` output: several
labelled solutions per question (`--solutions_per_problem`; correct ones and corruptions).
Reported: tokens/s of the training sequences (their non-pad tokens, each sequence counted
whole, so both trainers are measured on the same count) over the training loop (tokenization
and evaluation excluded), the share of those tokens actually computed (our shared rows compute a
prompt and each common step prefix once), padding share, and held-out step
accuracy / AUC computed by the same code (`prm.metrics`) for both. With `--seeds N` every
trainer runs N training seeds (same data and backbone); speeds are averaged and accuracies
given as mean ± standard deviation.

TRL 1.13.0 is the last release with PRMTrainer. It must not enter the project venv; install
it into a separate directory and point --trl_path at it (the TRL side runs in a subprocess
with that directory first on PYTHONPATH; it uses the project's transformers/accelerate):

    pip install --no-deps --target /tmp/trl113-prm trl==1.13.0
    python benchmarks/train.py --trl_path /tmp/trl113-prm --steps 300 --seeds 3 --json bench_train.json

The second table is the experiment: a PRM trained on synthetic correct + corrupted
solutions vs a step-position baseline (each step scored by how often training steps at that
position are correct) on held-out synthetic problems (other seed, training questions left out).

    python benchmarks/train.py --skip_trl --experiment_steps 600
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tables import print_table  # noqa: E402


def synthetic_split(problems: int, seed: int, solutions_per_problem: int = 1, exclude: frozenset[str] = frozenset()) -> list[dict]:
    """`solutions_per_problem` labelled solutions of each of `problems` problems whose question is
    not in `exclude`, each one corrupted with probability 1/2 (independent draws, so a problem may
    get the correct solution twice)."""
    from tasks.math.synthetic import generate_problems, step_labelled_records

    generated = generate_problems(problems + len(exclude), "tiny", seed=seed)

    def labelled(part: list) -> list[tuple]:
        draws = [step_labelled_records(part, corrupt_fraction=0.5, seed=seed * 1000 + k)
                 for k in range(solutions_per_problem)]
        return [same_problem for same_problem in zip(*draws) if same_problem[0]["prompt"] not in exclude]

    # Other seeds repeat some questions (the generator draws independently): those are skipped and
    # made up from further problems, labelled apart, so that the first `problems` keep their draws.
    kept = labelled(generated[:problems])
    kept += labelled(generated[problems:])[: problems - len(kept)]
    if len(kept) < problems:
        raise RuntimeError(f"only {len(kept)} problems of seed {seed} outside the excluded questions")
    return [{"prompt": r["prompt"], "completions": r["completions"], "labels": r["labels"]}
            for same_problem in kept for r in same_problem]


def heldout_split(problems: int, seed: int, train_records: list[dict]) -> list[dict]:
    """One labelled solution of each of `problems` problems of seed `seed + 1000` that are not training problems."""
    return synthetic_split(problems, seed + 1000, exclude=frozenset(r["prompt"] for r in train_records))


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def save_backbone(directory: Path, records: list[dict], size: str, seed: int) -> str:
    from generation.tiny import save_tiny_causal_lm

    texts = [r["prompt"] for r in records] + [s for r in records for s in r["completions"]]
    save_tiny_causal_lm(directory, texts, size=size, seed=seed)
    return str(directory)


# ------------------------------------------------------------------------------------------ TRL side
def trl_worker(spec_path: str) -> None:
    """Runs inside the subprocess that has TRL on its path; writes results JSON."""
    import torch

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    import trl
    from datasets import Dataset
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    from trl.experimental.prm import PRMConfig, PRMTrainer

    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForTokenClassification.from_pretrained(spec["model"], num_labels=2)
    train_records = [json.loads(line) for line in Path(spec["train"]).read_text().splitlines()]
    eval_records = [json.loads(line) for line in Path(spec["eval"]).read_text().splitlines()]
    args = PRMConfig(
        output_dir=spec["output_dir"], per_device_train_batch_size=spec["batch_size"], max_steps=spec["steps"],
        learning_rate=spec["lr"], lr_scheduler_type="cosine", warmup_steps=spec["warmup_steps"], weight_decay=0.0,
        max_grad_norm=1.0, logging_steps=10, report_to="none", save_strategy="no", max_length=spec["max_length"],
        step_separator="\n", seed=spec["seed"], dataloader_num_workers=0, use_cpu=True, bf16=False,
        gradient_checkpointing=False, disable_tqdm=True,
    )
    trainer = PRMTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(train_records))
    counts = {"tokens": 0, "padded": 0}
    collate = trainer.data_collator

    def counting_collator(features):
        batch = collate(features)
        counts["tokens"] += int(batch["attention_mask"].sum())
        counts["padded"] += batch["attention_mask"].numel()
        return batch

    trainer.data_collator = counting_collator
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start

    model.eval()
    probabilities, labels = [], []
    with torch.no_grad():
        for record in eval_records:
            row = PRMTrainer.tokenize_row(record, tokenizer, "\n", spec["max_length"], None, False, True)
            logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0]
            positions = [i for i, label in enumerate(row["labels"]) if label != -100]
            probabilities.append(torch.softmax(logits[positions].float(), -1)[:, 1].tolist())
            labels.append([row["labels"][i] for i in positions])
    Path(spec["result"]).write_text(json.dumps({
        "version": trl.__version__, "seconds": seconds, "tokens": counts["tokens"], "padded": counts["padded"],
        "probabilities": probabilities, "labels": labels,
    }))


def run_trl(trl_path: str, spec: dict, workdir: Path) -> dict:
    spec = {**spec, "output_dir": str(workdir / "trl_out"), "result": str(workdir / "trl_result.json")}
    spec_path = workdir / "trl_spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([trl_path, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": str(spec["threads"])}
    done = subprocess.run([sys.executable, __file__, "--_trl_worker", str(spec_path)], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"TRL run failed:\n{done.stderr[-4000:]}")
    return json.loads(Path(spec["result"]).read_text())


# ------------------------------------------------------------------------------------------ our side
def run_ours(spec: dict, workdir: Path, **overrides) -> tuple[dict, dict]:
    import torch

    from prm.train import TrainConfig, train

    torch.set_num_threads(spec["threads"])
    config = TrainConfig(
        data=spec["train"], eval_data=spec["eval"], model=spec["model"], output_dir=str(workdir / "ours"),
        num_labels=2, batch_size=spec["batch_size"], max_steps=spec["steps"], lr=spec["lr"],
        warmup_steps=spec["warmup_steps"], lr_scheduler="cosine", max_length=spec["max_length"], eval_every=0,
        log_every=10, seed=spec["seed"], progress=False, **overrides,
    )
    run_dir = train(config)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = next(row for row in rows if "train_tokens_per_s" in row)
    return summary, json.loads((run_dir / "eval_results.json").read_text())


def position_baseline(train_records: list[dict], eval_records: list[dict]) -> tuple[list[list[float]], list[list[float]]]:
    """Score step i by the share of correct training steps at position i."""
    totals: dict[int, list[int]] = {}
    for record in train_records:
        for index, label in enumerate(record["labels"]):
            totals.setdefault(index, [0, 0])
            totals[index][0] += bool(label)
            totals[index][1] += 1
    deepest = max(totals)

    def rate(index: int) -> float:
        correct, seen = totals[min(index, deepest)]
        return correct / seen

    scores = [[rate(i) for i in range(len(r["labels"]))] for r in eval_records]
    return scores, [[float(label) for label in r["labels"]] for r in eval_records]


def step_metrics(probabilities: list[list[float]], labels: list[list[float]]) -> dict:
    from prm.metrics import processbench_f1, step_accuracy, step_auc

    flat_p = [p for row in probabilities for p in row]
    flat_y = [y for row in labels for y in row]
    return {"step_accuracy": step_accuracy(flat_p, flat_y), "step_auc": step_auc(flat_p, flat_y),
            "processbench_f1": processbench_f1(probabilities, labels)["f1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trl_path", default="/tmp/trl113-prm", help="directory holding trl==1.13.0 (pip --target)")
    parser.add_argument("--skip_trl", action="store_true")
    parser.add_argument("--size", default="small", help="tiny model size (generation.tiny.SIZES)")
    parser.add_argument("--problems", type=int, default=300, help="synthetic training problems")
    parser.add_argument("--solutions_per_problem", type=int, default=4, help="labelled solutions of each training problem")
    parser.add_argument("--eval_problems", type=int, default=300, help="held-out problems (one solution each)")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps of the side-by-side run")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--experiment_steps", type=int, default=0, help="steps of the PRM-vs-baseline run (0 = skip)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the backbone and the first training run")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per trainer (seed, seed + 1, ...)")
    parser.add_argument("--json", help="write all results to this path")
    parser.add_argument("--_trl_worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._trl_worker:
        trl_worker(args._trl_worker)
        return

    results: dict = {"settings": {k: v for k, v in vars(args).items() if not k.startswith("_")}}
    with tempfile.TemporaryDirectory(prefix="prm-bench-train-") as tmp:
        workdir = Path(tmp)
        train_records = synthetic_split(args.problems, args.seed, args.solutions_per_problem)
        eval_records = heldout_split(args.eval_problems, args.seed, train_records)
        spec = {
            "model": save_backbone(workdir / "backbone", train_records, args.size, args.seed),
            "train": write_jsonl(workdir / "train.jsonl", train_records),
            "eval": write_jsonl(workdir / "eval.jsonl", eval_records),
            "batch_size": args.batch_size, "steps": args.steps, "lr": args.lr, "warmup_steps": 10,
            "max_length": 512, "seed": args.seed, "threads": args.threads,
        }
        trainers = [("prm-toolkit (default)", {}),
                    ("prm-toolkit, --solutions_per_prompt 1", {"solutions_per_prompt": 1})]
        runs: dict[str, list[dict]] = {}
        for seed in range(args.seed, args.seed + args.seeds):
            for index, (name, overrides) in enumerate(trainers):
                summary, evaluation = run_ours({**spec, "seed": seed}, workdir / f"ours{index}-seed{seed}", **overrides)
                runs.setdefault(name, []).append({
                    "seed": seed, "tokens_per_s": summary["train_tokens_per_s"],
                    "computed": 1 - summary["prompt_sharing_saving"], "padding": summary["padding_fraction"],
                    "step_accuracy": evaluation["step_accuracy"], "step_auc": evaluation["step_auc"]})
            if not args.skip_trl:
                trl = run_trl(args.trl_path, {**spec, "seed": seed}, workdir)
                trl_eval = step_metrics(trl["probabilities"], [[float(y) for y in row] for row in trl["labels"]])
                runs.setdefault(f"TRL {trl['version']} PRMTrainer", []).append({
                    "seed": seed, "tokens_per_s": trl["tokens"] / trl["seconds"], "computed": 1.0,
                    "padding": 1 - trl["tokens"] / trl["padded"], "step_accuracy": trl_eval["step_accuracy"],
                    "step_auc": trl_eval["step_auc"]})
        names = list(runs)
        reference = names[-1] if names[-1].startswith("TRL") else names[0]

        def spread(name: str, key: str) -> str:
            values = [run[key] for run in runs[name]]
            return f"{statistics.mean(values):.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")

        speed = {name: statistics.mean(run["tokens_per_s"] for run in runs[name]) for name in names}
        print_table(
            f"PRM training: {args.size} model, batch {args.batch_size}, {args.steps} steps, {args.threads} thread(s), "
            f"{len(train_records)} solutions of {args.problems} problems, {args.seeds} seed(s); "
            f"held-out: {len(eval_records)} solutions of other problems",
            ["trainer", "sequence tok/s", f"vs {reference.split(' PRM')[0]}", "computed", "padding", "step acc",
             "step AUC"],
            [[name, f"{speed[name]:,.0f}", f"{speed[name] / speed[reference]:.2f}x",
              f"{statistics.mean(run['computed'] for run in runs[name]):.0%}",
              f"{statistics.mean(run['padding'] for run in runs[name]):.1%}",
              spread(name, "step_accuracy"), spread(name, "step_auc")] for name in names])
        results["side_by_side"] = runs

        if args.experiment_steps:
            _, prm_eval = run_ours({**spec, "steps": args.experiment_steps}, workdir / "experiment")
            baseline = step_metrics(*position_baseline(train_records, eval_records))
            print(f"\nSynthetic held-out ({len(eval_records)} solutions, seed {args.seed + 1000}); "
                  f"PRM trained {args.experiment_steps} steps")
            print(f"{'scorer':<24} {'step AUC':>9} {'step acc':>9} {'PB F1':>7}")
            print(f"{'PRM (prm train)':<24} {prm_eval['step_auc']:>9.3f} {prm_eval['step_accuracy']:>9.3f} "
                  f"{prm_eval['processbench_f1']:>7.3f}")
            print(f"{'step-position baseline':<24} {baseline['step_auc']:>9.3f} {baseline['step_accuracy']:>9.3f} "
                  f"{baseline['processbench_f1']:>7.3f}")
            results["experiment"] = {"prm": prm_eval, "position_baseline": baseline}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
