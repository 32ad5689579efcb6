"""Hub datasets for every command that reads records: a thin layer in front of the readers.

    prm score --model runs/prm --input trl-lib/math_shepherd:test
    prm sft --data me/reference-solutions

An option that names a hub dataset (`owner/name`, optionally `:split`, default `train`) rather than a
local file is read with `datasets.load_dataset`, written once to a JSONL under
`$PRM_DATA_CACHE` (default `~/.cache/prm-toolkit/datasets/<owner>/<name>/<split>.jsonl`), and that
file is what the command reads, so hub rows get the command's own validation (an error names the
file, whose path holds the dataset id, and the row as its line). `prm train` reads hub ids itself
(`tasks.math.loaders.load_step_dataset`). Offline (`HF_HUB_OFFLINE=1`, or the hub unreachable) a
dataset that is not cached fails at once in one line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

# command -> the options that name record files
RECORD_OPTIONS: dict[str, tuple[str, ...]] = {
    "score": ("input",), "label": ("input",), "rerank": ("input",), "search": ("problems",),
    "eval-search": ("problems",), "sft": ("data",), "ppo": ("data", "eval_data"),
}
# command -> the options whose hub ids the command reads itself (prm train's load_step_dataset
# recognises Math-Shepherd, PRM800K, ... from the rows): only checked to be reachable here
READ_BY_THE_COMMAND: dict[str, tuple[str, ...]] = {"train": ("data", "eval_data")}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.\-\[\]%:+]+)?")
_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".txt")


def is_hub_dataset(source: str | None) -> bool:
    """True for `owner/name[:split]` that is not a local file, a file name or `synthetic[:preset]`."""
    if not source or source == "synthetic" or source.startswith("synthetic:") or os.path.exists(source):
        return False
    if source.split(":", 1)[0].lower().endswith(_FILE_SUFFIXES):
        return False
    from generation.hub import looks_local

    return _HUB_ID.fullmatch(source) is not None and not looks_local(source.split(":", 1)[0])


def cache_root() -> Path:
    if os.environ.get("PRM_DATA_CACHE"):
        return Path(os.environ["PRM_DATA_CACHE"])
    from generation.hub import cache_dir

    return cache_dir() / "datasets"


def _offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


def _require_reachable(source: str, *, option: str) -> None:
    """Fail at once when the hub cannot be reached and offline mode is not set (datasets would
    retry for half a minute)."""
    if not _offline() and not _hub_reachable():
        raise ValueError(f"--{option} {source}: not a local file, and the hub cannot be reached (offline?); "
                         "give a local JSONL, or set HF_HUB_OFFLINE=1 to use a copy in the datasets cache")


def local_copy(source: str, *, option: str) -> str:
    """The JSONL path that holds hub dataset `source` (fetched once), for the option `--option`."""
    dataset_id, _, split = source.partition(":")
    split = split or "train"
    target = cache_root() / dataset_id / f"{split}.jsonl"
    if target.is_file():
        return str(target)
    offline = _offline()
    _require_reachable(source, option=option)
    import datasets

    try:
        rows = datasets.load_dataset(dataset_id, split=split)
    except Exception as error:  # DatasetNotFoundError, ConnectionError, FileNotFoundError, ...
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        hint = " (offline: HF_HUB_OFFLINE is set and it is not in the datasets cache)" if offline else ""
        raise ValueError(f"--{option} {source}: not a local file, and the hub dataset could not be loaded{hint}: "
                         f"{reason}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    # A partial file of this writer's own: two commands fetching the same dataset at once wrote
    # into one and interleaved their rows.
    partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.partial")
    try:
        with partial.open("x", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(dict(row), ensure_ascii=False, default=str) + "\n")
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return str(target)


def with_local_records(command: str, config: Any) -> Any:
    """`config` with every record option that names a hub dataset replaced by its local copy
    (options the command reads itself are only checked to be reachable)."""
    for name in READ_BY_THE_COMMAND.get(command, ()):
        if is_hub_dataset(getattr(config, name, None)):
            _require_reachable(getattr(config, name), option=name)
    changes = {name: local_copy(getattr(config, name), option=name)
               for name in RECORD_OPTIONS.get(command, ()) if is_hub_dataset(getattr(config, name, None))}
    return dataclasses.replace(config, **changes) if changes else config
