"""Loading a policy: a causal LM and its tokenizer by path, hub id or alias, or a fresh tiny model."""

from __future__ import annotations

TINY_PREFIX = "tiny:"


def load_policy(name_or_path: str, *, trust_remote_code: bool = False, dtype=None):
    """(model, tokenizer) of a causal LM by path or hub id (aliases resolved), with a pad token
    (the EOS when the tokenizer has none: batched sampling and SFT batches need one).

    `dtype` None keeps the checkpoint's; the training recipes pass torch.float32, so that AdamW
    keeps float32 master weights (on bf16 weights most small updates round away) and
    `--mixed_precision` only sets the compute dtype."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from generation.hub import resolve_model

    resolved = resolve_model(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(resolved, trust_remote_code=trust_remote_code, use_safetensors=True,
                                                 **({} if dtype is None else {"dtype": dtype}))
    return model, tokenizer


def build_policy(model_name: str, texts: list[str], *, vocab_size: int = 512, seed: int = 0,
                 trust_remote_code: bool = False, dtype=None):
    """(model, tokenizer): a fresh `tiny:<size>` model with a tokenizer trained on `texts`,
    or a pretrained causal LM loaded by path / hub id."""
    if model_name.startswith(TINY_PREFIX):
        from generation.tiny import build_tiny_causal_lm, train_tokenizer

        tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
        return build_tiny_causal_lm(tokenizer, size=model_name[len(TINY_PREFIX):], seed=seed), tokenizer
    return load_policy(model_name, trust_remote_code=trust_remote_code, dtype=dtype)
