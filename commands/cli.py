"""The `prm` command line: one entry point, one subcommand per recipe.

Each subcommand's options are the fields of its config dataclass, parsed by
`transformers.HfArgumentParser`, so `prm train --lr 1e-4` and
`prm.train.train(TrainConfig(lr=1e-4))` are the same call. Each subcommand's module is
imported inside its loader below (plain imports a reader and a tool can follow), so
`prm --help` stays fast and heavy imports load only for the command that runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path


def _demo():
    from commands.demo import DemoConfig, run_demo
    return DemoConfig, run_demo


def _sft():
    from prm.sft import SFTConfig, train_sft
    return SFTConfig, train_sft


def _train():
    from prm.train import TrainConfig, train
    return TrainConfig, train


def _score():
    from commands.score import ScoreConfig, score_file
    return ScoreConfig, score_file


def _label():
    from commands.label import LabelConfig, label_file
    return LabelConfig, label_file


def _rerank():
    from commands.rerank import RerankConfig, rerank_file
    return RerankConfig, rerank_file


def _export_sft():
    from commands.export_sft import ExportSFTConfig, export_sft
    return ExportSFTConfig, export_sft


def _search():
    from commands.search import SearchConfig, run_search
    return SearchConfig, run_search


def _eval_search():
    from commands.eval_search import EvalSearchConfig, eval_search
    return EvalSearchConfig, eval_search


def _ppo():
    from prm.ppo.train import PPOConfig, train_ppo
    return PPOConfig, train_ppo


# name -> (loader returning (config dataclass, function taking the config), one-line help)
COMMANDS: dict[str, tuple[Callable[[], tuple[type, Callable]], str]] = {
    "demo": (_demo, "The whole pipeline on the synthetic task, with a report"),
    "sft": (_sft, "Supervised fine-tuning of a policy on reference solutions"),
    "train": (_train, "Train a reward model: --objective prm|orm|joint|pairwise"),
    "score": (_score, "Score the steps of every solution in a JSONL file"),
    "label": (_label, "Label solution steps with sympy and Monte Carlo rollouts"),
    "rerank": (_rerank, "Best-of-N reranking of a candidates JSONL"),
    "export-sft": (_export_sft, "Rejection sampling: the top-k candidates per prompt as SFT data"),
    "search": (_search, "Step-level beam search / DVTS with a PRM"),
    "eval-search": (_eval_search, "Grid of search methods over N and seeds"),
    "ppo": (_ppo, "PPO with dense per-step rewards"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: prm <command> [options] [--config FILE] [--log_level LEVEL] [--debug]   (prm <command> --help for its options)",
        "       prm --version",
        "",
        "Process reward models and step-level verification for math reasoning.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {spec[1]}" for name, spec in COMMANDS.items()]
    return "\n".join(lines)


def _clarify_help(parser) -> None:
    """Fix two things HfArgumentParser's generated help gets wrong: the `--no_X` flag it adds for
    a boolean that defaults to True repeats X's help (so it reads as the opposite of what it
    does), and a default such as "\\n" prints as a raw line break. Defaults show as repr()."""
    for action in parser._actions:
        if not action.option_strings or action.help is None:
            continue
        flag = action.option_strings[0]
        if flag.startswith("--no_") and action.const is False:
            action.help = f"Turn off --{flag[len('--no_'):]}, whose help reads: {action.help}"
        elif isinstance(action.default, str) and action.default != " ".join(action.default.split()):
            action.help = f"{action.help} (default: %(default)r)"


def parse_command(name: str, args: list[str], config_class: type | None = None):
    """The config dataclass of `prm <name> <args>`: `--config FILE` (YAML or JSON) first, then the
    flags on the command line over it. `--log_level` and `--config` are parsed and left out."""
    from transformers import HfArgumentParser

    from commands.common import CommonOptions, apply_config_file, check_device, config_file_argument

    if config_class is None:
        config_class = COMMANDS[name][0]()[0]
    parser = HfArgumentParser((config_class, CommonOptions), prog=f"prm {name}")
    _clarify_help(parser)
    config_file = config_file_argument(args)
    if config_file:
        apply_config_file(parser, config_file, config_class)
    config, _common = parser.parse_args_into_dataclasses(args=args)
    if isinstance(getattr(config, "device", None), str):
        check_device(config.device, allow_auto=name == "demo")
    return config


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if argv[0] in {"--version", "-V"}:
        from prm import __version__

        print(f"prm-toolkit {__version__}")
        return 0
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"prm: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    # Spinning OpenMP threads slow CPU training many-fold on shared machines.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from commands.common import LOG_LEVELS, configure_logging, save_resolved_config

    log_level = next((rest[i + 1] for i, arg in enumerate(rest[:-1]) if arg == "--log_level"), "warning")
    if log_level not in LOG_LEVELS:
        print(f"prm {name}: error: --log_level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}", file=sys.stderr)
        return 2
    configure_logging(log_level)  # before the command's imports: quiet by default
    if not debug:  # a warning is a line for a person; --debug keeps Python's file:line form
        import warnings

        warnings.showwarning = lambda message, *_args, **_kwargs: print(f"prm {name}: warning: {message}",
                                                                         file=sys.stderr)
    load, _ = COMMANDS[name]
    try:
        try:  # inside the Ctrl-C handler: the imports of a command take seconds
            config_class, function = load()
        except ModuleNotFoundError as error:
            # An optional extra that is not installed (e.g. vllm), not a bug of ours.
            if error.name and error.name.split(".")[0] not in {"commands", "prm", "search", "generation", "verifiers", "tasks"}:
                print(f"prm {name}: not available in this installation ({error})", file=sys.stderr)
                return 2
            raise
        config = parse_command(name, rest, config_class)
        from commands.hub_data import with_local_records

        result = function(with_local_records(name, config))  # hub dataset ids -> their local JSONL copies
        save_resolved_config(name, config)
        written = result if isinstance(result, (str, Path)) else (getattr(config, "output_dir", None)
                                                                   or getattr(config, "output", None))
        if written:
            print(f"prm {name}: wrote {written}")
    except KeyboardInterrupt as error:
        # prm.recipe.Interrupted carries where the checkpoint went and the resume command.
        print(f"prm {name}: interrupted" + (f": {error}" if str(error) else ""), file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:
        # Bad input (RecordError is a ValueError naming file, line and field), bad options, missing
        # files: one line for a person. --debug shows the traceback, for a bug report.
        if debug:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"prm {name}: error: {message}  (--debug for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
