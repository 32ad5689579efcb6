"""Benchmark PRM scoring: side by side in one run, same tiny model ("small"), data and batch.

1. One pass vs the per-prefix loop on 8-step solutions (goal >= 8x steps/s). The per-prefix
   loop runs one forward pass per step prefix and reads the prefix's last step, as search code
   and the RLHFlow reference do; it is timed unbatched (one prefix per forward, as that code
   does) and batched (the prefixes of `--batch` solutions per forward).
2. Shared-prompt best-of-N vs plain batching at N = 16, prompt about as long as each completion
   (goal >= 1.3x): `score_best_of_n` runs the prompt once and shares its KV cache;
   `score_steps_batch` runs prompt + completion for each of the N.

Scores of the compared methods are checked equal before timing. One CPU thread by default.

    python benchmarks/scoring.py [--solutions 32] [--problems 8] [--batch 16] [--json scoring.json]

Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tables import print_table  # noqa: E402

import torch  # noqa: E402

from prm.modeling import RewardModel, RewardSettings  # noqa: E402
from prm.scoring import RewardScorer  # noqa: E402
from generation.tiny import build_tiny_causal_lm, train_tokenizer  # noqa: E402


NAMES = ["Sam", "Ana", "Li", "Omar", "Kim"]
THINGS = ["coins", "apples", "marbles", "stickers", "cards"]
SENTENCES = {"+": "Then {name} gets {operand} more.", "-": "Then {name} gives away {operand}.",
             "*": "Then the pile grows {operand} times bigger."}


def make_solution(rng: random.Random, n_steps: int) -> tuple[str, list[str]]:
    """A word problem with one sentence per operation, and its n-step solution (answer last)."""
    name, thing, value = rng.choice(NAMES), rng.choice(THINGS), rng.randint(2, 50)
    sentences = [f"{name} has {value} {thing}."]
    steps = []
    for _ in range(n_steps - 1):
        operand, op = rng.randint(2, 30), rng.choice("+-*")
        result = value + operand if op == "+" else value - operand if op == "-" else value * operand
        sentences.append(SENTENCES[op].format(name=name, operand=operand))
        steps.append(f"{value} {op} {operand} = {result}")
        value = result
    steps.append(f"The answer is {value}")
    question = f"Question: {' '.join(sentences)} How many {thing} are there now?\nSolution:\n"
    return question, steps


def padded_prompt(rng: random.Random, question: str, target_tokens: int, tokenizer) -> str:
    """`question` with extra context sentences in front, to about `target_tokens` tokens."""
    body = question.removeprefix("Question: ")
    context = ""
    while len(tokenizer.encode(f"Question: {context}{body}")) < target_tokens - 8:
        context += f"{rng.choice(NAMES)} likes {rng.choice(THINGS)}. "
    return f"Question: {context}{body}"


def compare(scorer: RewardScorer, methods: dict, repeats: int, n_steps: int) -> dict:
    """Time each method `repeats` times, interleaved round by round so that load on a shared
    machine hits all of them alike; keep each method's best time. Scores must agree."""
    reference = None
    results = {}
    for name, function in methods.items():  # warm-up, token count, equality check
        before = scorer.forward_tokens
        scores = function()
        reference = reference or scores
        if not close(scores, reference):
            raise AssertionError(f"{name}: scores differ from those of {next(iter(methods))}")
        results[name] = {"seconds": float("inf"), "forward_tokens": scorer.forward_tokens - before}
    for _ in range(repeats):
        for name, function in methods.items():
            start = time.perf_counter()
            function()
            results[name]["seconds"] = min(results[name]["seconds"], time.perf_counter() - start)
    for result in results.values():
        result["steps_per_s"] = n_steps / result["seconds"]
    return results


def close(a: list[list[float]], b: list[list[float]], tolerance: float = 1e-4) -> bool:
    return all(len(x) == len(y) and all(abs(p - q) <= tolerance for p, q in zip(x, y)) for x, y in zip(a, b))


def bench_one_pass(scorer: RewardScorer, n_solutions: int, batch: int, repeats: int, seed: int) -> dict:
    rng = random.Random(seed)
    data = [make_solution(rng, 8) for _ in range(n_solutions)]
    prompts, solutions = [q for q, _ in data], [s for _, s in data]
    n_steps = sum(len(s) for s in solutions)

    def one_pass():
        return scorer.score_steps_batch(prompts, solutions, batch_size=batch)

    def per_prefix_unbatched():
        return [[scorer.score_steps(q, s[: k + 1])[-1] for k in range(len(s))] for q, s in data]

    def per_prefix_batched():
        # Prefix k of every solution in a batch: one forward pass per step prefix, batched.
        rows = [(q, s[: k + 1]) for q, s in data for k in range(len(s))]
        scores = scorer.score_steps_batch([q for q, _ in rows], [p for _, p in rows], batch_size=batch)
        flat = iter(row[-1] for row in scores)
        return [[next(flat) for _ in s] for s in solutions]

    results = compare(scorer, {"one pass": one_pass, "per-prefix loop, unbatched": per_prefix_unbatched,
                               "per-prefix loop, batched": per_prefix_batched}, repeats, n_steps)
    one = results["one pass"]["steps_per_s"]
    rows = [[name, f"{r['seconds']:.3f}", f"{r['steps_per_s']:.0f}", r["forward_tokens"],
             f"{one / r['steps_per_s']:.1f}x"] for name, r in results.items()]
    prompt_tokens = sum(len(scorer.encoder.encode(q, []).input_ids) for q in prompts) / n_solutions
    step_tokens = (results["one pass"]["forward_tokens"] / n_solutions - prompt_tokens) / 8
    print_table(f"One pass vs per-prefix loop ({n_solutions} solutions x 8 steps, prompt ~{prompt_tokens:.0f} tokens, "
                f"step ~{step_tokens:.0f} tokens, batch {batch})",
                ["method", "seconds", "steps/s", "tokens run", "one-pass speed-up"], rows)
    return {"solutions": n_solutions, "steps": n_steps, "batch": batch, "prompt_tokens": prompt_tokens,
            "step_tokens": step_tokens, "methods": results,
            "speedup_vs_unbatched": one / results["per-prefix loop, unbatched"]["steps_per_s"],
            "speedup_vs_batched": one / results["per-prefix loop, batched"]["steps_per_s"]}


def bench_best_of_n(scorer: RewardScorer, n_problems: int, n: int, batch: int, repeats: int, seed: int) -> dict:
    rng = random.Random(seed + 1)
    problems = []
    for _ in range(n_problems):
        question, _ = make_solution(rng, 4)
        solutions = [make_solution(rng, rng.randint(6, 8))[1] for _ in range(n)]
        completion_tokens = sum(len(scorer.encoder.encode("", s).input_ids) for s in solutions) // n
        problems.append((padded_prompt(rng, question, completion_tokens, scorer.tokenizer), solutions))
    prompt_tokens = sum(len(scorer.encoder.encode(p, []).input_ids) for p, _ in problems) / n_problems
    completion_tokens = sum(len(scorer.encoder.encode("", s).input_ids) for _, sols in problems for s in sols) / (
        n_problems * n)
    n_steps = sum(len(s) for _, sols in problems for s in sols)

    def shared():
        return [row for p, sols in problems for row in scorer.score_best_of_n(p, sols, batch_size=batch)]

    def plain():
        return [row for p, sols in problems for row in scorer.score_steps_batch([p] * n, sols, batch_size=batch)]

    results = compare(scorer, {"shared prompt (KV cache)": shared, "plain batching": plain}, repeats, n_steps)
    speedup = results["shared prompt (KV cache)"]["steps_per_s"] / results["plain batching"]["steps_per_s"]
    rows = [[name, f"{r['seconds']:.3f}", f"{r['steps_per_s']:.0f}", r["forward_tokens"]] for name, r in results.items()]
    print_table(f"Best-of-{n}: shared prompt vs plain batching ({n_problems} problems, prompt ~{prompt_tokens:.0f} "
                f"tokens, completion ~{completion_tokens:.0f} tokens, batch {batch}); speed-up {speedup:.2f}x",
                ["method", "seconds", "steps/s", "tokens run"], rows)
    return {"problems": n_problems, "n": n, "batch": batch, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "methods": results, "speedup": speedup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--solutions", type=int, default=32, help="8-step solutions in the one-pass comparison")
    parser.add_argument("--problems", type=int, default=8, help="problems in the best-of-N comparison")
    parser.add_argument("--n", type=int, default=16, help="N of best-of-N")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", default="small", help="generation.tiny size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    texts = [q + "\n".join(s) for q, s in (make_solution(rng, 8) for _ in range(200))]
    tokenizer = train_tokenizer(texts, vocab_size=512)
    backbone = build_tiny_causal_lm(tokenizer, size=args.size, seed=args.seed, max_positions=1024)
    model = RewardModel.from_backbone(backbone, RewardSettings(), tokenizer=tokenizer).to(args.device)
    scorer = RewardScorer(model.eval(), tokenizer, batch_size=args.batch)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: generation.tiny {args.size!r} ({parameters / 1e6:.2f} M parameters), device {args.device}, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, {platform.processor() or platform.machine()}")

    results = {
        "model_size": args.size, "parameters": parameters, "device": args.device, "threads": torch.get_num_threads(),
        "one_pass": bench_one_pass(scorer, args.solutions, args.batch, args.repeats, args.seed),
        "best_of_n": bench_best_of_n(scorer, args.problems, args.n, args.batch, args.repeats, args.seed),
    }
    print(f"\none pass vs per-prefix loop: {results['one_pass']['speedup_vs_unbatched']:.1f}x (unbatched), "
          f"{results['one_pass']['speedup_vs_batched']:.1f}x (batched); goal >= 8x")
    print(f"shared-prompt best-of-{args.n} vs plain batching: {results['best_of_n']['speedup']:.2f}x; goal >= 1.3x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
