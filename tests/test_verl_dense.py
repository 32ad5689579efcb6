"""integrations.verl.dense: the verl-free core of the dense manager (runs in the main venv)."""

import bisect

import pytest

from generation.tiny import train_tokenizer
from integrations.verl.dense import (
    DenseRewardConfig,
    DenseRewarder,
    ResponseRewards,
    assign_rewards,
    choose_prompt,
    locate_steps,
    scalar_reward,
    score_all,
    step_end_tokens,
    token_text_ends,
)
from search.scorers import VerifierScorer, WeightedScorer

TEXTS = ["Question: 3 + 4?\n3 + 4 = 7\nThe answer is 7\n", "naïve 12 × 3 = 36 → done\n", "x * 2 = 10\n"] * 10


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=300)


def _metaspace_tokenizer():
    """A sentencepiece-style (Metaspace, unigram) tokenizer: spaces live inside tokens as '▁'."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(TEXTS, trainers.UnigramTrainer(vocab_size=120, special_tokens=["<eos>"], unk_token="<eos>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")


@pytest.mark.parametrize("text", ["3 + 4 = 7\nThe answer is 7", "naïve ∑ 12 × 3 = 36\n→ 😀 ok", "x", ""])
def test_token_text_ends_rebuilds_the_text_and_counts_characters(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    decoded, ends = token_text_ends(tokenizer, ids)
    assert decoded == text
    assert len(ends) == len(ids) and ends[-1] == len(text)
    assert ends == sorted(ends)
    # a prefix of tokens knows at most the text its own decode shows
    for i in range(len(ids)):
        assert text.startswith(decoded[: ends[i]])


def test_token_text_ends_keeps_sentencepiece_spaces():
    tok = _metaspace_tokenizer()
    text = "The answer is 7\n3 + 4 = 7"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    decoded, ends = token_text_ends(tok, ids)
    assert decoded == tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert ends[-1] == len(decoded)


def test_steps_map_to_the_token_holding_their_last_character(tokenizer):
    steps = ["3 + 4 = 7", "7 * 2 = 14", "The answer is 14"]
    ids, last = [], []
    for k, step in enumerate(steps):
        ids += tokenizer(step, add_special_tokens=False)["input_ids"]
        last.append(len(ids) - 1)
        if k < len(steps) - 1:
            ids += tokenizer("\n", add_special_tokens=False)["input_ids"]
    ids.append(tokenizer.eos_token_id)
    text, ends = token_text_ends(tokenizer, ids)
    spans = locate_steps(text, steps)
    assert [text[a:b] for a, b in spans] == steps
    assert step_end_tokens(ends, spans) == last


def test_locate_steps_finds_crlf_normalised_steps_in_the_original_text():
    # step_style "blank" splits a copy with CRLF turned into LF: its multi-line steps are not
    # in the text verbatim; their spans run from the first to the last character in the text
    text = "a = 1\r\nb = 2\r\n\r\nc\r\nd"
    spans = locate_steps(text, ["a = 1\nb = 2", "c\nd"])
    assert spans == [(0, 12), (16, 20)]
    assert [text[a:b] for a, b in spans] == ["a = 1\r\nb = 2", "c\r\nd"]
    # steps found verbatim are found where they were, CR or not
    assert locate_steps("x\r\ny\r\n", ["x", "y"]) == [(0, 1), (3, 4)]
    with pytest.raises(ValueError, match="not found"):  # order still matters
        locate_steps(text, ["c\nd", "a = 1\nb = 2"])


def test_blank_steps_of_a_crlf_response_land_on_their_last_tokens(tokenizer):
    text = "3 + 4 = 7\r\nso 7 apples\r\n\r\nThe answer is 7"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    rewarder = DenseRewarder(tokenizer, VerifierScorer(), DenseRewardConfig(step_style="blank"))
    item = rewarder.prepare(ids, "q")
    assert item.steps == ["3 + 4 = 7\nso 7 apples", "The answer is 7"]
    decoded, ends = token_text_ends(tokenizer, ids)
    assert decoded == text
    last_characters = [text.index("apples") + len("apples"), len(text)]
    assert item.step_tokens == [bisect.bisect_left(ends, end) for end in last_characters]


def test_locate_steps_names_a_missing_step():
    with pytest.raises(ValueError, match="not found"):
        locate_steps("a\nb", ["a", "c"])


def test_choose_prompt_prefers_the_raw_question():
    raw = [{"role": "system", "content": "sys"}, {"role": "user", "content": "What is 3 + 4?"}]
    assert choose_prompt("auto", "decoded", raw, {"question": "q"}) == "What is 3 + 4?"
    assert choose_prompt("auto", "decoded", None, {"question": "q"}) == "q"
    assert choose_prompt("auto", "decoded", None, None) == "decoded"
    assert choose_prompt("decoded", "decoded", raw, None) == "decoded"


def test_score_all_mixes_weighted_components_batched():
    class Stub:
        calls = 0

        def score_steps_batch(self, prompts, steps_lists):
            Stub.calls += 1
            return [[0.25] * len(s) for s in steps_lists]

    mix = WeightedScorer([(Stub(), 0.5), (VerifierScorer(), 0.5)])
    got = score_all(mix, ["p", "p", "p"], [["2 + 2 = 4", "2 + 2 = 5"], [], ["hello"]])
    assert got == [[0.625, 0.125], [], [0.375]]
    assert Stub.calls == 1


def test_rewarder_places_steps_and_outcome_with_the_checker(tokenizer):
    rewarder = DenseRewarder(tokenizer, VerifierScorer(), DenseRewardConfig(outcome="answer"))
    ids = tokenizer("3 + 4 = 7\n7 * 2 = 15\nThe answer is 15", add_special_tokens=False)["input_ids"]
    ids.append(tokenizer.eos_token_id)
    item = rewarder.prepare(ids, "prompt")
    rewarder.score([item])
    item.outcome = rewarder.outcome_of(item, ground_truth="14")
    assign_rewards([item], rewarder.config)
    dense = item.dense()
    assert item.step_scores == [1.0, 0.0, 0.5]
    assert [dense[t] for t in item.step_tokens] == [1.0, 0.0, 0.5]
    assert dense[-1] == 0.0 and item.outcome == 0.0  # wrong answer, EOS token
    assert sum(dense) == pytest.approx(1.5)


def test_process_grpo_pools_steps_and_outcome_per_group():
    items = [ResponseRewards("p", "", ["a", "b"], [0, 2], [1.0, 0.0], 1.0, 4, group="u1"),
             ResponseRewards("p", "", ["a"], [1], [0.5], 0.0, 3, group="u1"),
             ResponseRewards("q", "", ["a"], [0], [0.9], None, 2, group="u2")]
    assign_rewards(items, DenseRewardConfig(credit="process_grpo"))
    # group u1 pools (1, 0, outcome 1) and (0.5, outcome 0): mean 0.5, sample std 0.5
    z = lambda r: (r - 0.5) / (0.5 + 1e-4)  # noqa: E731
    assert items[0].step_rewards == pytest.approx([z(1.0), z(0.0)])
    assert items[0].outcome_reward == pytest.approx(z(1.0))
    assert items[1].step_rewards == pytest.approx([z(0.5)]) and items[1].outcome_reward == pytest.approx(z(0.0))
    assert items[2].step_rewards == [0.0] and items[2].outcome_reward == 0.0  # one reward in its group
    assert items[0].dense() == pytest.approx([z(1.0), 0.0, z(0.0), z(1.0)])


def _response(scores, outcome, group="u"):
    return ResponseRewards("p", "", ["s"] * len(scores), list(range(len(scores))), list(scores), outcome,
                           len(scores) + 2, group=group)


def test_process_grpo_scalar_is_the_task_reward_before_group_normalisation():
    """The scalar a response reports (all that verl's agent-loop path keeps) must tell a good
    solution from a bad one. Normalised against itself, one response's process-GRPO rewards sum
    to ~0 whatever its scores; the scalar is the total of the raw rewards its group pools."""
    config = DenseRewardConfig(credit="process_grpo", step_coef=0.5, outcome_coef=2.0)
    good, bad, lone = _response([0.9, 0.95, 0.99], 1.0), _response([0.1, 0.05, 0.01], 0.0), _response([0.7], None)
    # what a manager scoring one response at a time used to report: ~0 for all three
    for item in (good, bad, lone):
        assign_rewards([item], config)
        assert sum(item.dense()) == pytest.approx(0.0, abs=1e-9)
    assert scalar_reward(good, config) == pytest.approx(0.5 * 2.84 + 2.0)
    assert scalar_reward(bad, config) == pytest.approx(0.5 * 0.16)
    assert scalar_reward(lone, config) == pytest.approx(0.35)  # no outcome scored: steps only
    # ... which is what the "sum" form gives with the same coefficients
    as_sum = DenseRewardConfig(credit="sum", step_coef=0.5, outcome_coef=2.0)
    for item in (good, bad, lone):
        assert scalar_reward(item, config) == pytest.approx(scalar_reward(item, as_sum))
    # the per-token process-GRPO rewards are those of the group, as before, and stay untouched
    assign_rewards([good, bad], config)
    placed = [good.dense(), bad.dense()]
    pooled = [0.45, 0.475, 0.495, 2.0, 0.05, 0.025, 0.005, 0.0]
    mean = sum(pooled) / 8
    std = (sum((r - mean) ** 2 for r in pooled) / 7) ** 0.5
    assert good.step_rewards == pytest.approx([(r - mean) / (std + 1e-4) for r in pooled[:3]])
    assert scalar_reward(good, config) == pytest.approx(0.5 * 2.84 + 2.0)
    assert [good.dense(), bad.dense()] == placed


@pytest.mark.parametrize("credit", ["sum", "min", "progress"])
def test_per_response_forms_report_their_placed_total(credit):
    config = DenseRewardConfig(credit=credit, step_coef=0.5, outcome_coef=2.0, min_temperature=0.1)
    item = _response([0.9, 0.2, 0.7], 1.0)
    assign_rewards([item], config)
    assert scalar_reward(item, config) == pytest.approx(sum(item.dense()))
    expected = {"sum": 0.5 * 1.8, "min": 0.5 * 0.2040, "progress": 0.5 * (0.7 - 0.5)}[credit] + 2.0
    assert scalar_reward(item, config) == pytest.approx(expected, abs=1e-4)
    empty = _response([], 1.0)
    empty.length = 0  # nothing to put a reward on
    assert scalar_reward(empty, config) == 0.0


def test_config_rejects_unknown_forms():
    with pytest.raises(ValueError, match="credit"):
        DenseRewardConfig(credit="avg")
    with pytest.raises(ValueError, match="outcome"):
        DenseRewardConfig(outcome="maybe")


def test_prepare_data_makes_the_output_folder(tmp_path):
    # docs/verl.md writes to $DATA/train.parquet before $DATA exists: that was a pandas traceback.
    pytest.importorskip("pyarrow")
    import pandas as pd

    from integrations.verl.prepare_data import main as prepare

    out = tmp_path / "data" / "new" / "train.parquet"
    prepare(["--task", "gsm8k", "--input", "tests/fixtures/gsm8k.jsonl", "--out", str(out)])
    assert pd.read_parquet(out)["reward_model"][0]["ground_truth"] == "42"
