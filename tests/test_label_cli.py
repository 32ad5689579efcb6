"""`prm label`: step-labelled and candidates input, errors naming file/line/field, rollouts
through a tiny saved policy, resume."""

from __future__ import annotations

import json

import pytest

from commands.cli import main as prm_main
from commands.label import LabelConfig, label_file
from tasks.math.types import RecordError, validate_step_example
from test_labelling import checkers  # noqa: F401  (real verifiers, or stand-ins until they land)

QUESTION = "Tom has 3 apples and buys 4 more. How many apples?"


def write_jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_step_records_are_relabelled_and_written_as_valid_records(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [
        {"prompt": QUESTION, "completions": ["3 + 4 = 8", "The answer is 8"], "labels": [True, True],
         "reference": "7", "id": "a"},
        {"prompt": QUESTION, "completions": ["He counts them.", "The answer is 7"], "labels": [False, True],
         "reference": 7},
        # No reference: the unverifiable step keeps its given label.
        {"prompt": QUESTION, "completions": ["He counts them.", "3 + 4 = 7"], "labels": [False, True]},
    ])
    output = tmp_path / "out.jsonl"
    stats = label_file(LabelConfig(input=str(source), output=str(output)))
    records = read_jsonl(output)
    for record in records:
        validate_step_example(record)
    assert [r["labels"] for r in records] == [[False, False], [True, True], [False, True]]
    assert records[0]["label_sources"] == ["symbolic", "after_error"] and records[0]["id"] == "a"
    assert records[2]["label_sources"] == ["given", "symbolic"]
    assert [r["line"] for r in records] == [1, 2, 3]
    assert stats["steps"] == 6
    assert json.loads((tmp_path / "out.stats.json").read_text())["solutions"] == 3


def test_candidates_are_split_into_steps_through_the_prm_command(tmp_path):
    pytest.importorskip("tasks.math.steps")
    source = write_jsonl(tmp_path / "cands.jsonl", [
        {"prompt": QUESTION, "reference": "7",
         "completions": ["3 + 4 = 7\nThe answer is 7", "3 + 4 = 9\nThe answer is 9"]},
    ])
    output = tmp_path / "out.jsonl"
    assert prm_main(["label", "--input", str(source), "--output", str(output), "--format", "candidates"]) == 0
    records = read_jsonl(output)
    assert [r["completions"] for r in records] == [["3 + 4 = 7", "The answer is 7"], ["3 + 4 = 9", "The answer is 9"]]
    assert [r["labels"] for r in records] == [[True, True], [False, False]]


@pytest.mark.parametrize(
    "line, field",
    [
        ('{"prompt": "q", "completions": ["a"], "labels": [true]', None),  # broken JSON
        ({"prompt": "q", "completions": ["He counts."], "labels": [True, False], "reference": "1"}, "labels"),
        ({"prompt": "q", "completions": ["He counts."]}, "reference"),
        ({"prompt": "", "completions": ["x"], "reference": "1"}, "prompt"),
        ({"prompt": "q", "completions": "3 + 4 = 7", "reference": "1"}, "completions"),
    ],
)
def test_bad_lines_raise_errors_naming_file_line_and_field(tmp_path, line, field):
    good = {"prompt": QUESTION, "completions": ["3 + 4 = 7"], "labels": [True], "reference": "7"}
    source = write_jsonl(tmp_path / "bad.jsonl", [good, line])
    with pytest.raises(RecordError) as caught:
        label_file(LabelConfig(input=str(source), output=str(tmp_path / "out.jsonl"), format="auto"))
    assert caught.value.line == 2 and caught.value.path == str(source)
    assert caught.value.field == field
    assert "bad.jsonl" in str(caught.value)


def test_rollouts_through_a_saved_tiny_policy_and_resume(tmp_path):
    from generation.tiny import save_tiny_causal_lm

    texts = [f"Question: {QUESTION}\nSolution:\n3 + 4 = 7\nThe answer is 7\n"] * 4
    policy_dir = save_tiny_causal_lm(tmp_path / "policy", texts, size="tiny", seed=0)
    records = [
        {"prompt": QUESTION, "completions": ["He thinks.", "He counts.", "The answer is 7"],
         "labels": [True, True, True], "reference": "7"}
        for _ in range(3)
    ]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    config = LabelConfig(input=str(source), output=str(tmp_path / "out.jsonl"), policy=str(policy_dir),
                         n_rollouts=2, max_new_tokens=8, mode="soft", batch_solutions=2, device="cpu")
    stats = label_file(config)
    first = read_jsonl(tmp_path / "out.jsonl")
    assert stats["steps_by_source"] == {"rollout": 6, "answer": 3}
    for record in first:
        assert record["label_sources"] == ["rollout", "rollout", "answer"]
        assert all(0.0 <= label <= 1.0 for label in record["labels"]) and record["labels"][-1] == 1.0

    # Resume after losing the last line: only line 3 is labelled again.
    (tmp_path / "out.jsonl").write_text("".join(json.dumps(r) + "\n" for r in first[:2]), encoding="utf-8")
    resumed = label_file(LabelConfig(**{**config.__dict__, "resume": True}))
    assert resumed["solutions"] == 1
    assert [r["line"] for r in read_jsonl(tmp_path / "out.jsonl")] == [1, 2, 3]

    # Rollouts on another device type draw another random stream: as if lines 1-2 came from a
    # GPU, going on here would put a second run's labels after the first's, so it is refused.
    record = tmp_path / "out.jsonl.run.json"
    assert json.loads(record.read_text())["device"] == "cpu"
    record.write_text(json.dumps({**json.loads(record.read_text()), "device": "cuda"}))
    kept = (tmp_path / "out.jsonl").read_text()
    with pytest.raises(ValueError, match="device: earlier output 'cuda', now 'cpu'"):
        label_file(LabelConfig(**{**config.__dict__, "resume": True}))
    assert (tmp_path / "out.jsonl").read_text() == kept


def test_consensus_statistics_count_exactly_the_written_labels(tmp_path, monkeypatch):
    from generation.policy import HFPolicy
    from test_labelling import StubPolicy

    # No rollout from "7 * 2 = 14" reaches 14 though its claim checks: each solution is cut
    # there (the second before its first step, so not written at all).
    policy = StubPolicy("14", hits=lambda prefix: 0 if prefix.endswith("7 * 2 = 14\n") else 2)
    monkeypatch.setattr(HFPolicy, "from_pretrained", classmethod(lambda cls, *args, **kwargs: policy))
    records = [{"prompt": QUESTION, "completions": ["3 + 4 = 7", "7 * 2 = 14", "14 - 0 = 14", "The answer is 14"],
                "labels": [True, True, False, False], "reference": "14"},
               {"prompt": QUESTION, "completions": ["7 * 2 = 14", "14 - 0 = 14", "The answer is 14"],
                "labels": [True, True, True], "reference": "14"}]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    output = tmp_path / "out.jsonl"
    stats = label_file(LabelConfig(input=str(source), output=str(output), policy="stub", mode="consensus",
                                   n_rollouts=2))
    written = read_jsonl(output)
    assert [r["label_sources"] for r in written] == [["symbolic+rollout"]]
    saved = json.loads((tmp_path / "out.stats.json").read_text())
    assert saved == stats
    sources = [source for record in written for source in record["label_sources"]]
    assert saved["steps_by_source"] == {source: sources.count(source) for source in set(sources)}
    assert saved["emitted_steps"] == sum(saved["steps_by_source"].values()) == 1
    assert saved["compared_with_given_labels"] == 1
    assert saved["symbolic_rollout_compared"] == 5  # the labellers' agreement: every step both judged
    assert (saved["steps"], saved["dropped_solutions"]) == (7, 1)


def _candidates_and_full_output(tmp_path):
    """Four input lines of three candidate solutions each (no policy: checks only), labelled in
    batches of one line, and the uninterrupted output."""
    pytest.importorskip("tasks.math.steps")
    rows = [{"prompt": f"What is {a} + 1?", "reference": str(a + 1),
             "completions": [f"{a} + {b} = {a + b}\nThe answer is {a + b}" for b in (1, 2, 3)]} for a in range(1, 5)]
    source = write_jsonl(tmp_path / "cands.jsonl", rows)
    config = LabelConfig(input=str(source), output=str(tmp_path / "out.jsonl"), batch_solutions=3)
    label_file(config)
    return config, (tmp_path / "out.jsonl").read_text(encoding="utf-8")


def test_resume_after_a_flush_inside_a_batch_labels_the_rest_of_that_line(tmp_path):
    config, full = _candidates_and_full_output(tmp_path)
    output = tmp_path / "out.jsonl"
    # The text buffer reached the disk inside a batch: line 1 and the first solution of line 2.
    output.write_text("".join(full.splitlines(keepends=True)[:4]), encoding="utf-8")
    resumed = label_file(LabelConfig(**{**config.__dict__, "resume": "latest"}))
    assert output.read_text(encoding="utf-8") == full
    assert resumed["solutions"] == 9  # line 2 again (its partial record dropped), then lines 3 and 4


def test_resume_after_a_half_written_line_cuts_it_off(tmp_path, capsys):
    config, full = _candidates_and_full_output(tmp_path)
    output = tmp_path / "out.jsonl"
    lines = full.splitlines(keepends=True)
    output.write_text("".join(lines[:4]) + lines[4][:25], encoding="utf-8")
    assert prm_main(["label", "--input", config.input, "--output", str(output), "--batch_solutions", "3",
                     "--resume", "latest"]) == 0
    assert output.read_text(encoding="utf-8") == full
    assert "resuming after input line 1" in capsys.readouterr().out


def test_resume_of_an_output_with_a_broken_line_names_the_file_and_line(tmp_path):
    config, full = _candidates_and_full_output(tmp_path)
    output = tmp_path / "out.jsonl"
    lines = full.splitlines(keepends=True)
    output.write_text(lines[0] + "not json\n" + "".join(lines[1:3]), encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        label_file(LabelConfig(**{**config.__dict__, "resume": "latest"}))
    assert str(output) in str(caught.value) and "line 2" in str(caught.value)
    assert output.read_text(encoding="utf-8") == lines[0] + "not json\n" + "".join(lines[1:3])  # left as it was


def test_format_steps_refuses_a_line_without_steps_instead_of_one_whole_solution_step(tmp_path):
    # A GSM8K row under --format steps became a record whose one "step" was the whole solution.
    row = {"question": QUESTION, "answer": "3 + 4 = <<3+4=7>>7\nSo 7 apples.\n#### 7"}
    source = write_jsonl(tmp_path / "gsm8k.jsonl", [row])
    with pytest.raises(RecordError) as caught:
        label_file(LabelConfig(input=str(source), output=str(tmp_path / "out.jsonl"), format="steps"))
    assert caught.value.line == 1 and caught.value.field == "completions"
    assert "--format auto" in str(caught.value)
