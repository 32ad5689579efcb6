"""`prm rerank`: best-of-N reranking of a candidates JSONL with every method, and the accuracy
curve over N. The methods live in `search.rerank`; this is the command around them."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from commands.common import config_file_name
from commands.options import int_list
from search.rerank import (
    accuracy_curve,
    build_pool,
    choose,
    curve_markdown,
    default_methods,
    parse_methods,
    powers_of_two,
)
from prm.recipe import check_output_dir
from search.scorers import VerifierScorer, load_scorers
from tasks.math.records import read_candidates
from tasks.math.limits import TooLong
from tasks.math.types import RecordError


@dataclass
class RerankConfig:
    """Options of `prm rerank`."""

    input: str = field(metadata={"help": "Candidates JSONL: {\"prompt\", \"completions\": [...], \"reference\"?} per line"})
    output_dir: str = field(default="runs/rerank", metadata={"help": "Where choices.jsonl, metrics.json and metrics.md go"})
    prm: str | None = field(default=None, metadata={"help": "PRM path or hub id (scorer name 'prm')"})
    orm: str | None = field(default=None, metadata={"help": "ORM path or hub id (scorer name 'orm', outcome score)"})
    methods: str = field(
        default="auto",
        metadata={"help": "Comma-separated methods (majority, prm-min, weighted-prm-last, orm, verifier-mean, "
                          "...+verifier, oracle) or 'auto' for every method the given models allow"},
    )
    step_style: str = field(default="auto", metadata={"help": "How completions split into steps (tasks.math.steps styles)"})
    verifier_neutral: float = field(default=0.5, metadata={"help": "Score of a step the verifier cannot check"})
    ns: str = field(default="auto", metadata={"help": "N values for the accuracy curve, e.g. 1,2,4,8; 'auto' = powers of two"})
    seeds: str = field(default="0,1,2", metadata={"help": "Seeds for the random subsets of the accuracy curve"})
    n_subsets: int = field(default=16, metadata={"help": "Random subsets per problem, N and seed"})
    device: str = field(default="", metadata={"help": "Torch device of the reward models: cpu, cuda, cuda:1, ...; empty: cuda if available, else cpu"})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the hub"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace the results in a used --output_dir (without it, a folder that holds any is refused)"})

    def __post_init__(self):
        if not int_list(self.seeds, "seeds"):
            raise ValueError(f"--seeds must name at least one seed, got {self.seeds!r}")
        if self.ns != "auto":  # read here, not after minutes of scoring
            int_list(self.ns, "ns", minimum=1)
        if self.n_subsets < 1:
            raise ValueError(f"--n_subsets must be >= 1, got {self.n_subsets}")


# What a run writes, all removed by --overwrite_output_dir (the saved config too, which the CLI
# writes again for the new run).
RERANK_OUTPUTS = ("choices.jsonl", "metrics.json", "metrics.md", config_file_name("rerank"))


def rerank_file(config: RerankConfig) -> dict[str, Any]:
    """Rerank every problem of a candidates file; write choices and metrics; return the metrics.

    Output: `choices.jsonl` (per problem: for each method the chosen index, its answer and,
    with a reference, whether it is right), `metrics.json` and `metrics.md` (accuracy of each
    method on the whole pool, and the accuracy-vs-N curve from random subsets).
    """
    from tqdm.auto import tqdm

    check_output_dir(Path(config.output_dir), overwrite=config.overwrite_output_dir, resuming=False,
                     written=RERANK_OUTPUTS, can_resume=False)
    records = read_candidates(config.input)
    models = load_scorers(config.prm, config.orm, device=config.device or None, trust_remote_code=config.trust_remote_code)
    verifier = VerifierScorer(config.verifier_neutral)
    # The verifier is always available as a scorer ("verifier-mean", "weighted-verifier-min", ...),
    # but the automatic grid only uses it as a filter.
    scorers = {**models, "verifier": verifier}
    has_reference = all(r.reference is not None for r in records)
    if config.methods == "auto":
        methods = default_methods(list(models), has_reference=has_reference)
    else:
        methods = parse_methods(config.methods)
    missing = sorted({m.scorer for m in methods if m.scorer is not None and m.scorer not in scorers})
    if missing:
        raise ValueError(f"methods need scorers {missing}; pass --prm / --orm (have {sorted(scorers)})")
    if any(m.kind == "oracle" for m in methods) and not has_reference:
        lines = [r.line for r in records if r.reference is None][:5]
        raise RecordError(f"oracle needs a reference on every line; missing on lines {lines}",
                          path=config.input, field="reference")

    pools, skipped = [], []
    for record in tqdm(records, desc="rerank", unit="problem"):
        try:
            pools.append(build_pool(record.prompt, record.completions, scorers=scorers, methods=methods,
                                    reference=record.reference, verifier=verifier, step_style=config.step_style))
        except TooLong as error:
            # Too long for a reward model: skipped with a warning naming the line; the rest is kept.
            print(f"prm rerank: warning: {config.input}, line {record.line}: skipped, {error}", file=sys.stderr)
            skipped.append((record, str(error)))
        except ValueError as error:
            raise RecordError(str(error), path=config.input, line=record.line) from error
    if skipped:
        print(f"prm rerank: warning: {len(skipped)} of {len(records)} problems skipped as too long for the "
              "reward models (in choices.jsonl with 'skipped')", file=sys.stderr)
    skipped_lines = {record.line for record, _ in skipped}
    records = [record for record in records if record.line not in skipped_lines]
    if not records:
        raise ValueError(f"{config.input}: every problem is too long for the reward models")

    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    accuracy: dict[str, float] = {}
    with (output_dir / "choices.jsonl").open("w", encoding="utf-8") as handle:
        for record, pool in zip(records, pools):
            choices = {}
            for method in methods:
                index = choose(method, pool)
                entry: dict[str, Any] = {"index": index, "answer": None if index is None else pool.answers[index]}
                if pool.correct is not None:
                    entry["correct"] = index is not None and pool.correct[index]
                    accuracy[method.name] = accuracy.get(method.name, 0.0) + entry["correct"] / len(pools)
                choices[method.name] = entry
            row = {"line": record.line, "prompt": record.prompt, "reference": record.reference, "choices": choices}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        for record, reason in skipped:
            handle.write(json.dumps({"line": record.line, "reference": record.reference, "skipped": reason}) + "\n")

    metrics: dict[str, Any] = {
        "input": config.input,
        "problems": len(records),
        "skipped": len(skipped),
        "candidates_min": min(len(p) for p in pools),
        "candidates_max": max(len(p) for p in pools),
        "methods": [m.name for m in methods],
    }
    low, high = metrics["candidates_min"], metrics["candidates_max"]
    markdown = [f"# Best-of-N reranking of `{config.input}`", "",
                f"{len(records)} problems, {low if low == high else f'{low}–{high}'} candidates each"
                + (f"; {len(skipped)} skipped as too long for the reward models, left out of every method."
                   if skipped else "."), ""]
    if has_reference:
        metrics["accuracy"] = accuracy
        ns = powers_of_two(metrics["candidates_min"]) if config.ns == "auto" else int_list(config.ns, "ns")
        curve = accuracy_curve(pools, methods, ns, seeds=int_list(config.seeds, "seeds"), n_subsets=config.n_subsets)
        metrics["curve"] = [asdict(p) for p in curve]
        markdown += ["## Accuracy on all candidates", "", "| method | accuracy |", "|---|---:|"]
        markdown += [f"| {name} | {value:.3f} |" for name, value in accuracy.items()]
        markdown += ["", "## Accuracy at N (random subsets of each pool)", "", curve_markdown(curve)]
    else:
        markdown += ["No references: choices only, no accuracy."]
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (output_dir / "metrics.md").write_text("\n".join(markdown).rstrip() + "\n", encoding="utf-8")
    print((output_dir / "metrics.md").read_text(encoding="utf-8"))
    return metrics
