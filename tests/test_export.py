import json

import pytest

from search.export import rejection_sample, to_dataset, write_sft_jsonl


class LookupScorer:
    def __init__(self, table):
        self.table = table

    def score_steps(self, prompt, steps):
        return [self.table.get(step, 0.5) for step in steps]


PRM = LookupScorer({"good": 0.9, "ok": 0.7, "3 + 4 = 8": 0.95, "bad": 0.1})
SAMPLES = [
    ["ok\nThe answer is 7", "good\nThe answer is 7", "bad\nThe answer is 7", "good\nThe answer is 7",
     "3 + 4 = 8\nThe answer is 8"],
    ["bad\nThe answer is 2", "ok\nThe answer is 3"],
]


def test_top_k_per_prompt_best_first_without_duplicates():
    records = rejection_sample(["p1", "p2"], SAMPLES, PRM, k=3, aggregation="mean")
    # mean scores (the answer step is unknown: 0.5): 3 + 4 = 8 0.725, good 0.7 (twice), ok 0.6, bad 0.3
    assert [(r["prompt"], r["completion"]) for r in records] == [
        ("p1", "3 + 4 = 8\nThe answer is 8"), ("p1", "good\nThe answer is 7"), ("p1", "ok\nThe answer is 7"),
        ("p2", "ok\nThe answer is 3"), ("p2", "bad\nThe answer is 2"),
    ]
    assert [r["score"] for r in records] == pytest.approx([0.725, 0.7, 0.6, 0.6, 0.3])
    # min ties everything in p1 at 0.5 except "bad": ties go to sample order
    assert rejection_sample(["p1"], SAMPLES[:1], PRM, k=1)[0]["completion"] == "ok\nThe answer is 7"


def test_filters_reference_verifier_and_threshold():
    scorer = LookupScorer({"good": 0.9, "ok": 0.7, "3 + 4 = 8": 0.95, "bad": 0.1, "The answer is 8": 0.99,
                           "The answer is 7": 0.8, "The answer is 2": 0.8, "The answer is 3": 0.8})
    best = rejection_sample(["p1"], SAMPLES[:1], scorer, k=1)
    assert best[0]["completion"].startswith("3 + 4 = 8")
    correct = rejection_sample(["p1", "p2"], SAMPLES, scorer, k=1, references=["7", "2"], require_correct=True)
    assert [r["completion"] for r in correct] == ["good\nThe answer is 7", "bad\nThe answer is 2"]
    verified = rejection_sample(["p1"], SAMPLES[:1], scorer, k=1, verifier_filter=True)
    assert verified[0]["completion"] == "good\nThe answer is 7"
    assert rejection_sample(["p2"], SAMPLES[1:], scorer, k=5, min_score=0.5)[0]["completion"] == "ok\nThe answer is 3"
    assert len(rejection_sample(["p2"], SAMPLES[1:], scorer, k=5, min_score=0.5)) == 1
    with pytest.raises(ValueError, match="reference"):
        rejection_sample(["p1"], SAMPLES[:1], scorer, require_correct=True)
    with pytest.raises(ValueError):
        rejection_sample(["p1"], SAMPLES[:1], scorer, k=0)


def test_jsonl_and_dataset(tmp_path):
    records = rejection_sample(["p1", "p2"], SAMPLES, PRM, k=1)
    path = write_sft_jsonl(records, tmp_path / "sft" / "data.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == records and set(rows[0]) == {"prompt", "completion", "score"}
    dataset = to_dataset(records)
    assert dataset.column_names == ["prompt", "completion", "score"] and len(dataset) == 2
    assert len(to_dataset([])) == 0
