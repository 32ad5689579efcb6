"""`prm eval-search`: a grid of search methods (best-of-N with every reranker, beam search, DVTS)
over N and seeds on held-out problems, with JSON, markdown and plots.

Problems that do not fit the policy are left out before any method runs (each named in a
warning), so every method and N is measured on the same problems; results.json counts them
(`problems`: those evaluated, `skipped`: those left out) and results.md names both in its title.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from commands.common import config_file_name
from commands.options import int_list
from prm.recipe import check_output_dir
from search.evaluate import TREE_SEARCHES, evaluate_best_of_n, evaluate_tree_search, tokens_markdown
from search.rerank import CurvePoint, curve_markdown, default_methods, parse_methods
from search.scorers import load_scorers
from tasks.math.records import read_problems
from tasks.math.synthetic import synthetic_preset
from tasks.math.types import Problem


@dataclass
class EvalSearchConfig:
    """Options of `prm eval-search`."""

    policy: str = field(metadata={"help": "Policy model: path, hub id or alias (e.g. smollm2-135m-instruct)"})
    prm: str | None = field(default=None, metadata={"help": "PRM path or hub id (scorer 'prm'; drives beam/DVTS)"})
    orm: str | None = field(default=None, metadata={"help": "ORM path or hub id (scorer 'orm')"})
    problems: str = field(default="synthetic", metadata={"help": "synthetic[:PRESET] or a problems JSONL ({question|prompt|problem, answer|reference}, GSM8K, TRL stepwise)"})
    n_problems: int = field(default=32, metadata={"help": "How many problems: the first n of the file (0: all of it), or n >= 1 generated"})
    preset: str = field(default="tiny", metadata={"help": "Synthetic task preset (for a bare 'synthetic')"})
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
    questions_per_batch: int = field(default=32, metadata={"help": "Beam/DVTS searches run in lockstep, their rounds batched together (1: one by one)"})
    device: str = field(default="", metadata={"help": "Torch device: cpu, cuda, cuda:1, ...; empty: cuda if available, else cpu"})
    output_dir: str = field(default="runs/eval-search", metadata={"help": "Where results.json/.md and PNGs go"})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the hub"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace the results in a used --output_dir (without it, a folder that holds any is refused)"})

    def __post_init__(self):
        if self.n_problems < 0:
            raise ValueError(f"--n_problems must be >= 1 (or 0: every problem of a file), got {self.n_problems}")
        if self.n_problems == 0 and synthetic_preset(self.problems, self.preset):
            raise ValueError(f"--n_problems must be >= 1 to generate problems ({self.problems}), got 0")
        for name in ("max_new_tokens", "max_step_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if not int_list(self.seeds, "seeds"):
            raise ValueError(f"--seeds must name at least one seed, got {self.seeds!r}")
        if not int_list(self.ns, "ns", minimum=1):  # read here, not after minutes of sampling
            raise ValueError(f"--ns must name at least one N, got {self.ns!r}")
        if self.n_subsets < 1:
            raise ValueError(f"--n_subsets must be >= 1, got {self.n_subsets}")


# What a run writes, all removed by --overwrite_output_dir (the saved config too, which the CLI
# writes again for the new run).
EVAL_SEARCH_OUTPUTS = ("results.json", "results.md", "accuracy_vs_n.png", "accuracy_vs_tokens.png",
                       config_file_name("eval-search"))


def load_problems(config: EvalSearchConfig) -> list[Problem]:
    """The first `n_problems` of the file, or generated."""
    return read_problems(config.problems, limit=config.n_problems, n_synthetic=config.n_problems,
                         seed=config.problem_seed, preset=config.preset)


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
    from generation.policy import HFPolicy, problems_that_fit

    check_output_dir(Path(config.output_dir), overwrite=config.overwrite_output_dir, resuming=False,
                     written=EVAL_SEARCH_OUTPUTS, can_resume=False)
    ns = sorted(int_list(config.ns, "ns"))
    seeds = int_list(config.seeds, "seeds")
    scorers = load_scorers(config.prm, config.orm, device=config.device or None,
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

    problems = load_problems(config)
    asked = len(problems)
    policy = HFPolicy.from_pretrained(
        config.policy, device=config.device or None, trust_remote_code=config.trust_remote_code,
        temperature=config.temperature, max_new_tokens=config.max_new_tokens,
        max_step_tokens=config.max_step_tokens, seed=seeds[0], batch_size=config.batch_size,
    )
    problems = problems_that_fit(problems, policy, command="prm eval-search", source=config.problems)
    if not problems:
        raise ValueError(f"{config.problems}: every problem is too long for the policy")
    questions, references = [p.question for p in problems], [p.answer for p in problems]
    points: list[CurvePoint] = []
    if methods:
        texts, tokens = sample_pools(policy, questions, max(ns))
        points += evaluate_best_of_n(questions, texts, references, scorers, ns, seeds, methods=methods,
                                     n_subsets=config.n_subsets, tokens_per_problem=tokens)
    if tree_kinds:
        points += evaluate_tree_search(questions, references, policy, scorers["prm"], ns, seeds, kinds=tree_kinds,
                                       beam_width=config.beam_width, max_steps=config.max_steps,
                                       temperature=config.temperature, aggregation=config.search_aggregation,
                                       questions_per_batch=config.questions_per_batch)

    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    skipped = asked - len(questions)
    results = {"config": asdict(config), "problems": len(questions), "skipped": skipped,
               "points": [asdict(p) for p in points]}
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot_accuracy_vs_n(points, output_dir / "accuracy_vs_n.png")
    plot_accuracy_vs_tokens(points, output_dir / "accuracy_vs_tokens.png")
    markdown = "\n".join([
        f"# Search evaluation: {len(questions)} problems"
        + (f", {skipped} skipped as too long for the policy" if skipped else "")
        + f" ({config.problems}), seeds {seeds}",
        "", "## Accuracy vs N", "", curve_markdown(points),
        "## Accuracy vs generated tokens", "", tokens_markdown(points),
        "![accuracy vs N](accuracy_vs_n.png)", "", "![accuracy vs tokens](accuracy_vs_tokens.png)", "",
    ])
    (output_dir / "results.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    return results
