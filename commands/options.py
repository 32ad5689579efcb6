"""Parsing helpers for command-line options that dataclass fields cannot express directly."""

from __future__ import annotations


def int_list(text: str, option: str) -> list[int]:
    """"1,2,4" -> [1, 2, 4]; a clear error naming the option otherwise."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--{option} must be comma-separated integers, got {text!r}") from None
