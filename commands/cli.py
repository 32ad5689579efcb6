"""The `prm` command line: one entry point, one subcommand per recipe.

Each subcommand's options are the fields of its config dataclass, parsed by
`transformers.HfArgumentParser`, so `prm train --lr 1e-4` and
`prm.train.train(TrainConfig(lr=1e-4))` are the same call. Modules are imported lazily
so `prm --help` stays fast and a subcommand's heavy imports load only when used.
"""

from __future__ import annotations

import importlib
import os
import sys

# name -> (module, config dataclass, function taking the config, one-line help)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "demo": ("prm.demo", "DemoConfig", "run_demo", "The whole pipeline on the synthetic task, with a report"),
    "sft": ("prm.sft", "SFTConfig", "train_sft", "Supervised fine-tuning of a policy on reference solutions"),
    "train": ("prm.train", "TrainConfig", "train", "Train a reward model: --objective prm|orm|joint|pairwise"),
    "score": ("prm.score", "ScoreConfig", "score_file", "Score the steps of every solution in a JSONL file"),
    "label": ("search.label", "LabelConfig", "label_file", "Label solution steps with sympy and Monte Carlo rollouts"),
    "rerank": ("search.rerank", "RerankConfig", "rerank_file", "Best-of-N reranking of a candidates JSONL"),
    "search": ("search.cli", "SearchConfig", "run_search", "Step-level beam search / DVTS with a PRM"),
    "eval-search": ("search.evaluate", "EvalSearchConfig", "eval_search", "Grid of search methods over N and seeds"),
    "ppo": ("prm.ppo.train", "PPOConfig", "train_ppo", "PPO with dense per-step rewards"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: prm <command> [options]   (prm <command> --help for its options)",
        "",
        "Process reward models and step-level verification for math reasoning.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {spec[3]}" for name, spec in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"prm: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    # Spinning OpenMP threads slow CPU training many-fold on shared machines.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    module_name, config_name, function_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            print(f"prm {name}: not available in this installation ({error})", file=sys.stderr)
            return 2
        raise
    from transformers import HfArgumentParser

    parser = HfArgumentParser(getattr(module, config_name), prog=f"prm {name}")
    (config,) = parser.parse_args_into_dataclasses(args=rest)
    getattr(module, function_name)(config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
