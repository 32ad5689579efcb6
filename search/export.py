"""Rejection-sampling export: the best completions per problem become an SFT data set.

Llama 2's rejection-sampling step: sample N solutions per prompt, keep the top k under a
reward model, fine-tune the policy on them. Any scorer works (a PRM aggregated with
min|prod|last|mean, an ORM, the verifier, a `WeightedScorer`); with references,
`require_correct=True` keeps only completions whose final answer matches.

    records = rejection_sample(questions, samples, prm.load("runs/prm"), k=2, references=answers,
                               require_correct=True)
    write_sft_jsonl(records, "runs/sft.jsonl")   # {"prompt", "completion", "score"} per line
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.rerank import Method, build_pool


def rejection_sample(
    prompts: Sequence[str],
    samples_per_problem: Sequence[Sequence[str | Sequence[str]]],
    scorer: Any,
    *,
    k: int = 1,
    aggregation: str | None = "min",
    references: Sequence[str | None] | None = None,
    require_correct: bool = False,
    verifier_filter: bool = False,
    min_score: float | None = None,
) -> list[dict[str, Any]]:
    """Top-k completions per prompt under `scorer`, as `{"prompt", "completion", "score"}` records.

    samples_per_problem: `[problems][M]` solution texts (or step lists). A step scorer is
    aggregated with `aggregation` (None: the scorer's outcome score `score(prompt, completion)`).
    require_correct keeps only completions whose answer matches the reference; verifier_filter
    drops completions with a false equation; min_score drops those scoring below it. Completions
    of one prompt with the same steps (texts equal but for layout) are kept once. Order: by prompt, then score (best first, ties by
    sample order). A prompt may contribute fewer than k records (or none).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(prompts) != len(samples_per_problem):
        raise ValueError(f"{len(prompts)} prompts but {len(samples_per_problem)} sample lists")
    if require_correct and (references is None or any(r is None for r in references)):
        raise ValueError("require_correct needs a reference answer for every prompt")
    if references is not None and len(references) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(references)} references")
    if not hasattr(scorer, "score_steps"):
        aggregation = None
    method = Method("best", "scorer", aggregation, verifier_filter)
    records = []
    for index, (prompt, samples) in enumerate(zip(prompts, samples_per_problem)):
        reference = None if references is None else references[index]
        pool = build_pool(prompt, samples, scorers={"scorer": scorer}, methods=[method], reference=reference)
        scores = pool.values("scorer", aggregation)
        keep = [
            i for i in range(len(pool))
            if pool.texts[i].strip()
            and (not require_correct or pool.correct[i])
            and (not verifier_filter or pool.passes_verifier[i])
            and (min_score is None or scores[i] >= min_score)
        ]
        # One solution once: texts that differ only in layout (a blank line) have the same steps.
        seen: set[tuple[str, ...]] = set()
        for i in sorted(keep, key=lambda i: (-scores[i], i)):
            steps = tuple(pool.steps[i])
            if steps in seen:
                continue
            seen.add(steps)
            records.append({"prompt": prompt, "completion": pool.texts[i], "score": scores[i]})
            if len(seen) == k:
                break
    return records


def write_sft_jsonl(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """One `{"prompt", "completion", "score"}` object per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def to_dataset(records: Sequence[dict[str, Any]]):
    """The records as a `datasets.Dataset` with columns prompt, completion, score."""
    from datasets import Dataset

    return Dataset.from_list(list(records)) if records else Dataset.from_dict(
        {"prompt": [], "completion": [], "score": []}
    )
