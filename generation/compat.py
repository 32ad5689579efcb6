"""Calls into transformers that read the same on every supported version (4.46 to 5.x).

transformers 5 renamed the key-value cache argument and output field `past_key_values` to
`cache` and warns on every call that uses the old name; these helpers pick the name the model
in hand takes, so the toolkit's own calls print no deprecation warning on either version.
"""

from __future__ import annotations

import inspect
from typing import Any

_TAKES_CACHE: dict[type, bool] = {}


def _unwrap(model):
    """The transformers model under DDP / peft wrappers."""
    while hasattr(model, "module") and not hasattr(model, "config"):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def takes_cache(model) -> bool:
    """True when `model.forward` names its key-value cache argument `cache` (transformers >= 5.x)."""
    model = _unwrap(model)
    kind = type(model)
    if kind not in _TAKES_CACHE:
        try:
            _TAKES_CACHE[kind] = "cache" in inspect.signature(model.forward).parameters
        except (TypeError, ValueError):
            _TAKES_CACHE[kind] = False
    return _TAKES_CACHE[kind]


def cache_kwargs(model, cache) -> dict[str, Any]:
    """`{"cache": cache}` or `{"past_key_values": cache}` as `model` expects; `{}` when `cache` is None."""
    if cache is None:
        return {}
    return {"cache": cache} if takes_cache(model) else {"past_key_values": cache}


def output_cache(output) -> Any:
    """The cache a model returned, read without the deprecated `past_key_values` property."""
    fields = getattr(type(output), "__dataclass_fields__", {})
    if "cache" in fields:
        return output.get("cache")
    return output.get("past_key_values") if hasattr(output, "get") else getattr(output, "past_key_values", None)
