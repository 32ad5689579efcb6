"""Cost of step-level search: KV-cache reuse vs re-encoding, and scaling with N.

1. Beam search forward tokens per useful token, for the policy and for the PRM, with our
   cache reuse (policy states keep their KV cache; the PRM scores only the new step from
   its cached prefix) against a baseline that re-encodes every prefix each round (policy
   states without caches; a PRM with only `score_steps`, re-scoring the whole path).
   Useful tokens: the prompt once plus every sampled token (policy), or the PRM prompt
   once plus every scored step's tokens (PRM). Goal <= 1.1 (the limit is 1.0).
2. Wall time and tokens for best-of-N and beam search (beam_width 4) at N = 4, 8, 16, 32:
   seconds per 1000 generated tokens should stay flat (cost linear in tokens generated).

Tiny random-weight models from `generation.tiny` (weights do not matter for cost).

    python benchmarks/search.py [--json results.json] [--problems 4] [--size small]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# This script shares its name with the `search` package: import the package, not itself.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import torch  # noqa: E402

from prm.modeling import RewardModel  # noqa: E402
from prm.scoring import RewardScorer  # noqa: E402
from generation.tiny import build_tiny_causal_lm, train_tokenizer  # noqa: E402
from search.beam import BeamConfig, beam_search, best_of_n_search  # noqa: E402
from generation.policy import HFPolicy, PolicyState  # noqa: E402
from tasks.math.prompts import format_solution, policy_prompt  # noqa: E402
from tasks.math.synthetic import generate_problems  # noqa: E402


class ReencodingPolicy(HFPolicy):
    """Baseline: states forget their KV cache, so every round re-encodes each whole prefix."""

    def expand(self, states, k, **kwargs):
        bare = [PolicyState(list(s.token_ids), s.text, None, s.finished) for s in states]
        return super().expand(bare, k, **kwargs)


class RescoringScorer:
    """Baseline: a PRM seen only through `score_steps`, so each round re-scores whole paths."""

    def __init__(self, scorer: RewardScorer):
        self.scorer = scorer

    def score_steps(self, prompt, steps):
        return self.scorer.score_steps(prompt, steps)

    @property
    def forward_tokens(self):
        return self.scorer.forward_tokens


class RecordingScorer:
    """Wraps the incremental PRM and records the prompt and every step it is asked to score."""

    def __init__(self, scorer):
        self.scorer, self.prompts, self.steps = scorer, [], []

    def start(self, prompt):
        self.prompts.append(prompt)
        return self.scorer.start(prompt)

    def extend(self, states, new_steps):
        self.steps += list(new_steps)
        return self.scorer.extend(states, new_steps)

    @property
    def forward_tokens(self):
        return self.scorer.forward_tokens


def build_models(size: str, seed: int = 0):
    problems = generate_problems(200, "tiny", seed=1)
    texts = [policy_prompt(p.question) + format_solution(p.steps) for p in problems]
    tokenizer = train_tokenizer(texts, vocab_size=512)
    policy_model = build_tiny_causal_lm(tokenizer, size, seed=seed, max_positions=2048)
    prm_model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, size, seed=seed + 1, max_positions=2048),
                                          tokenizer=tokenizer)
    return tokenizer, policy_model, prm_model


def reuse_vs_reencoding(tokenizer, policy_model, prm_model, questions, config: BeamConfig, step_tokens: int):
    rows = []
    for name, policy_class, incremental in (("cache reuse (ours)", HFPolicy, True),
                                            ("re-encode each prefix", ReencodingPolicy, False)):
        policy = policy_class(policy_model, tokenizer, temperature=config.temperature, max_step_tokens=step_tokens)
        prm = RewardScorer(prm_model, tokenizer)
        recorder = RecordingScorer(prm)
        scorer = recorder if incremental else RescoringScorer(prm)
        policy_useful = 0
        generated = policy_forward = prm_forward = 0
        started = time.perf_counter()
        for question in questions:
            result = beam_search(question, policy, scorer, config)
            counters = result.counters
            generated += counters.policy_generated_tokens
            policy_forward += counters.policy_forward_tokens
            prm_forward += counters.prm_forward_tokens
            policy_useful += len(policy.start([policy_prompt(question)])[0].token_ids) + counters.policy_generated_tokens
        seconds = time.perf_counter() - started
        if incremental:
            # PRM useful tokens: each prompt and each scored step (with its separator) once;
            # both variants score the same steps (same seeds, same numbers).
            prm_useful = sum(len(prm.encoder.encode(p, []).input_ids) for p in recorder.prompts)
            prm_useful += sum(len(tokenizer.encode(step + prm.settings.separator)) for step in recorder.steps)
        rows.append({"variant": name, "policy_generated": generated, "policy_forward": policy_forward,
                     "policy_useful": policy_useful, "prm_forward": prm_forward, "seconds": seconds})
    for row in rows:
        row["prm_useful"] = prm_useful
        row["policy_forward_per_useful"] = row["policy_forward"] / row["policy_useful"]
        row["prm_forward_per_useful"] = row["prm_forward"] / row["prm_useful"]
    return rows


def scaling(tokenizer, policy_model, prm_model, questions, step_tokens: int, ns=(4, 8, 16, 32)):
    rows = []
    for method_name, method in (("best_of_n", best_of_n_search), ("beam", beam_search)):
        for n in ns:
            policy = HFPolicy(policy_model, tokenizer, temperature=1.0, max_step_tokens=step_tokens,
                              max_new_tokens=step_tokens * 6, batch_size=32)
            prm = RewardScorer(prm_model, tokenizer)
            config = BeamConfig(width=n, beam_width=min(4, n), max_steps=6, temperature=1.0)
            generated = prm_forward = policy_forward = 0
            started = time.perf_counter()
            for question in questions:
                counters = method(question, policy, prm, config).counters
                generated += counters.policy_generated_tokens
                policy_forward += counters.policy_forward_tokens
                prm_forward += counters.prm_forward_tokens
            seconds = time.perf_counter() - started
            rows.append({"method": method_name, "N": n, "seconds": seconds, "policy_generated": generated,
                         "policy_forward": policy_forward, "prm_forward": prm_forward,
                         "seconds_per_1k_generated": 1000 * seconds / max(generated, 1)})
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--size", default="small", help="generation.tiny size of policy and PRM")
    parser.add_argument("--max_steps", type=int, default=10)
    parser.add_argument("--step_tokens", type=int, default=12, help="max tokens per step")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    tokenizer, policy_model, prm_model = build_models(args.size)
    questions = [p.question for p in generate_problems(args.problems, "tiny", seed=7)]
    config = BeamConfig(width=8, beam_width=4, max_steps=args.max_steps, temperature=1.0)
    reuse = reuse_vs_reencoding(tokenizer, policy_model, prm_model, questions, config, args.step_tokens)
    scale = scaling(tokenizer, policy_model, prm_model, questions, args.step_tokens)

    print(f"\nBeam search, forward tokens per useful token ({args.problems} problems, width 8, beam_width 4, "
          f"{args.max_steps} steps, {args.size} models)")
    print("| variant | policy fwd/useful | PRM fwd/useful | policy fwd | PRM fwd | seconds |")
    print("|---|---|---|---|---|---|")
    for r in reuse:
        print(f"| {r['variant']} | {r['policy_forward_per_useful']:.3f} | {r['prm_forward_per_useful']:.3f} | "
              f"{r['policy_forward']} | {r['prm_forward']} | {r['seconds']:.2f} |")
    print(f"\nScaling with N ({args.problems} problems; beam: beam_width 4, 6 steps)")
    print("| method | N | seconds | generated tokens | policy fwd | PRM fwd | s / 1k generated |")
    print("|---|---|---|---|---|---|---|")
    for r in scale:
        print(f"| {r['method']} | {r['N']} | {r['seconds']:.2f} | {r['policy_generated']} | {r['policy_forward']} | "
              f"{r['prm_forward']} | {r['seconds_per_1k_generated']:.2f} |")
    results = {"args": vars(args), "reuse_vs_reencoding": reuse, "scaling": scale}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
