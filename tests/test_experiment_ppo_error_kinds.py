"""experiments/ppo_error_kinds.py: a policy's greedy solutions sorted into the kinds of right and
wrong that the checker and the reference steps tell apart."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

REFERENCE = ["He buys 1 more: 6 + 1 = 7", "He buys 7 more: 7 + 7 = 14", "The answer is 14"]


@pytest.mark.parametrize("steps, kind", [
    (REFERENCE, 0),
    (["He buys 1 more and 7 more: 6 + 8 = 14", "The answer is 14"], 1),
    (["He buys 1 more: 6 + 1 = 8", "He buys 7 more: 8 + 7 = 14", "The answer is 14"], 2),
    (["He buys 1 more: 6 + 1 = 8", "He buys 7 more: 8 + 7 = 15", "The answer is 15"], 3),
    (["He buys 1 more: 6 + 1 = 7", "He buys 7 more: 7 - 7 = 0", "The answer is 0"], 4),
])
def test_each_kind_of_solution(steps, kind):
    from ppo_error_kinds import KINDS, solution_kind

    from verifiers import verify_solution

    assert solution_kind(steps, verify_solution(None, steps).steps, REFERENCE, "14") == KINDS[kind]


def test_first_error_scores_are_the_checked_steps_up_to_the_first_false_one():
    from ppo_error_kinds import first_error_scores

    from verifiers import verify_solution

    steps = ["He buys 1 more: 6 + 1 = 7", "He is happy", "He buys 7 more: 7 + 7 = 15", "15 - 1 = 14", "The answer is 14"]
    assert first_error_scores(verify_solution(None, steps).steps, [0.9, 0.5, 0.2, 0.8, 1.0]) == ([0.9], [0.2])
    # The answer step is left out.
    assert first_error_scores(verify_solution(None, REFERENCE).steps, [0.9, 0.8, 0.1]) == ([0.9, 0.8], [])


def test_the_counts_cover_every_problem_and_the_accuracy_is_the_right_kinds(tmp_path):
    import ppo_error_kinds

    from commands.demo import ASSETS

    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"question": q, "answer": a, "steps": s}) + "\n" for q, a, s in [
        ("Sam has 6 cards. He buys 1 more. He buys 7 more. How many cards does he have now?", "14", REFERENCE),
        ("Mia has 5 eggs. She buys 2 more. How many eggs does she have now?", "7",
         ["She buys 2 more: 5 + 2 = 7", "The answer is 7"]),
    ]))
    result = ppo_error_kinds.main(["--problems", str(problems), "--policies", str(ASSETS / "policy"),
                                   "--prm", str(ASSETS / "reward"), "--output", str(tmp_path / "kinds.json")])
    row = result["policies"][str(ASSETS / "policy")]
    assert sum(row["counts"].values()) == 2 == len(row["kinds"])
    assert row["fixed"] == row["broken"] == 0  # the first policy is the one compared against
    assert row["accuracy"] == sum(row["counts"][k] for k in ppo_error_kinds.KINDS[:3]) / 2
    assert json.loads((tmp_path / "kinds.json").read_text()) == result
    stats = row["prm_scores"]
    assert stats["true_steps"] + stats["first_false_steps"] > 0
    assert 0.0 <= stats["mean_true"] <= 1.0
