"""Readers on hostile input (review of tasks/math/loaders.py, records.py, commands/hub_data.py):
one clear error naming file and line, no traceback, no record silently changed."""

import json
import os

import pytest

from tasks.math import RecordError
from tasks.math.loaders import load_math, load_math_shepherd, load_trl_stepwise
from tasks.math.records import read_problems, read_reward_records

STEP = {"prompt": "What is 2 + 3?", "completions": ["2 + 3 = 5", "The answer is 5"], "labels": [True, True]}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_json_file_nested_too_deeply_is_a_record_error(tmp_path):
    # A .jsonl line nested this deep was already a RecordError; a .json file raised RecursionError,
    # which the command line does not catch (a traceback at the user).
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RecordError, match="deep.json.*nested too deeply"):
        read_reward_records(path, "step")


@pytest.fixture
def fake_hub(monkeypatch):
    import datasets

    calls = []

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, split))
        if path == "me/steps":
            return datasets.Dataset.from_list([STEP])
        raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_a_hub_id_with_a_split_reads_that_split(fake_hub):
    # `prm train --eval_data owner/name:test` (the documented form) asked the hub for a dataset
    # named "owner/name:test".
    (record,) = read_reward_records("me/steps:test", "step")
    assert fake_hub == [("me/steps", "test")] and record["completions"] == STEP["completions"]
    read_reward_records("me/steps", "step")
    assert fake_hub[-1] == ("me/steps", "train")


def test_a_missing_local_file_is_named_as_missing(tmp_path, fake_hub):
    # It went to the hub as a dataset id: "Couldn't reach 'runs/steps.jsonl' on the Hub".
    missing = str(tmp_path / "steps.jsonl")
    with pytest.raises(FileNotFoundError, match="steps.jsonl: no such file"):
        read_reward_records(missing, "step")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_reward_records("runs/steps.jsonl", "outcome")
    assert fake_hub == []


def test_a_record_id_zero_is_kept(tmp_path):
    path = write_jsonl(tmp_path / "steps.jsonl", [{**STEP, "id": 0}, {**STEP, "id": 1}])
    assert load_trl_stepwise(path)["id"] == ["0", "1"]


def test_math_shepherd_label_text_after_the_last_tag_must_match_the_input(tmp_path):
    # Every piece before a tag was compared; what followed the last tag was not, so a label text
    # that is not the input's (another row's, a truncated input) could pass.
    text = "What is 2 + 3? Step 1: 2 + 3 = 5. ки\nStep 2: The answer is 5 ки"
    good = {"input": text, "label": text.replace("ки", "+")}
    bad = {"input": text, "label": text.replace("ки", "+") + "\nStep 3: 5 - 1 = 4 -"}
    path = write_jsonl(tmp_path / "shepherd.jsonl", [good, bad])
    with pytest.raises(RecordError, match="line 2, field 'label'"):
        load_math_shepherd(path)
    assert load_math_shepherd(path, skip_invalid=True)["labels"] == [[True, True]]


def test_math_numeric_answer_is_the_reference_as_in_the_problems_reader(tmp_path):
    # One record, two readers: load_math ignored a numeric "answer" and took the \boxed{} instead.
    row = {"problem": "What is 2 + 3?", "solution": "2 + 3 = 5, so \\boxed{5}.", "answer": 6}
    path = write_jsonl(tmp_path / "math.jsonl", [row])
    (problem,) = read_problems(path)
    assert load_math(path)["reference"] == [problem.answer] == ["6"]


def test_concurrent_hub_copies_do_not_interleave(tmp_path, monkeypatch):
    # Two commands fetching the same dataset at once wrote the same "<split>.jsonl.partial": the
    # second truncated it under the first, whose later lines then landed in the finished copy.
    import datasets

    import commands.hub_data as hub_data

    rows = [{**STEP, "id": str(i)} for i in range(4)]

    class Rows:
        def __iter__(self):
            for index, row in enumerate(rows):
                if index == 2 and not started:
                    started.append(True)
                    nested.append(hub_data.local_copy("me/steps", option="input"))  # another process
                yield row

    started, nested = [], []
    monkeypatch.setenv("PRM_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: Rows())
    target = hub_data.local_copy("me/steps", option="input")
    assert nested == [target]
    assert [json.loads(line)["id"] for line in open(target, encoding="utf-8")] == ["0", "1", "2", "3"]
    assert os.listdir(os.path.dirname(target)) == ["train.jsonl"]
