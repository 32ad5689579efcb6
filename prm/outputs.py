"""What a training run leaves for others: trackers, the model card, the hub.

Shared by `prm train`, `prm sft` and `prm ppo` (their configs inherit `OutputOptions`):

    prm train ... --report_to tensorboard,wandb     # accelerate's tracker classes; metrics.jsonl always
    prm train ... --push_to_hub --hub_model_id me/my-prm

Every output folder gets a `README.md` model card (base model, data with record counts and label
sources, objective, steps, held-out metrics, the command that made it, the toolkit version);
`--push_to_hub` uploads the model folder (`upload_plan` lists what goes: checkpoints and logs of
the run stay local), like transformers' `TrainingArguments.push_to_hub`.
"""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

TRACKERS = ("tensorboard", "wandb", "trackio")
# What never goes to the hub: resumable state and the run's own logs (they stay in the folder).
HUB_IGNORE = ("checkpoint/*", "checkpoint/**", "checkpoints/*", "checkpoints/**", "*.partial/**", "tensorboard/**",
              "wandb/**", ".git/**")


@dataclass
class OutputOptions:
    """Tracker and hub options of every training recipe (transformers' TrainingArguments names)."""

    report_to: str = field(default="none", metadata={"help": "Trackers, comma-separated: tensorboard | wandb | trackio | none (through accelerate's trackers; metrics.jsonl is always written)"})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the trained model folder (with its README.md model card) to the Hugging Face hub at the end"})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository for --push_to_hub, e.g. me/my-prm (default: the output folder's name, under your user)"})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the hub repository as private"})

    def __post_init__(self) -> None:
        check_report_to(self.report_to)


# ------------------------------------------------------------------------------------------ trackers
def package_available(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def parse_report_to(value: str | None) -> list[str]:
    names = [part.strip().lower() for part in (value or "").split(",") if part.strip()]
    names = [name for name in names if name != "none"]
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise ValueError(f"--report_to takes tensorboard, wandb, trackio or none (comma-separated), got {', '.join(unknown)}")
    return list(dict.fromkeys(names))


def check_report_to(value: str | None, *, tensorboard: bool = False) -> list[str]:
    """The trackers asked for; a missing package fails here, in one line naming the extra to install
    (the configs call this when they are made, so before any folder exists)."""
    names = parse_report_to(value) + (["tensorboard"] if tensorboard else [])
    names = list(dict.fromkeys(names))
    for name in names:
        if not package_available(name):
            raise ValueError(f"--report_to {name} needs the {name} package: pip install 'prm-toolkit[{name}]'")
    return names


def trackers_of(config: Any) -> list[str]:
    """The trackers of a recipe config: --report_to, plus tensorboard for train's --tensorboard alias."""
    return check_report_to(getattr(config, "report_to", "none"), tensorboard=bool(getattr(config, "tensorboard", False)))


class Trackers:
    """accelerate's tracker classes (`accelerate.tracking.LOGGER_TYPE_TO_CLASS`), started and given
    the run config as `Accelerator.init_trackers` does; call on the main process only. Tensorboard
    writes to <output_dir>/tensorboard; wandb and trackio log to project "prm-toolkit", run named
    "<command>:<output folder name>"."""

    def __init__(self, names: list[str], output_dir: str | Path, *, command: str, config: dict | None = None):
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        self.trackers = []
        output_dir = Path(output_dir)
        for name in names:
            tracker_class = LOGGER_TYPE_TO_CLASS[name]
            if tracker_class.requires_logging_directory:
                tracker = tracker_class("tensorboard", str(output_dir))
            else:
                tracker = tracker_class("prm-toolkit", name=f"{command}:{output_dir.name}")
            tracker.start()
            if config is not None:
                tracker.store_init_configuration(_hparams(config))
            self.trackers.append(tracker)

    def log(self, values: dict[str, Any], step: int) -> None:
        import math

        scalars = {key: value for key, value in values.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}
        for tracker in self.trackers:
            tracker.log(scalars, step=step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def _hparams(config: dict) -> dict:
    """Config values trackers take as hyperparameters (bool, str, int, float; None as "")."""
    return {key: ("" if value is None else value if isinstance(value, (bool, str, int, float)) else str(value))
            for key, value in config.items()}


# ------------------------------------------------------------------------------------------ model card
def label_source_counts(data: str) -> dict[str, int | None]:
    """Step labels by source in a step-labelled JSONL (`label_sources`, as `prm label` writes);
    {"as given in the data": n} when the records name none, {"synthetic generator": None} for
    synthetic:<preset>, {} for a hub data set (not read twice)."""
    if data.startswith("synthetic:"):
        return {"synthetic generator": None}
    path = Path(data)
    if not path.is_file():
        return {}
    counts: dict[str, int] = {}
    given = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict):
                continue
            sources = row.get("label_sources")
            if isinstance(sources, list):
                for source in sources:
                    counts[str(source)] = counts.get(str(source), 0) + 1
            elif isinstance(row.get("labels"), list):
                given += len(row["labels"])
            elif "label" in row:
                given += 1
    if given:
        counts["as given in the data"] = given
    return counts


def command_line(command: str, config: Any) -> str:
    """`prm <command>` with every option that differs from its default: the run, repeatable (a
    resume is left out: the line repeats the whole run, and in another folder finds no checkpoint)."""
    import shlex

    parts = ["prm", command]
    for item in fields(config):
        if item.name in ("resume", "overwrite_output_dir", "overwrite_output"):
            continue
        value = getattr(config, item.name)
        default = item.default if item.default_factory is MISSING else item.default_factory()
        if value == default:
            continue
        if isinstance(value, bool):
            parts.append(f"--{item.name}" if value else f"--no_{item.name}")
        else:
            parts += [f"--{item.name}", "" if value is None else str(value)]
    return " ".join(shlex.quote(part) for part in parts)


def _is_hub_id(name: str | None) -> bool:
    return bool(name) and re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None and not Path(name).exists()


def model_card(*, command: str, config: Any, kind: str, base_model: str, data: dict[str, Any], objective: str,
               steps: str, metrics: dict[str, Any] | None, usage: str, config_file: str) -> str:
    """The README.md of an output folder (hub model-card format: YAML front matter, then markdown)."""
    from prm import __version__

    tags = ["prm-toolkit", kind.replace(" ", "-"), "math-reasoning"]
    front = ["---", "library_name: transformers", "tags:"] + [f"- {tag}" for tag in tags]
    if _is_hub_id(base_model):
        front.append(f"base_model: {base_model}")
    datasets = [source for source in (data.get("source"), data.get("eval_source")) if _is_hub_id(source)]
    if datasets:
        front += ["datasets:"] + [f"- {source}" for source in datasets]
    front.append("---")
    lines = [*front, "", f"# {Path(str(getattr(config, 'output_dir', kind))).name}", "",
             f"A {kind} trained with prm-toolkit {__version__} (`prm {command}`).", "",
             "| | |", "|---|---|",
             f"| Base model | `{base_model}` |",
             f"| Objective | {objective} |",
             f"| Training | {steps} |",
             f"| Toolkit | prm-toolkit {__version__} |", "",
             "## Data", "", f"- training data: `{data.get('source')}`"]
    if data.get("eval_source"):
        lines.append(f"- held-out data: `{data['eval_source']}`")
    for key, value in data.items():
        if key in ("source", "eval_source"):
            continue
        if isinstance(value, dict):
            shown = ", ".join(f"{name}: {count}" if count is not None else name for name, count in value.items())
            lines.append(f"- {key}: {shown or 'not recorded'}")
        else:
            lines.append(f"- {key}: {value}")
    lines += ["", "## Held-out metrics", ""]
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |"
                  for key, value in metrics.items()]
    else:
        lines.append("None were computed in this run.")
    lines += ["", "## Use", "", "```python", usage.strip(), "```", "",
              "## How it was made", "", "```bash", command_line(command, config), "```", "",
              f"The resolved options are in `{config_file}`; `prm {command} --config {config_file} --output_dir DIR` "
              "repeats the run in DIR (or, in this folder, `--overwrite_output_dir`, which replaces this run).", ""]
    return "\n".join(lines)


def upload_plan(folder: str | Path) -> list[str]:
    """The files `--push_to_hub` uploads from `folder` (relative paths, sorted): everything but
    checkpoints, tracker logs and partial saves (`HUB_IGNORE`)."""
    from fnmatch import fnmatch

    folder = Path(folder)
    files = [path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()]
    return sorted(path for path in files if not any(fnmatch(path, pattern) for pattern in HUB_IGNORE))


def push_to_hub(folder: str | Path, config: Any, *, command: str) -> str:
    """Upload `folder` to `config.hub_model_id` (default: the output folder's name) as transformers'
    `push_to_hub` does; returns the repository id."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    repo_id = config.hub_model_id or Path(config.output_dir).name
    api = HfApi()
    repo_id = str(getattr(api.create_repo(repo_id, exist_ok=True, private=config.hub_private_repo), "repo_id", repo_id))
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), ignore_patterns=list(HUB_IGNORE),
                      commit_message=f"prm {command}: {Path(config.output_dir).name} (prm-toolkit)")
    print(f"prm {command}: pushed {folder} to https://huggingface.co/{repo_id}")
    return repo_id


def finish_run(model_dir: str | Path, config: Any, *, command: str, output_dir: str | Path | None = None,
               **card: Any) -> Path:
    """Write the model card into `model_dir` (and `output_dir` when that is another folder), then push
    `model_dir` if `--push_to_hub`. Main process only."""
    text = model_card(command=command, config=config, **card)
    model_dir = Path(model_dir)
    for folder in {model_dir, Path(output_dir or model_dir)}:
        (folder / "README.md").write_text(text, encoding="utf-8")
    if getattr(config, "push_to_hub", False):
        push_to_hub(model_dir, config, command=command)
    return model_dir / "README.md"
