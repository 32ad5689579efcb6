import pytest

from search.scorers import OutcomeFromSteps, VerifierScorer, WeightedScorer, aggregate, score_solutions
from tasks.math.protocols import OutcomeScorer, StepScorer


class LookupScorer:
    """Scores each step from a table (unknown steps 0.5); counts how it was called."""

    def __init__(self, table):
        self.table = table
        self.calls = {"score_steps": 0, "score_best_of_n": 0}

    def score_steps(self, prompt, steps):
        self.calls["score_steps"] += 1
        return [self.table.get(step, 0.5) for step in steps]


class BatchLookupScorer(LookupScorer):
    def score_best_of_n(self, prompt, solutions):
        self.calls["score_best_of_n"] += 1
        return [[self.table.get(step, 0.5) for step in steps] for steps in solutions]


@pytest.mark.parametrize(
    "how, expected", [("min", 0.5), ("prod", 0.9 * 0.5 * 0.8), ("last", 0.8), ("mean", (0.9 + 0.5 + 0.8) / 3)]
)
def test_aggregations_match_hand_computation(how, expected):
    assert aggregate([0.9, 0.5, 0.8], how) == pytest.approx(expected)


def test_aggregate_rejects_unknown_and_scores_empty_solution_lowest():
    with pytest.raises(ValueError, match="median"):
        aggregate([0.5], "median")
    assert aggregate([], "min") == 0.0


def test_verifier_scorer_scores_true_false_and_unverifiable_steps():
    steps = ["3 + 4 = 7", "7 * 2 = 15", "So Tom is happy"]
    assert VerifierScorer().score_steps("q", steps) == [1.0, 0.0, 0.5]
    assert VerifierScorer(neutral=0.2).score_steps("q", steps) == [1.0, 0.0, 0.2]
    assert VerifierScorer().passes(steps) is False
    assert VerifierScorer().passes(["3 + 4 = 7", "So Tom is happy"]) is True
    assert isinstance(VerifierScorer(), StepScorer)
    with pytest.raises(ValueError):
        VerifierScorer(neutral=1.5)


def test_weighted_scorer_is_linear_combination_per_step():
    prm = BatchLookupScorer({"3 + 4 = 7": 0.8, "7 * 2 = 15": 0.6})
    mixed = WeightedScorer([(prm, 0.75), (VerifierScorer(), 0.25)])
    scores = mixed.score_steps("q", ["3 + 4 = 7", "7 * 2 = 15", "So Tom is happy"])
    assert scores == pytest.approx([0.75 * 0.8 + 0.25 * 1.0, 0.75 * 0.6 + 0.25 * 0.0, 0.75 * 0.5 + 0.25 * 0.5])
    # The component's batched path is used: the PRM shares the prompt across solutions.
    mixed.score_best_of_n("q", [["3 + 4 = 7"], ["7 * 2 = 15"]])
    assert prm.calls["score_steps"] == 0 and prm.calls["score_best_of_n"] == 2
    pairs = [["3 + 4 = 7", "7 * 2 = 15"], ["So Tom is happy"]]
    for batched, steps in zip(mixed.score_steps_batch(["q", "q"], pairs), pairs):
        assert batched == pytest.approx(mixed.score_steps("q", steps))


@pytest.mark.parametrize("check_transitions", [False, True])
def test_checker_and_mix_score_step_by_step_as_they_score_whole_paths(check_transitions):
    steps = ["x = 3 + 4", "x = 7", "x = 8", "2 * x = 16", "So Tom is happy"]
    checker = VerifierScorer(check_transitions=check_transitions)
    prm = LookupScorer({"x = 7": 0.9, "x = 8": 0.1})
    mixed = WeightedScorer([(prm, 0.5), (checker, 0.5)])
    for scorer in (checker, mixed):
        states, scores = [scorer.start("q")], []
        for step in steps:
            (score,), states = scorer.extend(states, [step])
            scores.append(score)
        assert scores == pytest.approx(scorer.score_steps("q", steps))
    # One state may be extended by several steps at once; states are never modified.
    root = mixed.start("q")
    scores, _ = mixed.extend([root, root], ["3 + 4 = 7", "3 + 4 = 8"])
    assert scores == pytest.approx([0.5 * 0.5 + 0.5 * 1.0, 0.5 * 0.5 + 0.5 * 0.0])


def test_weighted_scorer_outcome_mix_and_clear_errors():
    first = OutcomeFromSteps(LookupScorer({"a": 0.2, "b": 0.9}), "min")
    second = OutcomeFromSteps(LookupScorer({"a": 0.2, "b": 0.9}), "last")
    mixed = WeightedScorer([(first, 0.5), (second, 0.5)])
    assert isinstance(mixed, OutcomeScorer)
    assert mixed.score("q", "a\nb") == pytest.approx(0.5 * 0.2 + 0.5 * 0.9)
    with pytest.raises(TypeError, match="OutcomeFromSteps"):
        WeightedScorer([(LookupScorer({}), 1.0)]).score("q", "a")
    with pytest.raises(ValueError):
        WeightedScorer([])


def test_outcome_from_steps_splits_and_aggregates():
    scorer = LookupScorer({"3 + 4 = 7": 0.9, "The answer is 7": 0.6})
    assert OutcomeFromSteps(scorer, "prod").score("q", "3 + 4 = 7\nThe answer is 7") == pytest.approx(0.54)
    assert OutcomeFromSteps(scorer, "last").score("q", "3 + 4 = 7\nThe answer is 7") == pytest.approx(0.6)
    with pytest.raises(ValueError):
        OutcomeFromSteps(scorer, "max")


def test_score_solutions_uses_batch_path_and_checks_lengths():
    batch = BatchLookupScorer({"x": 0.1})
    assert score_solutions(batch, "q", [["x", "y"], [], ["x"]]) == [[0.1, 0.5], [], [0.1]]
    assert batch.calls == {"score_steps": 0, "score_best_of_n": 1}
    single = LookupScorer({"x": 0.1})
    assert score_solutions(single, "q", [["x"], ["y"]]) == [[0.1], [0.5]]
    assert single.calls["score_steps"] == 2

    class Broken:
        def score_steps(self, prompt, steps):
            return [0.5]

    with pytest.raises(ValueError, match="1 scores for 2 steps"):
        score_solutions(Broken(), "q", [["a", "b"]])
