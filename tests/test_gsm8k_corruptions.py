"""GSM8K corruptions: exact first wrong step, checked with the step verifier.

The fixture holds 12 GSM8K train records (MIT licence, OpenAI's grade-school-math),
chosen for variety: unit words inside visible expressions ("5 snakes/jaguar * 6 jaguars"),
`x` for times, thousands separators, equations in prose without an annotation, percentages,
a step the replay cannot follow, questions that write their numbers as words, and one
solution without any annotation. Every reference step there is true or uncheckable for
`verifiers.check_step`, and every annotation result is whole (see the note on decimals in
`test_slip_shows_the_precision_of_the_reference`).
"""

import json
import random
import re
from pathlib import Path

import pytest

from tasks.math import (
    GSM8K_ERROR_KINDS,
    GSM8KCorruption,
    answer_step,
    applicable_kinds,
    corrupt_gsm8k,
    gsm8k_corruption_records,
    gsm8k_problem,
    gsm8k_problems,
    holdout_split,
    validate_step_example,
)
from tasks.math.types import Problem
from verifiers import check_step

FIXTURE = Path(__file__).parent / "fixtures" / "gsm8k_train_sample.jsonl"
SEEDS = range(6)


def _rows():
    return [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def problems():
    return gsm8k_problems(_rows(), prefix="fixture")


def _by_question(problems, start):
    return next(problem for problem in problems if problem.question.startswith(start))


def _expected_prefix(reference, wrong):
    """The steps a corruption must keep unchanged before its first wrong step."""
    first = wrong.first_wrong
    if wrong.kind != "dropped_step":
        return [reference[: first]]
    # one reference step (at d <= first) is missing; the others up to `first` are unchanged
    return [reference[:d] + reference[d + 1 : first + 1] for d in range(first + 1)]


def test_fixture_references_are_true(problems):
    assert len(problems) == 12
    for problem in problems:
        assert all(check_step(step) is not False for step in problem.steps), problem.id
        assert problem.steps[-1] == answer_step(problem.answer)


def test_first_wrong_step_is_exact_for_every_kind(problems):
    made = {kind: 0 for kind in GSM8K_ERROR_KINDS}
    for problem in problems:
        reference = list(problem.steps)
        for kind in GSM8K_ERROR_KINDS:
            for seed in SEEDS:
                wrong = corrupt_gsm8k(problem, kind, rng=seed)
                if wrong is None:
                    continue
                made[kind] += 1
                where = (problem.id, kind, seed, wrong.steps)
                assert isinstance(wrong, GSM8KCorruption) and wrong.kind == kind
                first = wrong.first_wrong
                assert 0 <= first < len(wrong.steps) - 1, where  # a reasoning step, not the answer step
                assert wrong.steps[:first] in _expected_prefix(reference, wrong), where
                assert wrong.answer != problem.answer, where
                assert wrong.steps[-1] == answer_step(wrong.answer), where
                length = len(reference) - (kind == "dropped_step")
                assert len(wrong.steps) == length, where
                verdicts = [check_step(step) for step in wrong.steps]
                if kind == "arithmetic_slip":
                    # the slipped step is the only false one: later steps follow from the wrong value
                    assert verdicts[first] is False, where
                    assert False not in verdicts[:first] + verdicts[first + 1:], where
                else:
                    # true arithmetic, wrong number / operation / missing step
                    assert False not in verdicts, where
                assert wrong.steps[first] not in reference, where
    # every kind is exercised on many problems and seeds
    assert made["arithmetic_slip"] >= 11 * len(SEEDS)
    assert min(made.values()) >= 9 * len(SEEDS)


def test_applicable_kinds_on_the_fixture(problems):
    kinds = {problem.id: applicable_kinds(problem) for problem in problems}
    assert sum(len(found) == 4 for found in kinds.values()) == 9
    # questions that write their numbers as words ("ten boxes", "five friends") have none to swap
    assert "wrong_number" not in kinds[_by_question(problems, "Arnel had ten boxes").id]
    # 72 ounces without the step that makes them: 12 / 8 is not a whole number of ounces
    assert "dropped_step" not in kinds[_by_question(problems, "Artemis is making tea").id]
    assert kinds[_by_question(problems, "There are 500 students").id] == ()


def test_kinds_that_cannot_apply_return_none(problems):
    bare = _by_question(problems, "There are 500 students")  # "Juniors:500(.40)=200": nothing to follow
    assert all(corrupt_gsm8k(bare, kind, rng=0) is None for kind in GSM8K_ERROR_KINDS)
    assert corrupt_gsm8k(bare, rng=0) is None
    assert corrupt_gsm8k(_by_question(problems, "Arnel had ten boxes"), "wrong_number", rng=0) is None
    assert corrupt_gsm8k(_by_question(problems, "Artemis is making tea"), "dropped_step", rng=0) is None
    words = Problem(id="w", question="How many?", answer="five", steps=("2+3 = <<2+3=5>>5", answer_step("five")))
    assert corrupt_gsm8k(words, "arithmetic_slip", rng=0) is None  # a final answer that is not a number
    with pytest.raises(ValueError, match="unknown GSM8K error kind"):
        corrupt_gsm8k(problems[0], "wrong_algebra_move", rng=0)
    with pytest.raises(ValueError, match="no reference steps"):
        corrupt_gsm8k(Problem(id="n", question="q", answer="1"), "arithmetic_slip", rng=0)


def test_same_seed_same_corruption(problems):
    for problem in problems:
        for kind in (*GSM8K_ERROR_KINDS, None):
            assert corrupt_gsm8k(problem, kind, rng=3) == corrupt_gsm8k(problem, kind, rng=3)
            assert corrupt_gsm8k(problem, kind, rng=random.Random(7)) == corrupt_gsm8k(
                problem, kind, rng=random.Random(7)
            )
            assert corrupt_gsm8k(problem, kind) == corrupt_gsm8k(problem, kind)  # seed from the id


def test_different_seeds_give_different_corruptions(problems):
    julie = _by_question(problems, "Julie is reading")  # four steps, many sites for every kind
    for kind in GSM8K_ERROR_KINDS:
        variants = {tuple(corrupt_gsm8k(julie, kind, rng=seed).steps) for seed in range(10)}
        assert len(variants) >= 2, kind  # wrong_number: only 12 -> 11 or 13 keeps every amount whole
    spread = {
        tuple(wrong.steps)
        for problem in problems
        for seed in range(4)
        if (wrong := corrupt_gsm8k(problem, rng=seed)) is not None
    }
    assert len(spread) >= 30
    kinds = {corrupt_gsm8k(julie, rng=seed).kind for seed in range(20)}
    assert kinds == set(GSM8K_ERROR_KINDS)  # kind=None draws among the kinds


def test_worked_examples(problems):
    natalia = _by_question(problems, "Natalia sold clips")
    # dropping the first step: the total starts from the stale 48 (the only site)
    dropped = corrupt_gsm8k(natalia, "dropped_step", rng=0)
    assert dropped.steps == ["Natalia sold 48+48 = <<48+48=96>>96 clips altogether in April and May.",
                             "The answer is 96"]
    assert (dropped.first_wrong, dropped.answer) == (0, "96")
    for seed in SEEDS:
        slip = corrupt_gsm8k(natalia, "arithmetic_slip", rng=seed)
        if slip.first_wrong == 0:  # 24 -> 24 + d in the annotation and the text, then 48 + (24 + d)
            value = int(slip.steps[0].split(">>")[1].split()[0])
            assert slip.steps[0] == f"Natalia sold 48/2 = <<48/2={value}>>{value} clips in May."
            assert slip.steps[1] == (
                f"Natalia sold 48+{value} = <<48+{value}={48 + value}>>{48 + value} clips altogether in April and May."
            )
    jaguars = _by_question(problems, "Each bird eats 12 beetles")  # "5 snakes/jaguar * 6 jaguars = <<5*6=30>>30"
    for seed in SEEDS:
        wrong = corrupt_gsm8k(jaguars, "wrong_operation", rng=seed)
        step = wrong.steps[wrong.first_wrong]
        visible, annotation = step.split("<<")[0], step.split("<<")[1].split("=")[0]
        left, operator, right = re.fullmatch(r"(\d+)([-+*/])(\d+)", annotation).groups()
        # the visible expression changed with the annotation, across its unit words
        assert re.search(rf"\b{left}\b[^=]*\s{re.escape(operator)}\s[^=]*\b{right}\b", visible), step


def test_unannotated_prose_equations_follow(problems):
    ralph = _by_question(problems, "Ralph is going to practice")  # "3/5 x 100 = 60" has no annotation
    changed = 0
    for seed in range(12):
        wrong = corrupt_gsm8k(ralph, "wrong_number", rng=seed)
        if wrong.first_wrong == 0:
            changed += 1
            assert "<<" not in wrong.steps[0] and check_step(wrong.steps[0]) is True
            assert wrong.steps[0] != ralph.steps[0]
    assert changed


def test_slip_shows_the_precision_of_the_reference():
    problem = Problem(
        id="share",
        question="Three friends share a $2.46 bill equally. How much does each pay?",
        answer="0.82",
        steps=("Each pays 2.46/3 = $<<2.46/3=0.82>>0.82.", answer_step("0.82")),
        source="gsm8k",
    )
    for seed in range(8):
        wrong = corrupt_gsm8k(problem, "arithmetic_slip", rng=seed)
        # 0.80, not 0.8: a shorter number would claim less precision (0.8 is 0.82 truncated)
        shown = wrong.steps[0].split(">>")[1].rstrip(".")
        assert len(shown.split(".")[1]) == 2 and shown != "0.82"
        assert wrong.answer == shown


def test_records(problems):
    records = gsm8k_corruption_records(problems, k=3, seed=0)
    by_id: dict[str, list[dict]] = {}
    for record in records:
        validate_step_example(record)
        by_id.setdefault(record["id"], []).append(record)
        first = record["first_wrong"]
        assert record["labels"] == [first < 0 or position < first for position in range(len(record["completions"]))]
        assert (record["kind"] == "") == (first == -1)
        assert (record["answer"] == record["reference"]) == (first == -1)
    assert set(by_id) == {problem.id for problem in problems}
    for problem in problems:
        group = by_id[problem.id]
        assert group[0]["completions"] == list(problem.steps) and all(group[0]["labels"])
        corrupted = group[1:]
        assert len({tuple(record["completions"]) for record in group}) == len(group)
        kinds = applicable_kinds(problem)
        assert len(corrupted) == (3 if kinds else 0)
        assert len({record["kind"] for record in corrupted}) == min(3, len(kinds))  # kinds before repeats
    # deterministic, and a problem's records do not depend on the others
    assert gsm8k_corruption_records(problems, k=3, seed=0) == records
    shuffled = problems[::-1]
    again = gsm8k_corruption_records(shuffled, k=3, seed=0)
    assert sorted(again, key=lambda r: r["id"]) == sorted(records, key=lambda r: r["id"])
    assert gsm8k_corruption_records(problems, k=3, seed=1) != records
    assert all(r["kind"] == "wrong_number" for r in gsm8k_corruption_records(problems, 2, kinds=["wrong_number"],
                                                                              include_reference=False))
    assert gsm8k_corruption_records(_rows()[:2], k=1)[0]["id"] == "gsm8k-0"  # raw rows work too
    with pytest.raises(ValueError, match="unknown GSM8K error kinds"):
        gsm8k_corruption_records(problems, kinds=["typo"])


def test_holdout_split():
    items = list(range(2000))
    train, held = holdout_split(items, n_eval=500, seed=0)
    assert len(held) == 500 and len(train) == 1500
    assert sorted(train + held) == items and not set(train) & set(held)
    assert train == sorted(train) and held == sorted(held)  # input order kept
    assert holdout_split(items, 500, seed=0) == (train, held)
    assert holdout_split(items, 500, seed=1)[1] != held
    assert holdout_split(items, 0) == (items, [])
    with pytest.raises(ValueError):
        holdout_split(items, 2001)


def test_problems_from_loader_records(problems):
    pytest.importorskip("datasets")
    from tasks.math import load_gsm8k

    loaded = load_gsm8k(FIXTURE)
    for index, record in enumerate(loaded):
        problem = gsm8k_problem(record, index, prefix="fixture")
        assert problem.steps == problems[index].steps and problem.answer == problems[index].answer
        assert problem.id == record["id"]
    assert gsm8k_problem(problems[0]) is problems[0]
    with pytest.raises(ValueError):
        gsm8k_problem({"question": "q", "answer": "no final line"})
