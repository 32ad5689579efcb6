"""encode_steps: labels sit exactly at each step's last separator token, for several
tokenizers and separators; truncation drops labels rather than shifting them."""

from pathlib import Path

import pytest
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from prm.encoding import encode_steps, separator_ids
from prm.modeling import RewardSettings
from generation.tiny import train_tokenizer

WORDS = ["[UNK]", "[PAD]", "\n", "<sep>", "q", "x", "=", "1", "2", "ok", "bad"]
W = {word: index for index, word in enumerate(WORDS)}


@pytest.fixture(scope="module")
def word_level():
    """Whitespace-split word tokenizer: every position can be written down by hand."""
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[ \t]+"), behavior="removed"),
        pre_tokenizers.Split(Regex(r"\n|<sep>"), behavior="isolated"),
    ])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")


@pytest.fixture(scope="module")
def bpe():
    """The tiny byte-level BPE; "\\n\\n" alone is one merged token, in running text two."""
    return train_tokenizer(["Question: 3 + 4?\n\nSolution:\n3 + 4 = 7\n\nThe answer is 7\n"] * 20, vocab_size=300)


@pytest.fixture(scope="module")
def bpe_with_special(bpe):
    tokenizer = train_tokenizer(["Question: 3 + 4?\nSolution:\n3 + 4 = 7\nThe answer is 7\n"] * 20, vocab_size=300)
    tokenizer.add_tokens(["<extra_0>"], special_tokens=True)
    return tokenizer


def test_word_level_positions_are_pinned(word_level):
    encoded = encode_steps(word_level, "q x", ["x = 1", "ok", "bad"], RewardSettings(separator="\n"))
    # q x \n | x = 1 \n | ok \n | bad \n
    assert encoded.input_ids == [W["q"], W["x"], W["\n"], W["x"], W["="], W["1"], W["\n"], W["ok"], W["\n"],
                                 W["bad"], W["\n"]]
    assert encoded.prompt_length == 3
    assert encoded.step_ends == [6, 8, 10]
    assert encoded.n_dropped == 0


def test_word_level_double_newline_reads_last_separator_token(word_level):
    encoded = encode_steps(word_level, "q", ["x = 2", "ok"], RewardSettings(separator="\n\n"))
    # q \n \n | x = 2 \n \n | ok \n \n
    assert encoded.input_ids == [W["q"], 2, 2, W["x"], W["="], W["2"], 2, 2, W["ok"], 2, 2]
    assert encoded.step_ends == [7, 10]
    assert encoded.prompt_length == 3


def test_word_level_prompt_ending_in_separator_gets_no_second_one(word_level):
    settings = RewardSettings(separator="\n")
    assert encode_steps(word_level, "q x\n", ["ok"], settings) == encode_steps(word_level, "q x", ["ok"], settings)


def test_truncation_drops_labels_instead_of_shifting(word_level):
    settings = RewardSettings(separator="\n")
    full = encode_steps(word_level, "q x", ["x = 1", "ok", "bad"], settings)
    for max_length in range(1, len(full.input_ids) + 1):
        cut = encode_steps(word_level, "q x", ["x = 1", "ok", "bad"], settings, max_length=max_length)
        assert cut.input_ids == full.input_ids[:max_length]
        kept = [end for end in full.step_ends if end < max_length]
        assert cut.step_ends == kept  # same positions, never moved
        assert cut.n_dropped == 3 - len(kept)
    assert encode_steps(word_level, "q x", ["x = 1", "ok", "bad"], settings, max_length=8).step_ends == [6]


@pytest.mark.parametrize("separator", ["\n", "\n\n"])
def test_bpe_label_positions(bpe, separator):
    settings = RewardSettings(separator=separator)
    steps = ["3 + 4 = 7", "The answer is 7"]
    encoded = encode_steps(bpe, "Question: 3 + 4?", steps, settings)
    sep = separator_ids(bpe, separator)
    prompt_ids = bpe.encode("Question: 3 + 4?", add_special_tokens=False)
    step_ids = [bpe.encode(step, add_special_tokens=False) for step in steps]
    assert encoded.input_ids == prompt_ids + sep + step_ids[0] + sep + step_ids[1] + sep
    first_end = len(prompt_ids) + len(sep) + len(step_ids[0]) + len(sep) - 1
    assert encoded.step_ends == [first_end, first_end + len(step_ids[1]) + len(sep)]
    assert all(encoded.input_ids[end] == sep[-1] for end in encoded.step_ends)
    assert bpe.decode(encoded.input_ids) == "Question: 3 + 4?" + "".join(separator + s for s in steps) + separator


def test_bpe_appending_a_step_keeps_earlier_ids(bpe):
    settings = RewardSettings(separator="\n\n")
    short = encode_steps(bpe, "Question: 3 + 4?", ["3 + 4 = 7"], settings)
    longer = encode_steps(bpe, "Question: 3 + 4?", ["3 + 4 = 7", "The answer is 7"], settings)
    assert longer.input_ids[: len(short.input_ids)] == short.input_ids
    assert longer.step_ends[:1] == short.step_ends


def test_special_token_separator(bpe_with_special):
    settings = RewardSettings(separator="<extra_0>")
    special_id = bpe_with_special.convert_tokens_to_ids("<extra_0>")
    encoded = encode_steps(bpe_with_special, "Question: 3 + 4?", ["3 + 4 = 7", "The answer is 7"], settings)
    assert [encoded.input_ids[end] for end in encoded.step_ends] == [special_id, special_id]
    assert encoded.input_ids.count(special_id) == 3  # after the prompt and after each step
    assert encoded.input_ids[encoded.prompt_length - 1] == special_id


def test_an_outcome_completion_splits_into_the_steps_split_steps_gives(bpe):
    """Training (collate) splits a completion at the separator with tasks.math.split_steps, as
    scoring and search do, so padded steps encode as the stripped steps they are scored as."""
    from prm.collate import encode_outcome_record
    from tasks.math.steps import split_steps

    settings = RewardSettings(separator="\n")
    completion = "3 + 4 = 7\n  The answer is 7 \n\n"
    feature = encode_outcome_record(bpe, "Question: 3 + 4?", completion, True, settings)
    steps = split_steps(completion, separator="\n")
    assert steps == ["3 + 4 = 7", "The answer is 7"]
    assert feature["input_ids"] == encode_steps(bpe, "Question: 3 + 4?", steps, settings).input_ids


def test_a_separator_inside_a_step_is_read_as_a_space_not_as_a_step_end(word_level):
    # The model reads every separator as the end of a step, so a step "x = 1\nbad" would be
    # scored at "bad" alone; its inner separator becomes a space and the step is read whole.
    settings = RewardSettings(separator="\n")
    inner = encode_steps(word_level, "q", ["x = 1\nbad", "ok"], settings)
    assert inner == encode_steps(word_level, "q", ["x = 1 bad", "ok"], settings)
    assert inner.input_ids.count(W["\n"]) == 3  # the prompt's and one per step
    special = RewardSettings(separator="<sep>")
    assert encode_steps(word_level, "q", ["x = 1 <sep> bad"], special) == encode_steps(word_level, "q", ["x = 1 bad"],
                                                                                        special)


def test_a_multi_line_step_is_scored_as_a_whole():
    import prm

    scorer = prm.load(str(Path(__file__).resolve().parents[1] / "prm" / "assets" / "demo" / "reward"), device="cpu")
    prompt = "Tom has 3 apples. He buys 4 more. He gives away 2. How many apples does he have now?"
    merged = scorer.score_steps(prompt, ["He buys 4 more: 3 + 4 = 8\nHe gives away 2: 8 - 2 = 6", "The answer is 6"])
    joined = scorer.score_steps(prompt, ["He buys 4 more: 3 + 4 = 8 He gives away 2: 8 - 2 = 6", "The answer is 6"])
    assert merged == pytest.approx(joined, abs=1e-6)
    [batched] = scorer.score_steps_batch([prompt], [["He buys 4 more: 3 + 4 = 8\nHe gives away 2: 8 - 2 = 6",
                                                     "The answer is 6"]])
    assert batched == pytest.approx(joined, abs=1e-5)


def test_a_step_is_read_without_the_whitespace_around_it(bpe):
    # Training reads step records' completions as given, while `score`, the outcome view and the
    # PPO rewards split and strip them: one step " 3 + 4 = 7 " must not be two texts to the model.
    settings = RewardSettings(separator="\n")
    padded = encode_steps(bpe, "Question: 3 + 4?", ["  3 + 4 = 7 ", "The answer is 7\n", "\tok"], settings)
    assert padded == encode_steps(bpe, "Question: 3 + 4?", ["3 + 4 = 7", "The answer is 7", "ok"], settings)
    inner = encode_steps(bpe, "Question: 3 + 4?", [" 3 + 4 = 7 \n 7 - 2 = 5 "], settings)
    assert inner == encode_steps(bpe, "Question: 3 + 4?", ["3 + 4 = 7 7 - 2 = 5"], settings)
