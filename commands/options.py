"""Parsing helpers for command-line options that dataclass fields cannot express directly."""

from __future__ import annotations


def int_list(text: str, option: str, minimum: int = 0) -> list[int]:
    """"1,2,4" -> [1, 2, 4] (a blank text: []); a clear error naming the option for an empty,
    repeated, non-integer or below-`minimum` item. A seed or N given twice would be counted twice
    in a mean over seeds, and "1,,4" is a typo, not a list of two."""
    if not text.strip(" ,"):
        return []
    items = [part.strip() for part in text.split(",")]
    try:
        values = [int(item) for item in items]
    except ValueError:
        raise ValueError(f"--{option} must be comma-separated integers, got {text!r}") from None
    if any(value < minimum for value in values):
        raise ValueError(f"--{option} takes integers >= {minimum}, got {text!r}")
    if len(set(values)) < len(values):
        raise ValueError(f"--{option} names an item twice: {text!r}")
    return values
