"""The one function that turns a prompt and its steps into token ids with score positions.

Layout (``sep`` = the separator's ids, tokenized on its own)::

    [specials] prompt sep  step_0 sep  step_1 sep  ...  step_{n-1} sep
                                  ^ step_ends[0]  ^ step_ends[1]        ^ step_ends[n-1]

Every piece is tokenized separately and the ids are concatenated, so a step's ids never
depend on its neighbours: appending a step never changes earlier ids (prefix scoring and KV
caches rely on this), and the label position is exactly the last separator token of its step.
A BPE tokenizer may tokenize "\\n" differently inside running text; this layout never asks it to.

A prompt that already ends with the separator (``policy_prompt`` ends with "\\n") gets no second
one: the trailing separator is cut off and its ids appended, so both spellings encode the same.
Leading special tokens the tokenizer adds to a text (a BOS) are kept at the very start.

A step is read stripped, and one that contains the separator ("3 + 4 = 8\\n8 - 2 = 6", a paragraph
of two lines) is read with each inner separator as one space (`step_text`): the model reads every
separator as the end of a step, so otherwise its score would cover the last line only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EncodedSteps:
    """input_ids: the whole sequence. step_ends[i]: index of the last separator token of step i,
    for the steps that fit in max_length (a prefix of the steps). n_dropped: steps whose separator
    fell beyond max_length (they lose their label; nothing is shifted). prompt_length: ids before
    the first step (specials + prompt + separator)."""

    input_ids: list[int]
    step_ends: list[int]
    n_dropped: int = 0
    prompt_length: int = 0


def separator_ids(tokenizer, separator: str) -> list[int]:
    """The ids of the separator tokenized on its own (one token for "\\n" in most tokenizers)."""
    ids = tokenizer.encode(separator, add_special_tokens=False)
    if not ids:
        raise ValueError(f"the tokenizer encodes the separator {separator!r} to no tokens")
    return ids


def leading_special_ids(tokenizer) -> list[int]:
    """Special ids the tokenizer puts before a text (e.g. [BOS] for Llama, [] for Qwen)."""
    plain = tokenizer.encode("x", add_special_tokens=False)
    full = tokenizer.encode("x", add_special_tokens=True)
    if not plain or plain[0] not in full:
        return []
    return full[: full.index(plain[0])]


def step_text(step: str, separator: str) -> str:
    """The step as the model reads it: stripped, and a separator inside it becomes one space,
    with the whitespace around it (" a\\nb " -> "a b" for separator "\\n"). Stripped because
    `split_steps` strips the steps of a completion for scoring, and a record's or a policy's steps
    must reach the model as the same text."""
    body = step.strip()
    if separator not in body:
        return body
    return " ".join(part.strip() for part in body.split(separator) if part.strip())


def encode_steps(tokenizer, prompt: str, steps: list[str], settings, max_length: int | None = None) -> EncodedSteps:
    """Encode `prompt` and `steps` as the module docstring shows.

    settings: anything with a `.separator` (a `RewardSettings`). max_length: truncate the ids to
    this many tokens; a step whose separator token lies at index >= max_length is dropped from
    `step_ends` and counted in `n_dropped`.
    """
    separator = settings.separator
    sep = separator_ids(tokenizer, separator)
    ids = list(leading_special_ids(tokenizer))
    body = prompt[: -len(separator)] if prompt.endswith(separator) else prompt
    if body:
        ids += tokenizer.encode(body, add_special_tokens=False)
    if prompt:
        ids += sep
    prompt_length = len(ids)
    step_ends: list[int] = []
    for step in steps:
        ids += tokenizer.encode(step_text(step, separator), add_special_tokens=False)
        ids += sep
        step_ends.append(len(ids) - 1)
    if max_length is None or len(ids) <= max_length:
        return EncodedSteps(ids, step_ends, 0, prompt_length)
    kept = [end for end in step_ends if end < max_length]
    return EncodedSteps(ids[:max_length], kept, len(step_ends) - len(kept), min(prompt_length, max_length))
