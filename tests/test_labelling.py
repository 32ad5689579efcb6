"""Automatic step labels: symbolic rules, Math-Shepherd rollouts with a deterministic stub
policy, consensus truncation, and the statistics helper."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

import verifiers
from tasks.math.prompts import format_solution, policy_prompt
from tasks.math.types import Problem, validate_step_example
from verifiers.labelling import LabelStats, label_many, label_steps

NUMBER = r"-?\d+(?:\.\d+)?"


def _stand_in_check_step(text):
    claims = re.findall(rf"({NUMBER})\s*([-+*/])\s*({NUMBER})\s*=\s*({NUMBER})", text)
    if not claims:
        return None
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
    return all(ops[op](Fraction(a), Fraction(b)) == Fraction(c) for a, op, b, c in claims)


def _stand_in_extract_answer(text, *, fallback_last_number=True):
    match = re.search(r"The answer is\s*(\S+)", text)
    return match.group(1).rstrip(".") if match else None


@pytest.fixture(autouse=True)
def checkers(monkeypatch):
    """The real verifiers where they exist; small stand-ins while they are being written.

    The cases below use only claims every implementation must decide the same way
    ("3 + 4 = 7" true, "3 + 4 = 8" false, prose uncheckable, "The answer is 7" -> "7").
    """
    stand_ins = {
        "check_step": _stand_in_check_step,
        "check_transition": lambda prev, step: None,
        "extract_answer": _stand_in_extract_answer,
        "answers_equivalent": lambda gold, pred: Fraction(gold) == Fraction(pred),
    }
    for name, function in stand_ins.items():
        if not hasattr(verifiers, name):
            monkeypatch.setattr(verifiers, name, function, raising=False)


class StubPolicy:
    """Deterministic policy: a prefix reaches the right answer in `hits(prefix)` of n rollouts
    (the others answer 0). Records every call."""

    def __init__(self, reference: str, hits):
        self.reference, self.hits, self.calls = reference, hits, []

    def complete(self, prefixes, n, *, until_step_end=False):
        self.calls.append(list(prefixes))
        out = []
        for prefix in prefixes:
            k = min(n, self.hits(prefix))
            out.append([f"so on\nThe answer is {self.reference}"] * k + ["The answer is 0"] * (n - k))
        return out


QUESTION = "Tom has 3 apples and buys 4 more, then doubles them. How many apples?"
PROBLEM = Problem(id="p0", question=QUESTION, answer="14")
PROSE = "He thinks about the apples."  # nothing checkable


def test_false_claim_makes_that_step_and_all_later_steps_wrong():
    steps = ["3 + 4 = 7", "7 * 2 = 15", PROSE, "The answer is 14"]
    policy = StubPolicy("14", hits=lambda prefix: 8)
    result = label_steps(PROBLEM, steps, policy=policy, n_rollouts=4)
    assert result.labels == [True, False, False, False]
    assert result.sources == ["symbolic", "symbolic", "after_error", "after_error"]
    assert result.first_false_claim == 1
    # Nothing before the false claim is unverifiable and nothing after needs a rollout.
    assert policy.calls == []


def test_final_answer_step_is_checked_against_the_reference():
    right = label_steps(PROBLEM, ["3 + 4 = 7", "7 * 2 = 14", "The answer is 14"])
    wrong = label_steps(PROBLEM, ["3 + 4 = 7", "7 * 2 = 14", "The answer is 15"])
    assert right.labels[-1] is True and right.sources[-1] == "answer"
    assert wrong.labels[-1] is False and wrong.sources[-1] == "answer"
    assert right.labels[:2] == wrong.labels[:2] == [True, True]


def test_hard_and_soft_rollouts_follow_math_shepherd_in_one_batched_call():
    steps = ["3 + 4 = 7", PROSE, "He doubles them.", "The answer is 14"]
    # The prose step reaches the answer in 3 of 4 rollouts, the next one in none.
    hits = lambda prefix: 3 if prefix.endswith(PROSE + "\n") else 0  # noqa: E731
    hard_policy, soft_policy = StubPolicy("14", hits), StubPolicy("14", hits)
    hard = label_steps(PROBLEM, steps, policy=hard_policy, n_rollouts=4, mode="hard")
    soft = label_steps(PROBLEM, steps, policy=soft_policy, n_rollouts=4, mode="soft")

    assert hard.labels == [True, True, False, True]
    assert hard.sources == ["symbolic", "rollout", "rollout", "answer"]
    assert soft.labels == [1.0, 0.75, 0.0, 1.0]
    assert all(isinstance(label, float) for label in soft.labels)
    assert soft.details[1].rollout_hits == 3 and soft.details[1].rollout_total == 4
    # One call carrying exactly the unverifiable, non-final prefixes, in the policy format.
    assert hard_policy.calls == [
        [policy_prompt(QUESTION) + format_solution(steps[:2]), policy_prompt(QUESTION) + format_solution(steps[:3])]
    ]


def test_a_rollout_is_judged_as_the_whole_solution_it_completes():
    """Evaluation judges a whole solution (`verifiers.is_correct` on its text); a rollout is
    the prefix's steps plus the continuation, and a continuation that adds no answer of its
    own (the policy stopped) reaches what the solution so far states."""
    problem = Problem(id="p2", question="Tom has 3 apples and buys 4 more. How many apples?", answer="7")
    steps = ["So Tom has 7 apples now.", "The answer is 7"]
    assert verifiers.check_step(steps[0]) is None

    class StopsAtOnce:
        def complete(self, prefixes, n, *, until_step_end=False):
            return [["He is done."] * n for _ in prefixes]

    result = label_steps(problem, steps, policy=StopsAtOnce(), n_rollouts=2, mode="soft")
    whole = format_solution(steps[:1]) + "He is done."
    assert verifiers.is_correct(problem.answer, whole)
    assert result.details[0].rollout_hits == 2 and result.labels[0] == 1.0


def test_a_step_no_rollout_saves_does_not_make_later_steps_wrong():
    """Rollout labels are per-step Monte Carlo estimates, as in Math-Shepherd: 0 hits in n
    rollouts is an estimate (the policy may just be weak), not a proven error, so the steps
    after it are judged on their own. Only a false claim makes every later step wrong."""
    steps = [PROSE, "3 + 4 = 7", "7 * 2 = 14", "The answer is 14"]
    result = label_steps(PROBLEM, steps, policy=StubPolicy("14", hits=lambda prefix: 0), n_rollouts=4)
    assert result.labels == [False, True, True, True]
    assert result.sources == ["rollout", "symbolic", "symbolic", "answer"]
    assert result.first_false_claim == -1
    # emitted as labelled: a record can say True after a rollout-judged False
    assert result.to_record(QUESTION, steps)["labels"] == [False, True, True, True]
    soft = label_steps(PROBLEM, steps, policy=StubPolicy("14", hits=lambda prefix: 0), n_rollouts=4, mode="soft")
    assert soft.labels == [0.0, 1.0, 1.0, 1.0]
    # locating a silent error: a checked step after the 0-hit one that a rollout still saves is right
    problem = Problem(id="p1", question="Tom has 3 apples and buys 5 more, then doubles them.", answer="16")
    silent = ["3 + 4 = 7", "7 * 2 = 14", "14 + 0 = 14", "The answer is 14"]
    saved_late = StubPolicy("16", hits=lambda prefix: 1 if prefix.endswith("7 * 2 = 14\n") else 0)
    located = label_steps(problem, silent, policy=saved_late, n_rollouts=4, locate_silent_errors=True)
    assert located.labels == [False, True, False, False]
    assert located.sources == ["rollout", "rollout", "rollout", "answer"]


def test_without_policy_unverifiable_steps_take_the_answer_derived_label():
    right = label_steps(PROBLEM, [PROSE, "3 + 4 = 7", "The answer is 14"])
    wrong = label_steps(PROBLEM, [PROSE, "3 + 4 = 7", "The answer is 9"])
    assert right.labels == [True, True, True] and right.sources[0] == "outcome"
    assert wrong.labels == [False, True, False] and wrong.sources[0] == "outcome"


def test_consensus_marks_disagreements_and_truncates_the_record():
    # Step 0 checks true but no rollout from it reaches the answer: the sources disagree.
    steps = ["3 + 4 = 7", PROSE, "The answer is 14"]
    policy = StubPolicy("14", hits=lambda prefix: 0 if prefix.endswith("3 + 4 = 7\n") else 2)
    result = label_steps(PROBLEM, steps, policy=policy, n_rollouts=4, mode="consensus")
    assert result.labels[0] is None and result.sources[0] == "disagree"
    assert result.labels[1:] == [True, True]
    assert result.to_record(QUESTION, steps) is None

    agreeing = StubPolicy("14", hits=lambda prefix: 0 if prefix.endswith(PROSE + "\n") else 2)
    result = label_steps(PROBLEM, ["3 + 4 = 7", PROSE, "4 + 4 = 9", "The answer is 14"],
                         policy=agreeing, n_rollouts=4, mode="consensus")
    assert result.sources[:3] == ["symbolic+rollout", "rollout", "disagree"]
    record = result.to_record(QUESTION, ["3 + 4 = 7", PROSE, "4 + 4 = 9", "The answer is 14"])
    assert record == {"prompt": QUESTION, "completions": ["3 + 4 = 7", PROSE], "labels": [True, False]}
    validate_step_example(record)


def test_given_labels_fill_unverifiable_steps_when_there_is_no_reference():
    result = label_steps(QUESTION, [PROSE, "3 + 4 = 8", PROSE], given_labels=[True, True, True])
    assert result.labels == [True, False, False]
    assert result.sources == ["given", "symbolic", "after_error"]
    with pytest.raises(ValueError, match="no reference"):
        label_steps(QUESTION, [PROSE])


def test_label_many_sends_all_solutions_rollouts_in_one_call():
    policy = StubPolicy("14", hits=lambda prefix: 1)
    results = label_many(
        [(PROBLEM, [PROSE, "The answer is 14"]), (PROBLEM, [PROSE, PROSE, "The answer is 3"])],
        policy=policy, n_rollouts=2,
    )
    assert len(policy.calls) == 1 and len(policy.calls[0]) == 3
    assert [r.labels for r in results] == [[True, True], [True, True, False]]


def test_bad_arguments_and_bad_policy_output_are_refused():
    with pytest.raises(ValueError, match="consensus"):
        label_steps(PROBLEM, [PROSE, "The answer is 14"], mode="consensus")
    with pytest.raises(ValueError, match="mode"):
        label_steps(PROBLEM, [PROSE, "The answer is 14"], mode="fuzzy")

    class ShortPolicy:
        def complete(self, prefixes, n, *, until_step_end=False):
            return [["The answer is 14"]] * len(prefixes)

    with pytest.raises(ValueError, match="expected 4"):
        label_steps(PROBLEM, [PROSE, "The answer is 14"], policy=ShortPolicy(), n_rollouts=4)


def test_stats_count_sources_and_agreement():
    stats = LabelStats()
    policy = StubPolicy("14", hits=lambda prefix: 0 if prefix.endswith("3 + 4 = 7\n") else 2)
    steps = ["3 + 4 = 7", PROSE, "The answer is 14"]
    stats.add(label_steps(PROBLEM, steps, policy=policy, n_rollouts=2, mode="consensus"), [True, True, True])
    stats.add(label_steps(PROBLEM, ["3 + 4 = 8", "The answer is 14"]), [False, True])
    summary = stats.as_dict()
    assert summary["solutions"] == 2 and summary["steps"] == 5
    # The consensus solution disagrees at its first step, so none of it is written or counted.
    assert summary["steps_by_source"] == {"symbolic": 1, "after_error": 1}
    # The labellers' agreement covers every step both judged: the one step with both disagreed.
    assert summary["symbolic_rollout_compared"] == 1 and summary["symbolic_rollout_agreement"] == 0.0
    # Compared with the given labels: symbolic False (agree), after_error False vs True (disagree).
    assert summary["agreement_with_given_labels"] == pytest.approx(1 / 2)
    assert summary["emitted_steps"] == 2 and summary["dropped_solutions"] == 1
    assert "1 solutions had no agreeing first step" in str(stats)


def test_stats_describe_only_the_labels_written_after_a_consensus_cut():
    # Step 2 disagrees (its claim checks, no rollout from it succeeds), so the record stops
    # after step 1; steps 3 and 4 are labelled but not written and must not be counted.
    steps = ["3 + 4 = 7", "7 * 2 = 14", "14 - 0 = 14", "The answer is 14"]
    policy = StubPolicy("14", hits=lambda prefix: 0 if prefix.endswith("7 * 2 = 14\n") else 2)
    result = label_steps(PROBLEM, steps, policy=policy, n_rollouts=2, mode="consensus")
    assert result.labels == [True, None, True, True]
    written = result.to_record(QUESTION, steps)
    assert written["labels"] == [True]
    stats = LabelStats()
    stats.add(result, [True, False, False, False])
    summary = stats.as_dict()
    assert summary["steps_by_source"] == {"symbolic+rollout": 1}
    # The labellers' agreement is over the three steps both judged, the cut one included (over the
    # written steps alone it would be 100 % by construction).
    assert (summary["symbolic_rollout_compared"], summary["symbolic_rollout_agreement"]) == (3, pytest.approx(2 / 3))
    assert (summary["compared_with_given_labels"], summary["agreement_with_given_labels"]) == (1, 1.0)
    assert summary["steps"] == 4 and summary["emitted_steps"] == len(written["labels"])


def test_silent_errors_are_located_by_rollouts_only_when_the_answer_is_unexplained():
    # "3 + 4 = 7" is true arithmetic but the wrong move for a story that needs 3 + 5;
    # no claim is false, yet the answer is wrong: only rollouts can say which step erred.
    problem = Problem(id="p1", question="Tom has 3 apples and buys 5 more, then doubles them.", answer="16")
    steps = ["3 + 4 = 7", "7 * 2 = 14", "The answer is 14"]
    policy = StubPolicy("16", hits=lambda prefix: 0)
    located = label_steps(problem, steps, policy=policy, n_rollouts=4, locate_silent_errors=True)
    assert located.labels == [False, False, False]
    assert located.sources == ["rollout", "rollout", "answer"]
    assert policy.calls == [[policy_prompt(problem.question) + format_solution(steps[:1]),
                             policy_prompt(problem.question) + format_solution(steps[:2])]]
    # Off (the default), the checked steps keep their symbolic label and no rollout runs.
    quiet = StubPolicy("16", hits=lambda prefix: 0)
    assert label_steps(problem, steps, policy=quiet, n_rollouts=4).labels == [True, True, False]
    assert quiet.calls == []
    # A wrong answer explained by a false claim, or a right answer, needs no rollouts.
    explained = StubPolicy("16", hits=lambda prefix: 0)
    label_steps(problem, ["3 + 5 = 9", "The answer is 18"], policy=explained, locate_silent_errors=True)
    label_steps(problem, ["3 + 5 = 8", "8 * 2 = 16", "The answer is 16"], policy=explained,
                locate_silent_errors=True)
    assert explained.calls == []
