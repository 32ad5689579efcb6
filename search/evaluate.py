"""`prm eval-search`: accuracy of search methods over N (and generated tokens) and seeds.

The recipe, top to bottom:

1. problems: the synthetic task or a JSONL of `{"question" | "prompt", "answer" | "reference"}`;
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

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import verifiers
from search.rerank import (
    CurvePoint,
    Method,
    accuracy_curve,
    build_pool,
    curve_markdown,
    default_methods,
    load_scorers,
    parse_methods,
)
from search.scorers import VerifierScorer
from tasks.math.loaders import iter_jsonl
from tasks.math.types import RecordError

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
) -> list[CurvePoint]:
    """Best-of-N accuracy curves from M samples per problem, in memory.

    prompts / references: one per problem; samples_per_problem: `[problems][M]` solution texts
    (or step lists); scorers: e.g. {"prm": prm.load(...), "orm": ...}; methods default to
    `default_methods(scorers)`; tokens_per_problem: `[problems][M]` generated tokens, for the
    accuracy-vs-tokens curve. Returns one `CurvePoint` per (method, N).
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
            tokens=None if tokens_per_problem is None else tokens_per_problem[index],
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
    progress: bool = True,
) -> list[CurvePoint]:
    """Accuracy of beam search / DVTS with width N (all N), one run per seed and problem.

    The beam width is min(beam_width, N). The answer of a run is its best candidate's;
    tokens_mean is the policy's generated tokens per problem (lookahead included).
    """
    from tqdm.auto import tqdm

    from search.beam import BeamConfig, beam_search, dvts

    searches = {"beam": beam_search, "dvts": dvts}
    unknown = [kind for kind in kinds if kind not in searches]
    if unknown:
        raise ValueError(f"unknown tree search {unknown}; choose from {list(searches)}")
    points = []
    total = len(kinds) * len(ns) * len(seeds) * len(questions)
    with tqdm(total=total, desc="tree search", unit="run", disable=not progress) as bar:
        for kind in kinds:
            for n in ns:
                accuracies, tokens = [], []
                for seed in seeds:
                    right = 0
                    for index, (question, reference) in enumerate(zip(questions, references)):
                        config = BeamConfig(width=n, beam_width=min(beam_width, n), max_steps=max_steps,
                                            temperature=temperature, aggregation=aggregation,
                                            seed=seed * 100_003 + index)
                        result = searches[kind](question, policy, scorer, config)
                        answer = verifiers.extract_answer(result.best.text) if result.candidates else None
                        right += answer is not None and verifiers.answers_equivalent(reference, answer)
                        tokens.append(result.counters.policy_generated_tokens)
                        bar.update()
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


def read_problems(path: str | Path) -> tuple[list[str], list[str]]:
    """Questions and reference answers from a JSONL of `{"question"|"prompt", "answer"|"reference"}`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"problems file not found: {path}")
    questions, answers = [], []
    for line_number, record in iter_jsonl(path):
        where = {"path": str(path), "line": line_number}
        # Either spelling is accepted; an error names the first when neither is there.
        question_key = "prompt" if "prompt" in record and "question" not in record else "question"
        answer_key = "reference" if "reference" in record and "answer" not in record else "answer"
        question, answer = record.get(question_key), record.get(answer_key)
        if not isinstance(question, str) or not question.strip():
            raise RecordError("missing or not a non-empty string", field=question_key, **where)
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
            raise RecordError("missing, or not a string or a number", field=answer_key, **where)
        questions.append(question)
        answers.append(str(answer))
    if not questions:
        raise RecordError("no problems", path=str(path))
    return questions, answers


@dataclass
class EvalSearchConfig:
    """Options of `prm eval-search`."""

    policy: str = field(metadata={"help": "Policy model: path, hub id or alias (e.g. smollm2-135m-instruct)"})
    prm: str | None = field(default=None, metadata={"help": "PRM path or hub id (scorer 'prm'; drives beam/DVTS)"})
    orm: str | None = field(default=None, metadata={"help": "ORM path or hub id (scorer 'orm')"})
    problems: str = field(default="synthetic", metadata={"help": "'synthetic' or a JSONL of {question, answer}"})
    n_problems: int = field(default=32, metadata={"help": "How many problems (first n of the file, or generated)"})
    preset: str = field(default="tiny", metadata={"help": "Synthetic task preset"})
    problem_seed: int = field(default=1234, metadata={"help": "Seed of the synthetic problems"})
    methods: str = field(
        default="auto",
        metadata={"help": "Comma-separated methods (majority, prm-min, weighted-prm-last, orm, ...+verifier, "
                          "oracle, beam, dvts) or 'auto' for all the given models allow"},
    )
    ns: str = field(default="1,2,4,8,16", metadata={"help": "N values (beam/DVTS: width)"})
    seeds: str = field(default="0,1,2", metadata={"help": "Seeds: subsets for best-of-N, sampling for beam/DVTS"})
    n_subsets: int = field(default=16, metadata={"help": "Random subsets per problem, N and seed"})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature"})
    max_new_tokens: int = field(default=256, metadata={"help": "Token limit of a whole solution"})
    max_step_tokens: int = field(default=64, metadata={"help": "Token limit of one step (beam/DVTS)"})
    beam_width: int = field(default=4, metadata={"help": "Children per beam in beam search / DVTS"})
    max_steps: int = field(default=10, metadata={"help": "Maximum steps in beam search / DVTS"})
    search_aggregation: str = field(default="last", metadata={"help": "How beam/DVTS rank paths: last|min|prod|mean"})
    batch_size: int = field(default=16, metadata={"help": "Rows per policy forward"})
    device: str | None = field(default=None, metadata={"help": "Device (default: cuda if available)"})
    output_dir: str = field(default="runs/eval-search", metadata={"help": "Where results.json/.md and PNGs go"})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the hub"})


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--{option} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ValueError(f"--{option} is empty")
    return values


def load_problems(config: EvalSearchConfig) -> tuple[list[str], list[str]]:
    if config.problems == "synthetic":
        from tasks.math.synthetic import generate_problems

        problems = generate_problems(config.n_problems, preset=config.preset, seed=config.problem_seed)
        return [p.question for p in problems], [p.answer for p in problems]
    questions, answers = read_problems(config.problems)
    return questions[: config.n_problems], answers[: config.n_problems]


def sample_pools(policy: Any, questions: Sequence[str], m: int, *, progress: bool = True
                 ) -> tuple[list[list[str]], list[list[int]]]:
    """M whole solutions per question and their generated-token counts: `[problems][M]` each."""
    from tqdm.auto import tqdm

    from tasks.math.prompts import policy_prompt

    texts, tokens = [], []
    for question in tqdm(questions, desc=f"sample {m} solutions", unit="problem", disable=not progress):
        (group,) = policy.expand(policy.start([policy_prompt(question)]), m, until_step_end=False, keep_cache=False)
        texts.append([child.text for child in group])
        tokens.append([len(child.token_ids) for child in group])
    return texts, tokens


def eval_search(config: EvalSearchConfig) -> dict[str, Any]:
    """Run the grid, write results.json, results.md and the PNG curves; return the results."""
    from search.plots import plot_accuracy_vs_n, plot_accuracy_vs_tokens
    from generation.policy import HFPolicy

    ns = sorted(set(_int_list(config.ns, "ns")))
    seeds = _int_list(config.seeds, "seeds")
    scorers = load_scorers(config.prm, config.orm, device=config.device,
                           trust_remote_code=config.trust_remote_code)
    if config.methods == "auto":
        names = [m.name for m in default_methods(list(scorers))] + (list(TREE_SEARCHES) if "prm" in scorers else [])
    else:
        names = [name.strip() for name in config.methods.split(",") if name.strip()]
    tree_kinds = [n for n in names if n in TREE_SEARCHES]
    methods = parse_methods([n for n in names if n not in TREE_SEARCHES])
    if tree_kinds and "prm" not in scorers:
        raise ValueError(f"{tree_kinds} need a PRM: pass --prm")
    missing = sorted({m.scorer for m in methods if m.scorer is not None and m.scorer not in scorers})
    if missing:
        raise ValueError(f"methods need scorers {missing}; pass --prm / --orm (have {sorted(scorers) or 'none'})")

    questions, references = load_problems(config)
    policy = HFPolicy.from_pretrained(
        config.policy, device=config.device, trust_remote_code=config.trust_remote_code,
        temperature=config.temperature, max_new_tokens=config.max_new_tokens,
        max_step_tokens=config.max_step_tokens, seed=seeds[0], batch_size=config.batch_size,
    )
    points: list[CurvePoint] = []
    if methods:
        texts, tokens = sample_pools(policy, questions, max(ns))
        points += evaluate_best_of_n(questions, texts, references, scorers, ns, seeds, methods=methods,
                                     n_subsets=config.n_subsets, tokens_per_problem=tokens)
    if tree_kinds:
        points += evaluate_tree_search(questions, references, policy, scorers["prm"], ns, seeds, kinds=tree_kinds,
                                       beam_width=config.beam_width, max_steps=config.max_steps,
                                       temperature=config.temperature, aggregation=config.search_aggregation)

    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = {"config": asdict(config), "problems": len(questions), "points": [asdict(p) for p in points]}
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot_accuracy_vs_n(points, output_dir / "accuracy_vs_n.png")
    plot_accuracy_vs_tokens(points, output_dir / "accuracy_vs_tokens.png")
    markdown = "\n".join([
        f"# Search evaluation: {len(questions)} problems ({config.problems}), seeds {seeds}",
        "", "## Accuracy vs N", "", curve_markdown(points),
        "## Accuracy vs generated tokens", "", tokens_markdown(points),
        "![accuracy vs N](accuracy_vs_n.png)", "", "![accuracy vs tokens](accuracy_vs_tokens.png)", "",
    ])
    (output_dir / "results.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    return results
