"""Size and time limits for parsing and evaluating untrusted math text.

Every refusal is an exception with a message saying which limit was hit, so callers (and
users reading a verdict's reason) know why a step could not be checked. The time budget is
a deadline that the parser and evaluators poll; it needs no signals, so it works in
threads and worker processes alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


class ParseError(ValueError):
    """The text is not an expression our grammar accepts (or uses an unsupported construct)."""


class LimitError(ParseError):
    """The text is refused because it exceeds a size, depth, magnitude or time limit."""


@dataclass(frozen=True)
class Limits:
    """Bounds applied to one parse + evaluation.

    max_chars: longest expression text accepted.
    max_depth: deepest nesting of brackets, unary signs and powers (recursion guard).
    max_digits: longest number literal, and largest exact result (in decimal digits).
    max_exponent: largest |exponent| applied to a base other than 0, 1, -1.
    max_factorial: largest n for n!.
    time_budget: seconds allowed for one call before it is abandoned.
    """

    max_chars: int = 5_000
    max_depth: int = 60
    max_digits: int = 2_000
    max_exponent: int = 10_000
    max_factorial: int = 500
    time_budget: float = 0.5

    @property
    def max_bits(self) -> int:
        # 10**d < 2**(3.33 d); integers beyond this many bits exceed max_digits.
        return int(self.max_digits * 3.33) + 1


DEFAULT_LIMITS = Limits()


class Deadline:
    """A wall-clock budget polled by long loops; `check()` raises LimitError once spent."""

    __slots__ = ("expires",)

    def __init__(self, seconds: float):
        self.expires = time.perf_counter() + seconds

    def check(self) -> None:
        if time.perf_counter() > self.expires:
            raise LimitError("time budget exceeded")
