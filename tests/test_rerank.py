import itertools
import json
from fractions import Fraction

import numpy as np
import pytest

import verifiers

from commands.rerank import RerankConfig, rerank_file
from search.rerank import (
    Method,
    accuracy_curve,
    best_of_n,
    build_pool,
    choose,
    group_answers,
    majority_vote,
    numeric_key,
    oracle_pass,
    parse_methods,
    subsets,
    weighted_majority,
)


class LookupScorer:
    """A stand-in PRM: each step's score comes from a table (unknown steps 0.5)."""

    def __init__(self, table):
        self.table = table

    def score_steps(self, prompt, steps):
        return [self.table.get(step, 0.5) for step in steps]

    def score(self, prompt, completion):
        return self.table.get(completion, 0.5)


def solution(tag, answer, n_steps=2):
    return [f"{tag} step {i}" for i in range(n_steps - 1)] + [f"The answer is {answer}"]


def test_half_written_three_ways_is_one_answer():
    assert numeric_key("0.5") == numeric_key("1/2") == numeric_key("\\frac{1}{2}") == Fraction(1, 2)
    assert numeric_key("\\dfrac12") == numeric_key("$0.50$") == Fraction(1, 2)
    assert numeric_key("1,234") == 1234 and numeric_key("-3") == -3 and numeric_key("x + 1") is None
    assert group_answers(["0.5", "1/2", "\\frac{1}{2}", "2", None, "0.50"]) == [0, 0, 0, 1, -1, 0]


def test_non_numeric_answers_fall_back_to_equivalence():
    classes = group_answers(["x = 3", "3", "4", "3"])
    assert classes[0] == classes[1] == classes[3] and classes[2] != classes[1]


def test_majority_vote_counts_classes_and_breaks_ties_by_answer_not_by_order():
    assert majority_vote(["7", "1/2", "3", "0.5"]) == 1  # {1/2, 0.5} has two votes
    # A tie goes to the same answer in either order (a fixed rank of the answers, not their value).
    assert majority_vote(["3", "4", "4", "3"]) == 0 and majority_vote(["4", "3", "3", "4"]) == 1
    assert majority_vote([None, None]) is None


def test_weighted_majority_sums_scores_per_answer():
    # "5": 0.3 + 0.3 = 0.6 beats "7": 0.5; within "5" the best-scored candidate (index 2).
    assert weighted_majority(["5", "7", "5.0"], [0.3, 0.5, 0.31]) == 2
    assert weighted_majority(["5", "7", "5.0"], [0.1, 0.5, 0.3]) == 1
    with pytest.raises(ValueError, match="non-negative"):
        weighted_majority(["5", "7"], [-1.0, 0.5])


def test_weighted_majority_respects_the_aggregation():
    prm = LookupScorer({"a1": 0.9, "a2": 0.1, "b1": 0.9, "b2": 0.2, "c1": 0.6, "c2": 0.6, "The answer is 7": 0.7,
                        "The answer is 5": 0.9})
    solutions = [["a1", "a2", "The answer is 5"], ["b1", "b2", "The answer is 5"], ["c1", "c2", "The answer is 7"]]
    methods = parse_methods("weighted-prm-min,weighted-prm-last,prm-min,prm-last")
    pool = build_pool("q", solutions, scorers={"prm": prm}, methods=methods)
    # min: "5" gets 0.1 + 0.2 = 0.3 < "7" 0.6; last: "5" gets 0.9 + 0.9 = 1.8 > "7" 0.7.
    assert pool.answers[choose("weighted-prm-min", pool)] == "7"
    assert pool.answers[choose("weighted-prm-last", pool)] == "5"
    assert choose("weighted-prm-last", pool) == 0  # tie in "5" at 0.9: first listed
    assert choose("prm-min", pool) == 2 and choose("prm-last", pool) == 0


@pytest.mark.parametrize("how, expected", [("min", 1), ("prod", 2), ("last", 0), ("mean", 3)])
def test_best_of_n_with_each_aggregation_matches_hand_computation(how, expected):
    table = {}
    rows = [[0.5, 0.5, 0.99], [0.6, 0.6, 0.6], [0.95, 0.3, 0.95], [0.99, 0.99, 0.25]]
    solutions = []
    for i, row in enumerate(rows):
        steps = [f"s{i}{j}" for j in range(3)]
        table.update(zip(steps, row))
        solutions.append(steps)
    assert best_of_n("q", solutions, LookupScorer(table), aggregation=how) == expected


def test_outcome_scorer_and_deterministic_ties():
    orm = LookupScorer({"x\nThe answer is 1": 0.9, "y\nThe answer is 2": 0.9})
    texts = ["z\nThe answer is 3", "x\nThe answer is 1", "y\nThe answer is 2"]
    assert best_of_n("q", texts, orm, aggregation=None) == 1
    assert best_of_n("q", [["a"], ["b"], ["c"]], LookupScorer({})) == 0


def test_verifier_filter_drops_false_equation_candidates():
    prm = LookupScorer({"3 + 4 = 8": 0.99, "3 + 4 = 7": 0.7})
    solutions = [["3 + 4 = 8", "The answer is 8"], ["3 + 4 = 7", "The answer is 7"]]
    assert best_of_n("q", solutions, prm) == 0
    assert best_of_n("q", solutions, prm, verifier_filter=True) == 1
    pool = build_pool("q", solutions, scorers={"prm": prm}, methods=parse_methods("majority+verifier"))
    assert pool.passes_verifier == [False, True]
    # Every candidate false: nothing is dropped rather than nothing chosen.
    assert best_of_n("q", [["3 + 4 = 8"], ["2 + 2 = 5"]], prm, verifier_filter=True) == 0


def test_method_names_round_trip():
    for name in ["majority", "majority+verifier", "prm-min", "weighted-prm-last+verifier", "orm", "weighted-orm",
                 "my-prm-mean", "oracle"]:
        assert Method.parse(name).name == name
    assert Method.parse("my-prm-mean").scorer == "my-prm"
    assert Method.parse("orm").aggregation is None


def test_oracle_pass():
    assert oracle_pass(["3", "1/2"], "0.5") and not oracle_pass(["3", None], "0.5")


def _random_pools(n_problems=6, m=8, seed=0):
    rng = np.random.default_rng(seed)
    pools = []
    table = {}
    for p in range(n_problems):
        solutions = []
        for c in range(m):
            answer = str(int(rng.integers(0, 3)))
            step = f"p{p}c{c}"
            table[step] = float(rng.random())
            solutions.append([step, f"The answer is {answer}"])
        pools.append((solutions, "0"))
    methods = parse_methods("majority,prm-min,prm-last,weighted-prm-min,majority+verifier,oracle")
    scorers = {"prm": LookupScorer(table)}
    built = [build_pool("q", s, scorers=scorers, methods=methods, reference=r) for s, r in pools]
    return built, methods


def test_oracle_bounds_every_method_and_majority_at_one_is_pass_at_one():
    pools, methods = _random_pools()
    curve = accuracy_curve(pools, methods, [1, 2, 4, 8], seeds=[0, 1], n_subsets=5)
    by = {(p.method, p.n): p for p in curve}
    pass_at_1 = float(np.mean([np.mean(pool.correct) for pool in pools]))
    for n in [1, 2, 4, 8]:
        for method in methods:
            assert by[(method.name, n)].accuracy_mean <= by[("oracle", n)].accuracy_mean + 1e-12
    for method in methods:  # at N = 1 every method picks the only candidate
        assert by[(method.name, 1)].accuracy_mean == pytest.approx(pass_at_1)
        assert by[(method.name, 1)].accuracy_std == 0.0


def test_seeded_subsampling_is_reproducible():
    first = subsets(10, 3, 6, np.random.default_rng([4, 3, 0]))
    again = subsets(10, 3, 6, np.random.default_rng([4, 3, 0]))
    other = subsets(10, 3, 6, np.random.default_rng([5, 3, 0]))
    assert first == again and first != other
    assert all(len(set(s)) == 3 and s == sorted(s) for s in first)
    assert subsets(10, 1, 6, np.random.default_rng(0)) == [[i] for i in range(10)]
    pools, methods = _random_pools()
    a = accuracy_curve(pools, methods, [2, 4], seeds=[3, 4], n_subsets=4)
    b = accuracy_curve(pools, methods, [2, 4], seeds=[3, 4], n_subsets=4)
    assert a == b


def write_jsonl(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


FIXTURE = [
    {"prompt": "What is 3 + 4?", "reference": "7",
     "completions": ["3 + 4 = 7\nThe answer is 7", "3 + 4 = 8\nThe answer is 8", "3 + 4 = 8\nThe answer is 8"]},
    {"prompt": "What is half of 1?", "reference": "1/2",
     "completions": ["1 / 2 = 0.5\nThe answer is 0.5", "The answer is \\frac{1}{2}", "The answer is 2"]},
]


def test_rerank_cli_votes_without_a_model(tmp_path):
    from commands.cli import main

    path = write_jsonl(tmp_path / "cands.jsonl", FIXTURE)
    assert main(["rerank", "--input", str(path), "--output_dir", str(tmp_path / "out"), "--seeds", "0"]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["accuracy"]["oracle"] == 1.0
    # Majority: "8" wins problem 1, {0.5, \frac{1}{2}} wins problem 2; the verifier drops "3 + 4 = 8".
    assert metrics["accuracy"]["majority"] == 0.5 and metrics["accuracy"]["majority+verifier"] == 1.0
    choices = [json.loads(line) for line in (tmp_path / "out" / "choices.jsonl").read_text().splitlines()]
    assert choices[0]["choices"]["majority"] == {"index": 1, "answer": "8", "correct": False}
    assert "| majority |" in (tmp_path / "out" / "metrics.md").read_text()
    # The verifier is a scorer too, without any model.
    rerank_file(RerankConfig(input=str(path), output_dir=str(tmp_path / "v"), methods="verifier-mean,oracle",
                             seeds="0"))
    assert json.loads((tmp_path / "v" / "metrics.json").read_text())["accuracy"]["verifier-mean"] == 1.0
    with pytest.raises(ValueError, match="--prm"):
        rerank_file(RerankConfig(input=str(path), output_dir=str(tmp_path / "x"), methods="prm-min"))


def test_rerank_cli_with_a_tiny_saved_reward_model(tmp_path):
    import prm
    from commands.cli import main
    from prm.modeling import RewardModel, RewardSettings
    from generation.tiny import build_tiny_causal_lm, train_tokenizer
    from search.scorers import aggregate

    texts = [row["prompt"] + "\n" + c for row in FIXTURE for c in row["completions"]]
    tokenizer = train_tokenizer(texts, vocab_size=300)
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, seed=1), RewardSettings(objective="joint"),
                                      tokenizer=tokenizer)
    model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    path = write_jsonl(tmp_path / "cands.jsonl", FIXTURE)
    out = tmp_path / "out"
    assert main(["rerank", "--input", str(path), "--prm", str(tmp_path / "rm"), "--orm", str(tmp_path / "rm"),
                 "--output_dir", str(out), "--seeds", "0,1", "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"prm-min", "prm-prod", "weighted-prm-last", "orm", "weighted-orm", "prm-min+verifier"} <= set(metrics["accuracy"])
    assert all(value <= metrics["accuracy"]["oracle"] for value in metrics["accuracy"].values())
    # The choice is the argmax of the reloaded model's aggregated step scores.
    scorer = prm.load(str(tmp_path / "rm"), device="cpu")
    choices = [json.loads(line)["choices"] for line in (out / "choices.jsonl").read_text().splitlines()]
    for row, chosen in zip(FIXTURE, choices):
        for how in ["min", "last"]:
            values = [aggregate(scorer.score_steps(row["prompt"], c.split("\n")), how) for c in row["completions"]]
            assert chosen[f"prm-{how}"]["index"] == int(np.argmax(values))


# Issue #12 (5): "50%" is equivalent to both "0.5" and "50", which are not equivalent to each other.
AMBIGUOUS = ["0.5", "50", "50%", "7", "7"]


def _equivalent_either_way(a, b):
    return verifiers.answers_equivalent(a, b) or verifiers.answers_equivalent(b, a)


def test_correctness_is_checked_per_candidate_not_per_answer_class():
    for order in itertools.permutations(["50%", "0.5", "50"]):
        pool = build_pool("q", [solution("s", answer) for answer in order], reference="50")
        assert pool.correct == [verifiers.answers_equivalent("50", answer) for answer in order]
        assert not pool.correct[order.index("0.5")]
        assert oracle_pass(list(order), "50") == any(pool.correct)


def test_answer_classes_hold_only_mutually_equivalent_answers():
    for order in itertools.permutations(["50%", "0.5", "50"]):
        classes = group_answers(list(order))
        for i, j in itertools.combinations(range(len(order)), 2):
            if classes[i] == classes[j]:
                assert _equivalent_either_way(order[i], order[j]), (order, classes)


@pytest.mark.parametrize("answers", [AMBIGUOUS, ["50%", "0.5", "50", "50", "7", "7"], ["3", "4", "4", "3", "x = 3"]])
def test_majority_vote_does_not_depend_on_candidate_order(answers):
    outcomes = set()
    for order in set(itertools.permutations(answers)):
        pool = build_pool("q", [solution("s", answer) for answer in order], reference="50")
        index = choose("majority", pool)
        # Same answer value and same correctness whatever the listing order.
        outcomes.add((numeric_key(pool.answers[index]) or pool.answers[index], pool.correct[index]))
        assert majority_vote(list(order)) == index
    assert len(outcomes) == 1, outcomes


def test_weighted_vote_ties_do_not_depend_on_candidate_order():
    outcomes = set()
    for order in itertools.permutations(range(len(AMBIGUOUS))):
        answers = [AMBIGUOUS[i] for i in order]
        index = weighted_majority(answers, [0.5] * len(answers))
        outcomes.add(numeric_key(answers[index]) or answers[index])
    assert len(outcomes) == 1, outcomes


def test_weighted_vote_sums_do_not_depend_on_candidate_order():
    # "2" sums 0.1 + 0.2 + 0.3: one rounding step above 0.6 left to right, 0.6 right to left;
    # "1" sums exactly 0.6 in any order.
    answers, weights = ["1", "1", "1", "2", "2", "2"], [0.6, 0.0, 0.0, 0.1, 0.2, 0.3]
    chosen = set()
    for order in itertools.permutations(range(len(answers))):
        index = weighted_majority([answers[i] for i in order], [weights[i] for i in order])
        chosen.add(answers[order[index]])
    assert len(chosen) == 1, chosen


@pytest.mark.parametrize("method", ["majority", "weighted-prm-min"])
def test_a_tied_vote_over_a_subset_does_not_depend_on_candidates_outside_it(method):
    # Equal votes went to the class holding the pool's more frequent answer: accuracy at N
    # estimated from subsets of M samples then used the M - N samples a real N-sample vote
    # never sees (majority@2 was pass@2 for a right answer 4 times among 12 wrong ones).
    inside = [solution("a", "7"), solution("b", "100")]
    choices = set()
    for outside in (["7"] * 5 + ["3"] * 2, ["100"] * 5 + ["3"] * 2):
        pool = build_pool("q", inside + [solution(f"o{i}", answer) for i, answer in enumerate(outside)],
                          scorers={"prm": LookupScorer({})}, methods=[Method.parse(method)], reference="7")
        choices |= {pool.answers[choose(method, pool, [0, 1])], pool.answers[choose(method, pool, [1, 0])]}
    assert len(choices) == 1, choices


def test_majority_at_n_from_subsets_is_the_vote_of_each_subset_alone():
    answers = ["7"] * 4 + [str(100 + i) for i in range(12)]
    pool = build_pool("q", [solution(f"s{i}", a) for i, a in enumerate(answers)], reference="7")
    (point,) = accuracy_curve([pool], ["majority"], [2], n_subsets=200)  # all 120 pairs, exactly
    pairs = [(answers[i], answers[j]) for i, j in itertools.combinations(range(16), 2)]
    chosen = [pair[majority_vote(list(pair))] for pair in pairs]
    assert point.accuracy_mean == pytest.approx(chosen.count("7") / 120)
    assert point.accuracy_mean < 54 / 120  # pass@2: not every tie goes to the right answer


def test_outcome_scores_read_the_steps_the_step_scores_read():
    # `orm` scored `scorer.score(prompt, text)`, which split the text at the model's separator,
    # while `prm-*` read the pool's steps (`--step_style`): in one run the two methods saw
    # different steps, and --step_style did nothing for `orm`.
    class StepCounter:
        def score_steps(self, prompt, steps):
            return [0.5] * len(steps)

        def score_solutions(self, prompt, solutions):
            return [[0.5] * len(s) for s in solutions], [float(len(s)) for s in solutions]

        def score(self, prompt, completion):
            return float(len([line for line in completion.split("\n") if line.strip()]))

    texts = ["a = 1\nb = 2\n\nThe answer is 3", "a = 1\n\nb = 2\n\nThe answer is 3"]
    pool = build_pool("q", texts, scorers={"orm": StepCounter()}, methods=parse_methods("orm,orm-min"),
                      step_style="blank")
    assert [len(steps) for steps in pool.steps] == [2, 3]
    assert pool.outcome_scores["orm"] == [2.0, 3.0]


def test_a_rounded_decimal_votes_with_the_value_it_rounds():
    # answers_equivalent takes "0.3333" for 1/3 (a decimal of >= 4 places rounds the value), so
    # the reference judges both right; grouping never compared two plain numbers and split
    # their votes, so three "0.5" outvoted four answers of 1/3.
    assert verifiers.answers_equivalent("1/3", "0.3333")
    classes = group_answers(["1/3", "0.3333", "0.5", "\\frac{1}{3}"])
    assert classes[0] == classes[1] == classes[3] != classes[2]
    answers = ["0.5"] * 3 + ["1/3"] * 2 + ["0.3333"] * 2
    pool = build_pool("q", [solution(f"s{i}", a) for i, a in enumerate(answers)], reference="1/3")
    assert pool.correct[choose("majority", pool)]
    assert group_answers(["3", "4", "12.5", "13"]) == [0, 1, 2, 3]  # distinct values stay apart


def test_a_method_named_twice_is_counted_once():
    # The curve summed each name's hits once per listing: "oracle,oracle" scored 2.0 at N = 2.
    pool = build_pool("q", [solution("a", "7"), solution("b", "8")], reference="7")
    assert parse_methods("majority, majority,oracle") == parse_methods("majority,oracle")
    points = accuracy_curve([pool], ["oracle", "oracle", "majority"], [1, 2])
    assert [(p.method, p.n) for p in points] == [("oracle", 1), ("majority", 1), ("oracle", 2), ("majority", 2)]
    assert {p.n: p.accuracy_mean for p in points if p.method == "oracle"} == {1: 0.5, 2: 1.0}


def test_rerank_report_names_the_problems_left_out_as_too_long(tmp_path, monkeypatch):
    # metrics.md said "1 problems" and gave accuracies over them with no word of the skipped one.
    import commands.rerank as command
    from tasks.math.limits import TooLong

    def build(prompt, *args, **kwargs):
        if prompt == FIXTURE[0]["prompt"]:
            raise TooLong(999, 64)
        return build_pool(prompt, *args, **kwargs)

    monkeypatch.setattr(command, "build_pool", build)
    path = write_jsonl(tmp_path / "cands.jsonl", FIXTURE)
    metrics = rerank_file(RerankConfig(input=str(path), output_dir=str(tmp_path / "out"), seeds="0"))
    assert metrics["problems"] == 1 and metrics["skipped"] == 1
    assert "1 skipped as too long" in (tmp_path / "out" / "metrics.md").read_text()
