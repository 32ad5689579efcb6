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
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise ValueError("--tensorboard needs the tensorboard package: pip install 'prm-toolkit[tensorboard]'")


class MetricsLogger:
    """metrics.jsonl always (one JSON object per line, flushed as written), tensorboard when asked."""

    def __init__(self, output_dir: Path, tensorboard: bool = False):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(output_dir) / "tensorboard"))

    def log(self, step: int, values: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(dumps({"step": step, **values}) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
