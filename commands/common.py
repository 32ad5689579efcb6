"""Options every subcommand takes besides its own config: `--config FILE` and `--log_level`.

    prm train --config runs/prm/train_config.json --max_steps 50   # the file, then the flags
    prm score --model runs/prm --input x.jsonl --log_level info     # library progress bars back on
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass
class CommonOptions:
    """Options of every `prm` subcommand."""

    config: str | None = field(default=None, metadata={"help": "YAML or JSON file of this command's options (e.g. the <command>_config.json a run saved); flags given on the command line override it"})
    log_level: str = field(default="warning", metadata={"help": "debug | info | warning | error | critical. Below warning, the libraries' own logs, deprecation warnings and weight loading/saving bars are shown too"})

    def __post_init__(self) -> None:
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"--log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")


def configure_logging(level: str = "warning") -> None:
    """Quiet by default: transformers, datasets and accelerate log at `level`; at warning and
    above their deprecation warnings and the "Loading weights" / "Writing model shards" bars are
    off (download bars of huggingface_hub stay, since a download can take minutes)."""
    if level not in LOG_LEVELS:
        raise ValueError(f"--log_level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    verbose = level in ("debug", "info")
    number = getattr(logging, level.upper())
    logging.basicConfig(level=number, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(number)
    for name in ("transformers", "datasets", "accelerate", "peft", "huggingface_hub"):
        logging.getLogger(name).setLevel(number)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(number)
        hf_logging.enable_progress_bar() if verbose else hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    if not verbose:
        for category in (FutureWarning, DeprecationWarning):
            for library in ("transformers", "accelerate", "peft", "torch"):
                warnings.filterwarnings("ignore", category=category, module=rf"{library}(\.|$)")


def read_config_file(path: str) -> dict[str, Any]:
    """The options in a YAML (.yaml/.yml) or JSON file: a mapping of option name to value."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as error:  # yaml.YAMLError, json.JSONDecodeError
        raise ValueError(f"--config {path}: not valid {'YAML' if file.suffix.lower() in ('.yaml', '.yml') else 'JSON'} "
                         f"({' '.join(str(error).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: must hold a mapping of option names to values, got {type(data).__name__}")
    return data


def apply_config_file(parser, path: str, config_class: type) -> None:
    """Make the file's values the parser's defaults, so flags on the command line override them.
    An unknown option names the file and the option."""
    data = read_config_file(path)
    known = {f.name for f in fields(config_class)} | {f.name for f in fields(CommonOptions)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"--config {path}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                         f"(prm {parser.prog.split()[-1]} --help lists the options)")
    data.pop("config", None)
    for action in parser._actions:
        if action.dest in data and action.type is not None:  # not the value-less --no_X twin of a boolean
            data[action.dest] = _file_value(action, data[action.dest], path)
            action.required = False  # given by the file
    parser.set_defaults(**data)


def _file_value(action, value: Any, path: str) -> Any:
    """A value of the file read as its flag reads it: argparse converts only string defaults, so
    `k: 2.5` reached an int option as 2.5 and YAML's `seeds: 0` a text option as the int 0."""
    from argparse import ArgumentTypeError

    name = action.dest
    if value is None:  # the option's default (a saved config holds `resume: null`); a required one has none
        if action.required:
            raise ValueError(f"--config {path}: {name} needs a value, got null")
        return action.default
    if isinstance(value, (dict, list)):
        raise ValueError(f"--config {path}: {name} takes one value, got a {'mapping' if isinstance(value, dict) else 'list'}")
    try:
        return action.type(value if isinstance(value, str) else str(value))
    except (ValueError, TypeError, ArgumentTypeError):
        kind = getattr(action.type, "__name__", "")
        raise ValueError(f"--config {path}: {name}: invalid {'boolean' if kind == 'string_to_bool' else kind} "
                         f"value {value!r}") from None


def check_device(device: str, *, allow_auto: bool = False) -> None:
    """Refuse a --device that torch cannot use on this machine, before any model or file is read:
    torch answers an unknown device with a RuntimeError and CUDA in a build without it with an
    AssertionError, both a traceback at the user. Empty means the command picks one."""
    if not device or (allow_auto and device == "auto"):
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:1, mps, ...)") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count or (parsed.index is not None and parsed.index >= count):
            raise ValueError(f"--device {device}: this machine has {count} CUDA device{'' if count == 1 else 's'} "
                             "(leave --device empty for cuda if available, else cpu)")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available on this machine")


def config_file_argument(argv: list[str]) -> str | None:
    """The value of --config in `argv` (before parsing), or None."""
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def config_file_name(command: str) -> str:
    """Where a run of `prm <command>` keeps its resolved config in its output folder."""
    return f"{command.replace('-', '_')}_config.json"


# Their recipes write the config at the start of a run, and a resumed run keeps the one it started with.
WRITE_THEIR_OWN_CONFIG = ("train", "sft", "ppo")


def save_resolved_config(command: str, config: Any) -> Path | None:
    """Write the resolved config (every option, defaults included) into the output folder of a
    command that has one, unless the recipe wrote it itself; `prm <command> --config <that file>`
    repeats the run. It replaces the config of an earlier run in the folder (`prm demo` reuses its
    folder), whose options no longer made what the folder holds."""
    from dataclasses import is_dataclass

    from prm.recipe import saved_config

    output_dir = getattr(config, "output_dir", None)
    if not output_dir or not is_dataclass(config) or not Path(output_dir).is_dir():
        return None
    path = Path(output_dir) / config_file_name(command)
    if command not in WRITE_THEIR_OWN_CONFIG or not path.exists():
        path.write_text(json.dumps(saved_config(config), indent=2) + "\n", encoding="utf-8")
    return path
