"""Beam search / DVTS / best-of-N: finding a preferred path, scored lookahead, counters, seeds."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from generation.tiny import build_tiny_causal_lm, train_tokenizer
from search.beam import BeamConfig, SearchCounters, aggregate, beam_search, best_of_n_search, dvts, is_answer_step
from generation.policy import Continuation, HFPolicy

QUESTION = "What is 3 + 4?"


@dataclass(frozen=True)
class TreeState:
    steps: tuple[str, ...] = ()


class TreePolicy:
    """A stand-in policy over a small tree: at depth d it writes "step d x" for a random
    option x, and at depth `depth` - 1 the answer step "The answer is x". At temperature 0
    it writes `greedy[step]` (the step it continues from), so lookahead is deterministic."""

    def __init__(self, options=("a", "b", "c"), depth=3, greedy=None, first_round=None):
        self.options, self.depth = options, depth
        self.greedy = greedy or {}
        self.first_round = first_round  # fixed steps for the root's children, in order
        self.rng = random.Random(0)
        self.generated_tokens = 0
        self.forward_tokens = 0

    def reseed(self, seed):
        self.rng = random.Random(seed)

    def start(self, prefixes):
        return [TreeState() for _ in prefixes]

    def _step(self, state: TreeState, index: int, temperature: float) -> str:
        depth = len(state.steps)
        if temperature == 0:
            return self.greedy.get(state.steps[-1] if state.steps else "", "step greedy")
        if depth == 0 and self.first_round:
            return self.first_round[index % len(self.first_round)]
        option = self.rng.choice(self.options)
        return f"The answer is {option}" if depth == self.depth - 1 else f"step {depth} {option}"

    def expand(self, states, k, *, temperature=0.7):
        groups = []
        for state in states:
            group = []
            for index in range(k):
                text = self._step(state, index, temperature)
                self.generated_tokens += len(text.split())
                group.append(Continuation(text, [0] * len(text.split()), False, TreeState(state.steps + (text,))))
            groups.append(group)
        return groups

    def complete(self, prefixes, n, *, until_step_end=False):
        out = []
        for _ in prefixes:
            solutions = []
            for _ in range(n):
                state = TreeState()
                while len(state.steps) < self.depth:
                    state = TreeState(state.steps + (self._step(state, 0, 1.0),))
                solutions.append("\n".join(state.steps))
            out.append(solutions)
        return out


def preferred_score(steps: list[str]) -> list[float]:
    """Steps on the path b -> c -> a score 0.9, others 0.2."""
    path = ("b", "c", "a")
    return [0.9 if (step.split() or [""])[-1] == path[min(i, 2)] else 0.2 for i, step in enumerate(steps)]


class PlainScorer:
    """Re-scores the whole path every call (like the sympy verifier scorer)."""

    def __init__(self, table=None):
        self.table = table
        self.seen: list[str] = []

    def score_steps(self, prompt, steps):
        assert prompt == QUESTION
        self.seen.append(steps[-1])
        if self.table is not None:
            return [self.table[step] for step in steps]
        return preferred_score(list(steps))


class IncrementalScorer(PlainScorer):
    """The same scores through `start`/`extend`: only the new step is 'encoded'."""

    def __init__(self, table=None):
        super().__init__(table)
        self.forward_tokens = 0

    def start(self, prompt):
        assert prompt == QUESTION
        self.forward_tokens += len(prompt.split())
        return ()

    def extend(self, states, new_steps):
        scores, extended = [], []
        for state, step in zip(states, new_steps):
            self.forward_tokens += len(step.split()) + 1
            self.seen.append(step)
            path = list(state) + [step]
            scores.append(self.table[step] if self.table is not None else preferred_score(path)[-1])
            extended.append(tuple(path))
        return scores, extended


@pytest.mark.parametrize("search", [beam_search, dvts])
def test_search_finds_the_path_the_scorer_prefers(search):
    config = BeamConfig(width=12, beam_width=3, max_steps=5, aggregation="min", temperature=1.0)
    result = search(QUESTION, TreePolicy(), IncrementalScorer(), config)
    best = result.best
    assert [step.split()[-1] for step in best.steps] == ["b", "c", "a"]
    assert best.finished and is_answer_step(best.steps[-1])
    assert best.step_scores == [0.9, 0.9, 0.9] and best.score == pytest.approx(0.9)
    scores = [candidate.score for candidate in result.candidates]
    assert scores == sorted(scores, reverse=True)
    assert len(result.candidates) == config.n_beams


def test_incremental_and_rescoring_scorers_agree_and_rescoring_is_counted():
    config = BeamConfig(width=6, beam_width=2, max_steps=4, aggregation="prod", seed=3)
    incremental = beam_search(QUESTION, TreePolicy(), IncrementalScorer(), config)
    rescoring = beam_search(QUESTION, TreePolicy(), PlainScorer(), config)
    assert incremental.candidates == rescoring.candidates
    counters = incremental.counters
    assert counters.prm_scored_steps == counters.prm_new_steps
    # Round 1 scores 6 one-step paths, rounds 2 and 3 score 6 two- and three-step paths.
    assert rescoring.counters.prm_new_steps == counters.prm_new_steps == 18
    assert rescoring.counters.prm_scored_steps == 6 * 1 + 6 * 2 + 6 * 3
    assert counters.prm_forward_tokens > 0 and rescoring.counters.prm_forward_tokens == 0


def test_a_mix_of_an_incremental_scorer_and_the_checker_is_scored_incrementally():
    from search.scorers import VerifierScorer, WeightedScorer

    config = BeamConfig(width=6, beam_width=2, max_steps=4, aggregation="min", seed=3)
    for check_transitions in (False, True):
        def mix(prm):
            return WeightedScorer([(prm, 0.5), (VerifierScorer(check_transitions=check_transitions), 0.5)])

        prm_alone = IncrementalScorer()
        incremental = beam_search(QUESTION, TreePolicy(), mix(prm_alone), config)
        rescoring = beam_search(QUESTION, TreePolicy(), mix(PlainScorer()), config)
        assert incremental.candidates == rescoring.candidates
        # Each new step is handed to the mix once, and the PRM's KV-cache work is counted.
        assert incremental.counters.prm_scored_steps == incremental.counters.prm_new_steps == 18
        assert incremental.counters.prm_forward_tokens == prm_alone.forward_tokens > 0
    checker = beam_search(QUESTION, TreePolicy(), VerifierScorer(), config)
    assert checker.counters.prm_scored_steps == checker.counters.prm_new_steps


def test_lookahead_text_is_scored_and_changes_the_choice():
    # "trap" looks better than "slow", but its greedy continuation is a dead end.
    table = {"trap": 0.9, "slow": 0.6, "dead end": 0.0, "The answer is 7": 1.0}
    greedy = {"trap": "dead end", "slow": "The answer is 7", "dead end": "dead end"}

    def run(lookahead):
        policy = TreePolicy(options=("x",), greedy=greedy, first_round=("trap", "slow"))
        scorer = IncrementalScorer(table)
        config = BeamConfig(width=2, beam_width=2, max_steps=1, aggregation="last", lookahead=lookahead)
        return beam_search(QUESTION, policy, scorer, config), scorer

    plain, plain_scorer = run(0)
    ahead, ahead_scorer = run(1)
    assert plain.best.steps == ["trap"]
    assert ahead.best.steps == ["slow"]
    assert "dead end" in ahead_scorer.seen and "dead end" not in plain_scorer.seen
    # The candidate keeps its own step scores; only its ranking used the lookahead's.
    assert ahead.best.step_scores == [0.6] and ahead.best.score == 1.0
    assert ahead.counters.prm_new_steps == 4 and ahead.counters.lookahead_generated_tokens > 0


def test_aggregations():
    scores = [0.5, 0.8, 0.25]
    assert aggregate(scores, "last") == 0.25
    assert aggregate(scores, "min") == 0.25
    assert aggregate(scores, "prod") == pytest.approx(0.1)
    assert aggregate(scores, "mean") == pytest.approx(1.55 / 3)
    with pytest.raises(ValueError):
        BeamConfig(aggregation="max")


@pytest.fixture(scope="module")
def tiny_policy():
    texts = [f"Question: What is {a} + {b}?\nSolution:\n{a} + {b} = {a + b}\nThe answer is {a + b}\n"
             for a in range(10) for b in range(10)]
    tokenizer = train_tokenizer(texts, vocab_size=300)
    return HFPolicy(build_tiny_causal_lm(tokenizer, "tiny"), tokenizer, temperature=1.0, max_step_tokens=6,
                    max_new_tokens=24)


@pytest.mark.parametrize("method", [beam_search, dvts, best_of_n_search])
def test_transformers_policy_counters_add_up_and_runs_are_reproducible(tiny_policy, method):
    config = BeamConfig(width=4, beam_width=2, max_steps=3, lookahead=1 if method is not best_of_n_search else 0,
                        seed=5)
    policy = tiny_policy
    policy.reset_counters()
    scorer = IncrementalScorer()
    first = method(QUESTION, policy, scorer, config)
    counters = first.counters
    assert counters.policy_generated_tokens == policy.generated_tokens > 0
    assert counters.policy_forward_tokens == policy.forward_tokens
    prompt_tokens = len(policy.start([f"Question: {QUESTION}\nSolution:\n"])[0].token_ids)
    # Nothing is encoded twice: beyond the prompt, at most each sampled token plus the
    # separator that closes a step cut at max_step_tokens.
    steps = counters.prm_new_steps
    assert counters.policy_forward_tokens <= prompt_tokens + counters.policy_generated_tokens + steps
    assert counters.prm_forward_tokens == scorer.forward_tokens
    assert counters.prm_new_steps == len(scorer.seen) or method is best_of_n_search
    second = method(QUESTION, policy, IncrementalScorer(), config)
    assert second.candidates == first.candidates and second.counters == first.counters


def test_reward_model_kv_reuse_scores_equal_rescoring(tiny_policy):
    from prm.modeling import RewardModel
    from prm.scoring import RewardScorer

    tokenizer = tiny_policy.tokenizer
    scorer = RewardScorer(RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, "tiny", seed=9),
                                                    tokenizer=tokenizer), tokenizer)

    class ScoreStepsOnly:
        def score_steps(self, prompt, steps):
            return scorer.score_steps(prompt, steps)

    config = BeamConfig(width=4, beam_width=2, max_steps=3, aggregation="min", seed=1)
    incremental = beam_search(QUESTION, tiny_policy, scorer, config)
    rescored = beam_search(QUESTION, tiny_policy, ScoreStepsOnly(), config)
    assert [c.steps for c in incremental.candidates] == [c.steps for c in rescored.candidates]
    for a, b in zip(incremental.candidates, rescored.candidates):
        assert a.step_scores == pytest.approx(b.step_scores, abs=1e-5)
    assert incremental.counters.prm_forward_tokens > 0
    assert incremental.counters.prm_scored_steps < rescored.counters.prm_scored_steps


@pytest.mark.parametrize("kind, lookahead", [("beam", 0), ("dvts", 0), ("beam", 1)])
def test_searches_in_lockstep_give_each_question_its_own_search(tiny_policy, kind, lookahead):
    from prm.modeling import RewardModel
    from prm.scoring import RewardScorer
    from search.beam import search_many
    from search.scorers import VerifierScorer, WeightedScorer

    tokenizer = tiny_policy.tokenizer
    prm = RewardScorer(RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, "tiny", seed=9),
                                                 tokenizer=tokenizer), tokenizer)
    questions = ["What is 3 + 4?", "What is 12 + 9?", "What is 5 + 0?"]
    # Greedy, so a question's samples do not depend on the random stream the batch shares.
    configs = [BeamConfig(width=4, beam_width=2, max_steps=3, temperature=0.0, aggregation="min",
                          lookahead=lookahead, seed=i) for i in range(len(questions))]
    expand = tiny_policy.expand
    calls = []  # states per policy.expand call
    tiny_policy.expand = lambda states, k, **kw: calls.append(len(states)) or expand(states, k, **kw)
    try:
        for scorer in (prm, WeightedScorer([(prm, 0.5), (VerifierScorer(), 0.5)])):
            calls.clear()
            alone = [search_many([q], tiny_policy, scorer, [c], kind)[0] for q, c in zip(questions, configs)]
            calls_alone = list(calls)
            calls.clear()
            tiny_policy.reset_counters()
            together = search_many(questions, tiny_policy, scorer, configs, kind)
            for a, b in zip(alone, together):
                assert b.question == a.question
                assert [c.steps for c in b.candidates] == [c.steps for c in a.candidates]
                for x, y in zip(a.candidates, b.candidates):
                    assert y.step_scores == pytest.approx(x.step_scores, abs=1e-5)
                assert b.counters.policy_generated_tokens == a.counters.policy_generated_tokens
                assert b.counters.prm_new_steps == a.counters.prm_new_steps
            # One expansion serves the questions of a round together.
            assert len(calls) < len(calls_alone) and max(calls) > max(calls_alone)
            # The counts they share add up to the policy's own.
            total = SearchCounters()
            for result in together:
                total.add(result.counters)
            assert total.policy_generated_tokens == tiny_policy.generated_tokens
            assert total.policy_forward_tokens == tiny_policy.forward_tokens
            assert total.policy_padding_tokens == tiny_policy.padding_tokens
    finally:
        del tiny_policy.expand


def test_prm_search_command_end_to_end(tiny_policy, tmp_path):
    import json

    import verifiers

    if not hasattr(verifiers, "extract_answer"):
        pytest.skip("verifiers.extract_answer has not landed yet")
    from commands.cli import main
    from prm.modeling import RewardModel

    tokenizer = tiny_policy.tokenizer
    tiny_policy.model.save_pretrained(tmp_path / "policy", safe_serialization=True)
    tokenizer.save_pretrained(tmp_path / "policy")
    RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, "tiny", seed=4), tokenizer=tokenizer) \
        .save_pretrained(tmp_path / "prm")
    tokenizer.save_pretrained(tmp_path / "prm")
    output = tmp_path / "out.jsonl"
    assert main(["search", "--policy", str(tmp_path / "policy"), "--prm", str(tmp_path / "prm"),
                 "--problems", "synthetic:tiny", "--n_problems", "2", "--method", "dvts", "--width", "4",
                 "--beam_width", "2", "--max_steps", "2", "--max_step_tokens", "6", "--device", "cpu",
                 "--output", str(output)]) == 0
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(lines) == 2 and all(len(line["candidates"]) == 2 for line in lines)
    assert all(line["counters"]["policy_generated_tokens"] > 0 for line in lines)
    metrics = json.loads((tmp_path / "out.jsonl.metrics.json").read_text())
    assert metrics["accuracy"] == sum(line["correct"] for line in lines) / 2


class RecordingPolicy(TreePolicy):
    """TreePolicy that records what it samples: continuations per round (a state's depth is
    the round it is expanded in) and every sampled continuation's tokens."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sampled_per_round: dict[int, int] = {}
        self.continuations: list[Continuation] = []

    def expand(self, states, k, *, temperature=0.7):
        groups = super().expand(states, k, temperature=temperature)
        for state, group in zip(states, groups):
            if temperature != 0:  # lookahead rolls greedily; the round's samples do not
                depth = len(state.steps)
                self.sampled_per_round[depth] = self.sampled_per_round.get(depth, 0) + len(group)
            self.continuations += group
        return groups


class AnswersScoreHigh(IncrementalScorer):
    """An answer step scores 0.95, so early answers survive the round and finish beams."""

    def extend(self, states, new_steps):
        scores, extended = super().extend(states, new_steps)
        return [0.95 if is_answer_step(step) else score for step, score in zip(new_steps, scores)], extended


@pytest.mark.parametrize("search", [beam_search, dvts])
@pytest.mark.parametrize("lookahead", [0, 1])
def test_every_round_samples_width_steps_when_beams_finish_early(search, lookahead):
    # Round 1 writes two answers among its 8 steps: two of the 4 beams / subtrees finish at once.
    policy = RecordingPolicy(depth=4, first_round=("The answer is 9", "step 0 b", "step 0 c", "step 0 a"))
    config = BeamConfig(width=8, beam_width=2, max_steps=10, aggregation="last", lookahead=lookahead)
    result = search(QUESTION, policy, AnswersScoreHigh(), config)
    assert sum(1 for c in result.candidates if c.finished and len(c.steps) == 1) == 2
    rounds = policy.sampled_per_round
    assert sorted(rounds) == list(range(len(rounds))) and len(rounds) > 1
    assert all(sampled == config.width for sampled in rounds.values()), rounds
    assert all(c.finished for c in result.candidates)  # stopped because no beam was left
    assert result.counters.policy_generated_tokens == sum(len(c.token_ids) for c in policy.continuations)


def test_sampled_steps_stop_at_the_step_limit():
    policy = RecordingPolicy(depth=6, first_round=("The answer is 9", "step 0 b", "step 0 c", "step 0 a"))
    config = BeamConfig(width=8, beam_width=2, max_steps=3)
    result = beam_search(QUESTION, policy, AnswersScoreHigh(), config)
    assert policy.sampled_per_round == {r: config.width for r in range(config.max_steps)}
    assert any(not c.finished for c in result.candidates)
