"""RewardScorer: one-pass scores, batching, shared-prompt best-of-N, KV-cache reuse, load, `prm score`."""

import json
import math

import pytest
import torch

import prm
from prm.encoding import encode_steps
from prm.modeling import RewardModel, RewardSettings
from prm.scoring import RewardScorer, aggregate
from generation.tiny import build_tiny_causal_lm, train_tokenizer
from tasks.math.types import RecordError

TEXTS = ["Question: Tom has 3 apples and buys 4. How many?\nSolution:\n3 + 4 = 7\nThe answer is 7\n",
         "Question: 12 * 5 - 8?\nSolution:\n12 * 5 = 60\n60 - 8 = 52\nThe answer is 52\n"] * 20

PROMPT = "Question: Tom has 3 apples and buys 4 more, then eats 2. How many?\nSolution:\n"
SOLUTIONS = [
    ["3 + 4 = 7", "7 - 2 = 5", "The answer is 5"],
    ["3 + 4 = 8", "The answer is 8"],
    ["3 + 4 = 7", "7 - 2 = 6", "6 * 1 = 6", "The answer is 6"],
    ["4 + 3 = 7", "7 - 2 = 5", "The answer is 5"],
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=300)


def _scorer(tokenizer, settings, seed=0, batch_size=16):
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, seed=seed), settings, tokenizer=tokenizer)
    return RewardScorer(model.eval(), tokenizer, batch_size=batch_size)


@pytest.fixture(scope="module", params=["plain", "likelihood"])
def scorer(tokenizer, request):
    """A classification PRM, and one whose step logits add the model's own step likelihoods
    (weights set non-zero so that they matter): every path must read them the same way."""
    likelihood = request.param == "likelihood"
    scorer = _scorer(tokenizer, RewardSettings(head="classification", num_labels=2, likelihood_features=likelihood))
    if likelihood:
        with torch.no_grad():
            scorer.model.likelihood_head.weight.copy_(torch.tensor([[0.7, 0.4]]))
    return scorer


def _reference(scorer, prompt, steps):
    """Each step's probability read by hand at its separator, one sequence at a time."""
    encoded = encode_steps(scorer.tokenizer, prompt, steps, scorer.settings)
    with torch.no_grad():
        logits = scorer.model(torch.tensor([encoded.input_ids])).step_logits[0]
    return [torch.sigmoid(logits[end]).item() for end in encoded.step_ends]


def test_score_steps_reads_each_step_at_its_separator(scorer):
    for steps in SOLUTIONS:
        assert scorer.score_steps(PROMPT, steps) == pytest.approx(_reference(scorer, PROMPT, steps), abs=1e-6)
    assert scorer.score_steps(PROMPT, []) == []


def test_scores_are_probabilities_that_differ_between_steps(scorer):
    scores = scorer.score_steps(PROMPT, SOLUTIONS[2])
    assert all(0.0 < s < 1.0 for s in scores)
    assert len(set(scores)) > 1


def test_batch_equals_single_in_input_order(scorer):
    prompts = [PROMPT, "Question: 12 * 5 - 8?\nSolution:\n"] * 3
    steps_lists = [SOLUTIONS[i % len(SOLUTIONS)] for i in range(6)]
    batched = scorer.score_steps_batch(prompts, steps_lists, batch_size=4)
    for prompt, steps, scores in zip(prompts, steps_lists, batched):
        assert scores == pytest.approx(scorer.score_steps(prompt, steps), abs=1e-5)


def test_best_of_n_shares_the_prompt_and_matches_plain_scores(scorer):
    plain = scorer.score_steps_batch([PROMPT] * len(SOLUTIONS), SOLUTIONS)
    before = scorer.forward_tokens
    shared = scorer.score_best_of_n(PROMPT, SOLUTIONS, batch_size=3)
    run = scorer.forward_tokens - before
    for a, b in zip(shared, plain):
        assert a == pytest.approx(b, abs=1e-5)
    full = [len(encode_steps(scorer.tokenizer, PROMPT, s, scorer.settings).input_ids) for s in SOLUTIONS]
    prompt_ids = len(encode_steps(scorer.tokenizer, PROMPT, [], scorer.settings).input_ids)
    assert run == sum(full) - (len(SOLUTIONS) - 1) * prompt_ids  # the prompt ran once


def test_identical_solutions_are_run_once_and_get_the_same_scores(tokenizer, scorer):
    """A confident policy's samples repeat: a solution that appears again on the same state is
    scored once (the scores and outcome of its first copy), in every scoring path."""
    repeated = [SOLUTIONS[0], SOLUTIONS[1], SOLUTIONS[0], SOLUTIONS[0], SOLUTIONS[2], SOLUTIONS[1]]
    before = scorer.forward_tokens
    batched = scorer.score_steps_batch([PROMPT] * len(repeated), repeated, batch_size=2)
    run = scorer.forward_tokens - before
    for steps, scores in zip(repeated, batched):
        assert scores == pytest.approx(_reference(scorer, PROMPT, steps), abs=1e-5)
    assert run == sum(len(encode_steps(scorer.tokenizer, PROMPT, s, scorer.settings).input_ids) for s in SOLUTIONS[:3])
    other = scorer.score_steps_batch([PROMPT, "Question: 12 * 5 - 8?\nSolution:\n"], [SOLUTIONS[0]] * 2)
    assert other[1] == pytest.approx(_reference(scorer, "Question: 12 * 5 - 8?\nSolution:\n", SOLUTIONS[0]), abs=1e-5)
    assert other[0] != other[1]  # same steps, another prompt: not a copy

    joint = _scorer(tokenizer, RewardSettings(objective="joint"), seed=3)
    steps_once, outcomes_once = joint.score_solutions(PROMPT, SOLUTIONS[:3])
    before = joint.forward_tokens
    steps_scores, outcomes = joint.score_solutions(PROMPT, repeated)
    root = len(encode_steps(joint.tokenizer, PROMPT, [], joint.settings).input_ids)
    assert joint.forward_tokens - before == root + sum(
        len(encode_steps(joint.tokenizer, PROMPT, s, joint.settings).input_ids) - root for s in SOLUTIONS[:3])
    first = {0: 0, 1: 1, 2: 0, 3: 0, 4: 2, 5: 1}
    for index, solution in first.items():
        assert steps_scores[index] == pytest.approx(steps_once[solution], abs=1e-5)
        assert outcomes[index] == pytest.approx(outcomes_once[solution], abs=1e-5)

    state = scorer.start(PROMPT)
    before = scorer.forward_tokens
    scores, states = scorer.extend([state, state, state], ["3 + 4 = 7", "3 + 4 = 8", "3 + 4 = 7"])
    assert scores[0] == scores[2] and states[0].input_ids == states[2].input_ids
    assert scorer.forward_tokens - before == 2 * (len(states[0].input_ids) - len(state.input_ids))
    (next_score,), _ = scorer.extend([states[2]], ["7 - 2 = 5"])
    assert next_score == pytest.approx(_reference(scorer, PROMPT, ["3 + 4 = 7", "7 - 2 = 5"])[1], abs=1e-5)


def test_incremental_extend_matches_full_encoding_and_runs_only_new_tokens(scorer):
    root = scorer.start(PROMPT)
    states = [root] * len(SOLUTIONS)
    collected = [[] for _ in SOLUTIONS]
    before = scorer.forward_tokens
    depth = max(len(s) for s in SOLUTIONS)
    for k in range(depth):
        # Beams of different lengths share a batch: caches of unequal length are left-padded.
        active = [i for i, s in enumerate(SOLUTIONS) if k < len(s)]
        scores, new_states = scorer.extend([states[i] for i in active], [SOLUTIONS[i][k] for i in active])
        for i, score, state in zip(active, scores, new_states):
            collected[i].append(score)
            states[i] = state
    run = scorer.forward_tokens - before
    for i, steps in enumerate(SOLUTIONS):
        assert collected[i] == pytest.approx(scorer.score_steps(PROMPT, steps), abs=1e-5)
        assert list(states[i].step_scores) == collected[i]
    # Each distinct prefix ran its new tokens once (two of the solutions begin with the same step).
    def length(steps):
        return len(encode_steps(scorer.tokenizer, PROMPT, list(steps), scorer.settings).input_ids) if steps else len(root.input_ids)

    prefixes = {tuple(s[: k + 1]) for s in SOLUTIONS for k in range(len(s))}
    assert len(prefixes) < sum(len(s) for s in SOLUTIONS)
    assert run == sum(length(p) - length(p[:-1]) for p in prefixes)


def test_one_state_extended_by_several_candidates_is_not_modified(scorer):
    state = scorer.start(PROMPT)
    _, (first,) = scorer.extend([state], ["3 + 4 = 7"])
    scores, _ = scorer.extend([first, first, first], ["7 - 2 = 5", "7 - 2 = 6", "The answer is 7"])
    for step, score in zip(["7 - 2 = 5", "7 - 2 = 6", "The answer is 7"], scores):
        assert score == pytest.approx(scorer.score_steps(PROMPT, ["3 + 4 = 7", step])[1], abs=1e-5)
    lookahead, _ = scorer.extend_many([first], [["7 - 2 = 5", "The answer is 5"]])
    assert lookahead[0] == pytest.approx(scorer.score_steps(PROMPT, ["3 + 4 = 7", "7 - 2 = 5", "The answer is 5"])[1:],
                                         abs=1e-5)


def test_aggregations_match_hand_computation():
    scores = [0.9, 0.5, 0.8]
    assert aggregate(scores, "min") == 0.5
    assert aggregate(scores, "prod") == pytest.approx(0.9 * 0.5 * 0.8)
    assert aggregate(scores, "last") == 0.8
    assert aggregate(scores, "mean") == pytest.approx(2.2 / 3)
    with pytest.raises(ValueError):
        aggregate(scores, "max")
    assert aggregate([], "min") == 0.0  # an empty solution never wins


def test_score_uses_outcome_head_when_present(tokenizer, scorer):
    completion = "3 + 4 = 7\n7 - 2 = 5\nThe answer is 5"
    steps = completion.split("\n")
    assert scorer.score(PROMPT, completion) == pytest.approx(min(scorer.score_steps(PROMPT, steps)))
    joint = _scorer(tokenizer, RewardSettings(objective="joint"), seed=3)
    encoded = encode_steps(tokenizer, PROMPT, steps, joint.settings)
    with torch.no_grad():
        outcome = joint.model(torch.tensor([encoded.input_ids])).outcome_logits[0, encoded.step_ends[-1]]
    assert joint.score(PROMPT, completion) == pytest.approx(torch.sigmoid(outcome).item(), abs=1e-6)


def test_save_then_load_gives_identical_scores(tmp_path, tokenizer, scorer):
    scorer.model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    loaded = prm.load(str(tmp_path / "rm"), device="cpu")
    assert loaded.format == "native"
    for steps in SOLUTIONS:
        assert loaded.score_steps(PROMPT, steps) == pytest.approx(scorer.score_steps(PROMPT, steps), abs=1e-6)


def test_score_file_writes_step_scores_for_both_record_kinds(tmp_path, tokenizer, scorer):
    from commands.score import ScoreConfig, score_file

    scorer.model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    records = [
        {"prompt": PROMPT, "completions": SOLUTIONS[0], "labels": [True, True, True], "id": "a"},
        {"prompt": PROMPT, "completions": ["3 + 4 = 7\n7 - 2 = 5\nThe answer is 5", "3 + 4 = 8\nThe answer is 8"]},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    target = tmp_path / "out.jsonl"
    score_file(ScoreConfig(model=str(tmp_path / "rm"), input=str(source), output=str(target), batch_size=2,
                           device="cpu", aggregation="prod"))
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert rows[0]["id"] == "a"
    assert rows[0]["step_scores"] == pytest.approx(scorer.score_steps(PROMPT, SOLUTIONS[0]), abs=1e-5)
    assert rows[0]["score"] == pytest.approx(math.prod(rows[0]["step_scores"]))
    assert rows[1]["step_scores"][1] == pytest.approx(scorer.score_steps(PROMPT, SOLUTIONS[1]), abs=1e-5)
    assert len(rows[1]["scores"]) == 2


def test_score_file_names_file_line_and_field_of_a_bad_record(tmp_path, tokenizer, scorer):
    from commands.score import ScoreConfig, score_file

    scorer.model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    source = tmp_path / "bad.jsonl"
    source.write_text(json.dumps({"prompt": PROMPT, "completions": ["ok"]}) + "\n"
                      + json.dumps({"prompt": PROMPT, "completions": ["a", 3], "labels": [True, True]}) + "\n")
    with pytest.raises(RecordError, match=r"bad\.jsonl.*line 2.*completions"):
        score_file(ScoreConfig(model=str(tmp_path / "rm"), input=str(source), output=str(tmp_path / "o.jsonl"),
                               device="cpu"))


def test_joint_model_gives_step_and_outcome_scores_in_one_shared_pass(tokenizer):
    joint = _scorer(tokenizer, RewardSettings(objective="joint"), seed=3)
    steps_scores, outcomes = joint.score_solutions(PROMPT, SOLUTIONS)
    assert steps_scores == joint.score_best_of_n(PROMPT, SOLUTIONS)
    for steps, outcome in zip(SOLUTIONS, outcomes):
        encoded = encode_steps(tokenizer, PROMPT, steps, joint.settings)
        with torch.no_grad():
            logits = joint.model(torch.tensor([encoded.input_ids])).outcome_logits[0]
        assert outcome == pytest.approx(torch.sigmoid(logits[encoded.step_ends[-1]]).item(), abs=1e-6)
    assert _scorer(tokenizer, RewardSettings(objective="prm")).score_solutions(PROMPT, SOLUTIONS)[1] == [None] * 4


def test_score_refuses_a_file_with_no_records(tmp_path):
    from commands.score import _read_records

    path = tmp_path / "blank.jsonl"
    path.write_text("\n  \n")
    with pytest.raises(RecordError, match="no records"):
        _read_records(path)


def test_an_unknown_keyword_of_load_is_named_as_unexpected():
    from pathlib import Path

    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['nosuch'\]"):
        prm.load(str(Path(prm.__file__).resolve().parent / "assets" / "demo" / "reward"), nosuch=1)


def test_extend_with_unequal_caches_fits_a_backbone_with_absolute_positions(tokenizer):
    """Rows of one batch keep their own positions: a short continuation of a long cached prefix
    beside a long continuation of a short one must not give the padding positions past the
    model's table (GPT-2 style position embeddings raise, or assert on a GPU)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    prompt_ids = len(encode_steps(tokenizer, PROMPT, [], RewardSettings()).input_ids)
    long_step = "3 + 4 = 7 and 4 + 3 = 7 and so 7 - 2 = 5"
    lengths = [len(encode_steps(tokenizer, PROMPT, steps, RewardSettings()).input_ids)
               for steps in (["3 + 4 = 7"], ["3 + 4 = 7", "7 - 2 = 5"], [long_step])]
    limit = max(lengths[1], lengths[2]) + 1
    assert lengths[0] + lengths[2] - prompt_ids > limit  # what the padded rows reached before
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=limit, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    model = RewardModel.from_backbone(GPT2LMHeadModel(config), RewardSettings(), tokenizer=tokenizer)
    scorer = RewardScorer(model.eval(), tokenizer)
    root = scorer.start(PROMPT)
    _, (first,) = scorer.extend([root], ["3 + 4 = 7"])
    scores, _ = scorer.extend([first, root], ["7 - 2 = 5", long_step])
    assert scores[0] == pytest.approx(scorer.score_steps(PROMPT, ["3 + 4 = 7", "7 - 2 = 5"])[1], abs=1e-5)
    assert scores[1] == pytest.approx(scorer.score_steps(PROMPT, [long_step])[0], abs=1e-5)
