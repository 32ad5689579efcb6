"""`prm export-sft`: rejection sampling, as a command (Llama 2's step: keep the best of N).

Reads a candidates file (the format of `prm rerank`: ``{"prompt", "completions": [...],
"reference"?}`` per line), keeps the top `--k` completions of each prompt under a reward model
or the checker, and writes ``{"prompt", "completion", "score"}`` lines, which `prm sft --data`
trains on::

    prm export-sft --input samples.jsonl --scorer runs/prm --k 2 --require_correct --output sft.jsonl
    prm sft --data sft.jsonl --model runs/policy --output_dir runs/policy-rs
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from prm.recipe import check_output_file
from search.export import rejection_sample, write_sft_jsonl
from search.scorers import VerifierScorer
from tasks.math.records import read_candidates


@dataclass
class ExportSFTConfig:
    """Options of `prm export-sft`."""

    input: str = field(metadata={"help": "Candidates JSONL: {\"prompt\", \"completions\": [...], \"reference\"?} per line"})
    output: str = field(metadata={"help": "SFT JSONL to write: {\"prompt\", \"completion\", \"score\"} per line"})
    scorer: str = field(default="verifier", metadata={"help": "Reward model path or hub id (prm.load), or 'verifier' for the sympy step checker"})
    k: int = field(default=1, metadata={"help": "Completions kept per prompt (fewer where fewer pass the filters)"})
    aggregation: str = field(default="min", metadata={"help": "How a PRM's step scores make a solution score: min | prod | last | mean; 'outcome' = the model's outcome score"})
    require_correct: bool = field(default=False, metadata={"help": "Keep only completions whose final answer matches the record's reference (every record needs one)"})
    verifier_filter: bool = field(default=False, metadata={"help": "Drop completions with a step the checker finds false"})
    min_score: float | None = field(default=None, metadata={"help": "Drop completions scoring below this"})
    device: str = field(default="", metadata={"help": "Torch device of the reward model: cpu, cuda, cuda:1, ...; empty: cuda if available, else cpu"})
    overwrite_output: bool = field(default=False, metadata={"help": "Replace an existing --output"})

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"--k must be at least 1, got {self.k}")
        if self.aggregation == "outcome" and self.scorer == "verifier":
            raise ValueError("--aggregation outcome needs a reward model's outcome score; the verifier scores steps "
                             "(min | prod | last | mean)")
        # NaN compares false with every score (an empty export); inf keeps nothing either.
        if self.min_score is not None and not math.isfinite(self.min_score):
            raise ValueError(f"--min_score must be a number, got {self.min_score}")


def export_sft(config: ExportSFTConfig) -> Path:
    """Score every candidate, keep the top k per prompt, write the SFT file; returns its path."""
    output = Path(config.output)
    check_output_file(output, overwrite=config.overwrite_output, resuming=False)
    records = read_candidates(config.input)
    if config.require_correct:
        missing = [record.line for record in records if record.reference is None]
        if missing:
            raise ValueError(f"{config.input}, line {missing[0]}: --require_correct needs a 'reference' in every "
                             f"record ({len(missing)} have none)")
    if config.scorer == "verifier":
        scorer = VerifierScorer()
    else:
        import prm

        scorer = prm.load(config.scorer, device=config.device or None)
    prompts, completions, references = _by_prompt(records, config.input)
    kept = rejection_sample(prompts, completions, scorer, k=config.k,
                            aggregation=None if config.aggregation == "outcome" else config.aggregation,
                            references=references, require_correct=config.require_correct,
                            verifier_filter=config.verifier_filter, min_score=config.min_score)
    print(f"prm export-sft: kept {len(kept)} completions of {sum(len(c) for c in completions)} "
          f"for {len({record['prompt'] for record in kept})} of {len(prompts)} prompts ({len(records)} lines)")
    return write_sft_jsonl(kept, output)


def _by_prompt(records, source: str) -> tuple[list[str], list[list[str]], list[str | None]]:
    """(prompts, their completions, references) with the lines of one prompt merged in file
    order (several sampling passes in one file): --k and the duplicate check are per prompt.
    Two lines of one prompt with different references are an error naming both lines."""
    merged: dict[str, tuple[list[str], object]] = {}
    for record in records:
        completions, first = merged.setdefault(record.prompt, ([], record))
        if record.reference != first.reference:
            raise ValueError(f"{source}, line {record.line}: the prompt of line {first.line} with another reference "
                             f"({record.reference!r}, not {first.reference!r})")
        completions.extend(record.completions)
    return (list(merged), [completions for completions, _ in merged.values()],
            [first.reference for _, first in merged.values()])
