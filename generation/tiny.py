"""Tiny models for CPU runs, tests and the demo: a tokenizer trained locally and a
Qwen2-style model built from a config, saved and reloaded through `from_pretrained`
exactly as a hub model would be.

The tokenizer splits every digit into its own token (arithmetic is learnable at this
scale only then) and keeps the step separator "\\n" a single token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"

# name -> (hidden, layers, heads, kv heads, mlp); "small" is about 0.8 M parameters with a
# 512-token vocabulary, "tiny" about 0.1 M (tests).
SIZES: dict[str, tuple[int, int, int, int, int]] = {
    "tiny": (32, 2, 4, 2, 64),
    "small": (128, 4, 4, 2, 384),
    "base": (256, 6, 8, 4, 768),
}


# A run of letters, of punctuation or of whitespace is one word to the byte-level pre-tokenizer,
# and BPE training time grows about 4-5x per doubling of a word's length (a 2 MB run-on word in
# a record took about an hour), so training sees each such run cut to its first LONGEST_RUN
# characters. No word of real text is that long; the trained tokenizer still encodes any text.
LONGEST_RUN = 64
_LONG_RUN = re.compile(rf"[^\W\d_]{{{LONGEST_RUN + 1},}}|(?:[^\w\s]|_){{{LONGEST_RUN + 1},}}|\s{{{LONGEST_RUN + 1},}}")


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """A byte-level BPE tokenizer trained on `texts`, one token per digit.

    Returns a `transformers.PreTrainedTokenizerFast` with EOS and PAD set.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    cut = [_LONG_RUN.sub(lambda run: run.group()[:LONGEST_RUN], text) for text in texts]
    tokenizer.train_from_iterator(cut, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, padding_side="right"
    )


def tiny_config(tokenizer, size: str = "tiny", max_positions: int = 512):
    """A `Qwen2Config` of the named size for `tokenizer`."""
    from transformers import Qwen2Config

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    hidden, layers, heads, kv_heads, mlp = SIZES[size]
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_causal_lm(tokenizer, size: str = "tiny", seed: int = 0, max_positions: int = 512):
    """A randomly initialised `Qwen2ForCausalLM` (seeded) for `tokenizer`."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    return Qwen2ForCausalLM(tiny_config(tokenizer, size, max_positions))


def save_tiny_causal_lm(path: str | Path, texts: Iterable[str], size: str = "tiny", seed: int = 0,
                        vocab_size: int = 512) -> Path:
    """Train a tokenizer on `texts`, build a model, save both to `path` (safetensors).

    Load it back with `AutoModelForCausalLM.from_pretrained(path)` like any hub model.
    """
    path = Path(path)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    model = build_tiny_causal_lm(tokenizer, size=size, seed=seed)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
