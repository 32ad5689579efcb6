"""`prm eval-search`: accuracy of search methods over N (and generated tokens) and seeds.

The recipe, top to bottom:

1. problems: the synthetic task or a problems file (`tasks.math.records.read_problems`);
2. best-of-N pool: the policy samples M = max(N) whole solutions per problem once (seeded);
   the PRM / ORM / verifier score them once (`search.rerank.build_pool`);
3. every best-of-N method's accuracy at each N, averaged over random subsets of the pool,
   one estimate per seed (`search.rerank.accuracy_curve`);
4. beam search and DVTS with width N, run once per seed (the policy's sampler reseeded),
   their generated tokens counted;
5. `results.json`, `results.md` (mean ± std over seeds) and two PNGs: accuracy vs N
   (log2 axis) and accuracy vs generated tokens.

For in-memory samples (the demo), skip the recipe: `evaluate_best_of_n(...)` returns the
curve points, `search.plots.plot_accuracy_vs_n(points, path)` draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import verifiers
from search.rerank import (
    CurvePoint,
    Method,
    accuracy_curve,
    build_pool,
    default_methods,
)
from search.scorers import VerifierScorer

TREE_SEARCHES = ("beam", "dvts")


def evaluate_best_of_n(
    prompts: Sequence[str],
    samples_per_problem: Sequence[Sequence[str | Sequence[str]]],
    references: Sequence[str],
    scorers: dict[str, Any] | None = None,
    ns: Sequence[int] = (1, 2, 4, 8),
    seeds: Sequence[int] = (0, 1, 2),
    *,
    methods: Sequence[Method | str] | None = None,
    n_subsets: int = 8,
    tokens_per_problem: Sequence[Sequence[int]] | None = None,
    verifier: VerifierScorer | None = None,
    progress: bool = True,
    step_style: str = "lines",
) -> list[CurvePoint]:
    """Best-of-N accuracy curves from M samples per problem, in memory.

    prompts / references: one per problem; samples_per_problem: `[problems][M]` solution texts
    (or step lists); scorers: e.g. {"prm": prm.load(...), "orm": ...}; methods default to
    `default_methods(scorers)`; tokens_per_problem: `[problems][M]` generated tokens, for the
    accuracy-vs-tokens curve; step_style: how sample texts split into steps, one style for
    every sample (default "lines": the policy writes one step a line, as beam search and
    `prm search` split them; "auto" would guess per sample, so that a blank line in one
    sample changed its steps). Returns one `CurvePoint` per (method, N).
    """
    from tqdm.auto import tqdm

    scorers = scorers or {}
    if not len(prompts) == len(samples_per_problem) == len(references):
        raise ValueError(
            f"{len(prompts)} prompts, {len(samples_per_problem)} sample lists, {len(references)} references"
        )
    if methods is None:
        methods = default_methods(list(scorers))
    methods = [Method.parse(m) if isinstance(m, str) else m for m in methods]
    pools = []
    for index in tqdm(range(len(prompts)), desc="score pools", unit="problem", disable=not progress):
        pools.append(build_pool(
            prompts[index], samples_per_problem[index], scorers=scorers, methods=methods,
            reference=references[index], verifier=verifier,
            tokens=None if tokens_per_problem is None else tokens_per_problem[index], step_style=step_style,
        ))
    return accuracy_curve(pools, methods, ns, seeds=seeds, n_subsets=n_subsets)


def evaluate_tree_search(
    questions: Sequence[str],
    references: Sequence[str],
    policy: Any,
    scorer: Any,
    ns: Sequence[int],
    seeds: Sequence[int],
    *,
    kinds: Sequence[str] = TREE_SEARCHES,
    beam_width: int = 4,
    max_steps: int = 10,
    temperature: float = 0.7,
    aggregation: str = "last",
    questions_per_batch: int = 32,
    progress: bool = True,
) -> list[CurvePoint]:
    """Accuracy of beam search / DVTS with width N (all N), one run per seed and problem.

    The beam width is min(beam_width, N). The answer of a run is its best candidate's;
    tokens_mean is the policy's generated tokens per problem (lookahead included).
    `questions_per_batch` searches run in lockstep (`search.beam.search_many`: the policy and
    the scorer see one batch per round; the batch's random stream is seeded by its first
    search's seed, seed * 100003 + the question's index); 1 runs them one by one.
    """
    from tqdm.auto import tqdm

    from search.beam import BeamConfig, search_many

    unknown = [kind for kind in kinds if kind not in TREE_SEARCHES]
    if unknown:
        raise ValueError(f"unknown tree search {unknown}; choose from {list(TREE_SEARCHES)}")
    if questions_per_batch < 1:
        raise ValueError(f"questions_per_batch must be >= 1, got {questions_per_batch}")
    points = []
    total = len(kinds) * len(ns) * len(seeds) * len(questions)
    with tqdm(total=total, desc="tree search", unit="run", disable=not progress) as bar:
        for kind in kinds:
            for n in ns:
                accuracies, tokens = [], []
                for seed in seeds:
                    right = 0
                    configs = [BeamConfig(width=n, beam_width=min(beam_width, n), max_steps=max_steps,
                                          temperature=temperature, aggregation=aggregation,
                                          seed=seed * 100_003 + index) for index in range(len(questions))]
                    for begin in range(0, len(questions), questions_per_batch):
                        batch = slice(begin, begin + questions_per_batch)
                        results = search_many(questions[batch], policy, scorer, configs[batch], kind)
                        for result, reference in zip(results, references[batch]):
                            answer = verifiers.extract_answer(result.best.text) if result.candidates else None
                            right += answer is not None and verifiers.answers_equivalent(reference, answer)
                            tokens.append(result.counters.policy_generated_tokens)
                        bar.update(len(results))
                    accuracies.append(right / len(questions))
                points.append(CurvePoint(
                    method=kind, n=n, accuracy_mean=float(np.mean(accuracies)),
                    accuracy_std=float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
                    accuracies=accuracies, tokens_mean=float(np.mean(tokens)),
                ))
    return points


def tokens_markdown(points: Sequence[CurvePoint]) -> str:
    """A markdown table of accuracy against mean generated tokens per problem."""
    lines = ["| method | N | generated tokens / problem | accuracy |", "|---|---:|---:|---:|"]
    for p in points:
        if p.tokens_mean is not None:
            lines.append(f"| {p.method} | {p.n} | {p.tokens_mean:.0f} | {p.accuracy_mean:.3f} ± {p.accuracy_std:.3f} |")
    return "\n".join(lines) + "\n"
