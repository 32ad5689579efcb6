"""RewardModel: head types, objectives, save -> load -> identical scores, LoRA."""

import pytest
import torch

from prm.encoding import encode_steps
from prm.modeling import RewardModel, RewardSettings
from generation.tiny import build_tiny_causal_lm, train_tokenizer

TEXTS = ["Question: 3 + 4?\nSolution:\n3 + 4 = 7\nThe answer is 7\n", "2 * 5 = 10 + - ok\n"] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=300)


def _batch(tokenizer, settings):
    rows = [encode_steps(tokenizer, "Question: 3 + 4?", ["3 + 4 = 7", "The answer is 7"], settings),
            encode_steps(tokenizer, "Question: 2 * 5?", ["2 * 5 = 11"], settings)]
    width = max(len(row.input_ids) for row in rows)
    input_ids = torch.full((2, width), tokenizer.pad_token_id)
    mask = torch.zeros((2, width), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, : len(row.input_ids)] = torch.tensor(row.input_ids)
        mask[index, : len(row.input_ids)] = 1
    return input_ids, mask, rows


@pytest.mark.parametrize(
    "settings",
    [
        RewardSettings(head="classification", num_labels=1),
        RewardSettings(head="classification", num_labels=2),
        RewardSettings(head="plus_minus"),
        RewardSettings(objective="joint"),
        RewardSettings(objective="orm"),
    ],
    ids=["cls1", "cls2", "plus_minus", "joint", "orm"],
)
def test_save_load_gives_identical_scores(tmp_path, tokenizer, settings):
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, seed=1), settings, tokenizer=tokenizer).eval()
    input_ids, mask, rows = _batch(tokenizer, settings)
    with torch.no_grad():
        before = model(input_ids, attention_mask=mask)
    assert before.step_logits.shape == input_ids.shape
    assert (before.outcome_logits is not None) == settings.has_outcome_head
    model.save_pretrained(tmp_path / "rm")
    loaded = RewardModel.from_pretrained(tmp_path / "rm")
    assert loaded.settings == model.settings
    with torch.no_grad():
        after = loaded(input_ids, attention_mask=mask)
    assert torch.equal(before.step_logits, after.step_logits)
    if settings.has_outcome_head:
        assert torch.equal(before.outcome_logits, after.outcome_logits)


def test_plus_minus_head_is_difference_of_lm_logits(tokenizer):
    causal_lm = build_tiny_causal_lm(tokenizer, seed=2).eval()
    model = RewardModel.from_backbone(causal_lm, RewardSettings(head="plus_minus"), tokenizer=tokenizer).eval()
    input_ids, mask, _ = _batch(tokenizer, model.settings)
    with torch.no_grad():
        lm_logits = causal_lm(input_ids=input_ids, attention_mask=mask).logits
        step_logits = model(input_ids, attention_mask=mask).step_logits
    plus, minus = tokenizer.convert_tokens_to_ids("+"), tokenizer.convert_tokens_to_ids("-")
    torch.testing.assert_close(step_logits, lm_logits[..., plus] - lm_logits[..., minus])


def test_lora_keeps_heads_trainable_and_saves_merged(tmp_path, tokenizer):
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, seed=3), RewardSettings(objective="joint"))
    model.add_lora(r=4, alpha=8)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in name for name in trainable)
    assert {"step_head.weight", "outcome_head.weight"} <= trainable
    assert not any("embed_tokens" in name for name in trainable)
    # Make the adapter non-trivial, then check the merged save reproduces the adapted scores.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    model.eval()
    input_ids, mask, _ = _batch(tokenizer, model.settings)
    with torch.no_grad():
        adapted = model(input_ids, attention_mask=mask).step_logits
    model.save_pretrained(tmp_path / "rm")
    assert model.has_lora  # saving did not merge the live model
    loaded = RewardModel.from_pretrained(tmp_path / "rm")
    with torch.no_grad():
        reloaded = loaded(input_ids, attention_mask=mask).step_logits
    torch.testing.assert_close(reloaded, adapted, rtol=1e-5, atol=1e-5)
    model.merge_lora()
    with torch.no_grad():
        assert torch.equal(model(input_ids, attention_mask=mask).step_logits, reloaded)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="objective"):
        RewardSettings(objective="dpo")
    with pytest.raises(ValueError, match="num_labels"):
        RewardSettings(num_labels=3)


@pytest.mark.parametrize("run", ["x" * 20_000, "=" * 20_000, "_-" * 10_000, " " * 20_000])
def test_tokenizer_learns_no_token_from_a_run_on_word(run):
    # BPE training time grows about 4-5x per doubling of a word's length (a 2 MB word: about an
    # hour), so the training texts cut every run; the tokenizer still encodes the whole text.
    text = "Question: 3 + 4?\nSolution:\n3 + 4 = 7\n" + run + " and 12\n"
    tokenizer = train_tokenizer(TEXTS + [text], vocab_size=300)
    assert max(len(token) for token in tokenizer.get_vocab()) <= 64
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
