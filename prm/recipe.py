"""Plumbing shared by the recipes (SFT, reward-model training, PPO): JSON that stays valid and
the metrics log. Small on purpose; each recipe's loop stays in its own module."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def json_safe(value: Any) -> Any:
    """`value` with every NaN / inf float replaced by None, so `json.dumps` writes valid JSON
    (a metric that could not be computed, e.g. an AUC with one class, reads as null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def dumps(value: Any, **kwargs) -> str:
    """`json.dumps` that refuses NaN: non-finite floats are written as null."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)


def require_tensorboard(enabled: bool) -> None:
    """Fail before any folder is made when tensorboard logging is asked for but not installed."""
    if enabled:
        from prm.outputs import check_report_to

        check_report_to("tensorboard")


class MetricsLogger:
    """metrics.jsonl always (one JSON object per line, flushed as written), and the trackers asked
    for (`--report_to`, through accelerate's tracker classes; see prm.outputs.Trackers)."""

    def __init__(self, output_dir: Path, tensorboard: bool = False, *, trackers: list[str] | None = None,
                 command: str = "train", config: dict | None = None):
        from prm.outputs import Trackers

        self.path = Path(output_dir) / "metrics.jsonl"
        names = list(dict.fromkeys([*(trackers or []), *(["tensorboard"] if tensorboard else [])]))
        self.trackers = Trackers(names, output_dir, command=command, config=config)

    def log(self, step: int, values: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(dumps({"step": step, **values}) + "\n")
        self.trackers.log(values, step)

    def close(self) -> None:
        self.trackers.close()


# ------------------------------------------------------------------------------ output folders and resume
RUN_FILE = "run.json"  # inside each checkpoint: what the run was made from


def check_output_dir(output_dir: Path, *, overwrite: bool, resuming: bool, written: tuple[str, ...]) -> None:
    """Refuse to start a fresh run in a folder that holds something, unless told to overwrite
    (the transformers convention). Overwriting removes `written` (this recipe's own outputs, e.g.
    checkpoints/ and metrics.jsonl), so a stale checkpoint can never be resumed into the new run."""
    import shutil

    output_dir = Path(output_dir)
    if resuming or not output_dir.is_dir() or not any(output_dir.iterdir()):
        return
    if not overwrite:
        raise ValueError(f"output folder {output_dir} is not empty; pass --overwrite_output_dir to replace its run, "
                         "or --resume latest to continue it")
    for name in written:
        target = output_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (the data fingerprint of a run)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_fingerprint(config: Any, *, ignore: tuple[str, ...], data_fields: tuple[str, ...]) -> dict[str, Any]:
    """The config fields that decide a run's result (all but `ignore`), plus a digest of each
    data file named by `data_fields`; two runs with equal fingerprints train the same model."""
    from dataclasses import asdict

    fields = {key: value for key, value in asdict(config).items() if key not in ignore}
    for name in data_fields:
        value = getattr(config, name, None)
        if value and Path(value).is_file():
            fields[f"{name}_sha256"] = file_digest(value)
    return json_safe(fields)


def write_run_file(checkpoint_dir: Path, fingerprint: dict[str, Any]) -> None:
    (Path(checkpoint_dir) / RUN_FILE).write_text(dumps(fingerprint, indent=2, sort_keys=True) + "\n")


def check_resume(checkpoint_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse a checkpoint made by a different run, naming what differs."""
    path = Path(checkpoint_dir) / RUN_FILE
    if not path.is_file():
        raise ValueError(f"{checkpoint_dir} records no {RUN_FILE}, so it cannot be checked against this run; "
                         "start a fresh run (--overwrite_output_dir)")
    stored = json.loads(path.read_text())
    differences = [f"{key}: checkpoint {stored.get(key)!r}, now {fingerprint.get(key)!r}"
                   for key in sorted(set(stored) | set(fingerprint)) if stored.get(key) != fingerprint.get(key)]
    if differences:
        raise ValueError(f"{checkpoint_dir} was made by a different run ({'; '.join(differences)})")
