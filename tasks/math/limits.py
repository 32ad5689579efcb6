"""Length limits shared by scoring, generation, search and PPO: an input longer than a model's
positions is never run through it (it would give silent garbage, or allocate without bound)."""

from __future__ import annotations


class TooLong(ValueError):
    """An input does not fit in a model's positions; the caller skips it with a counted warning."""

    def __init__(self, tokens: int, limit: int, what: str = "input"):
        super().__init__(f"{what} of {tokens} tokens does not fit the model's {limit} positions")
        self.tokens, self.limit = tokens, limit


def max_positions(model) -> int | None:
    """The most positions `model` (or its backbone) can read: config.max_position_embeddings
    (n_positions for GPT-2 style configs); None when the config states none."""
    seen = set()
    while model is not None and id(model) not in seen:
        seen.add(id(model))
        config = getattr(model, "config", None)
        for name in ("max_position_embeddings", "n_positions"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        model = getattr(model, "backbone", None) or getattr(model, "model", None)
    return None
