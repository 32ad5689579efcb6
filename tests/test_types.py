import pytest

from tasks.math import RecordError, outcome_from_steps, validate_step_example


def test_valid_record_normalises_labels():
    record = validate_step_example({"prompt": "q", "completions": ["a", "b"], "labels": [1, 0.25]})
    assert record["labels"] == [True, 0.25]
    assert isinstance(record["labels"][1], float)


@pytest.mark.parametrize(
    "record, field",
    [
        ({"completions": ["a"], "labels": [True]}, "prompt"),
        ({"prompt": "q", "completions": [], "labels": []}, "completions"),
        ({"prompt": "q", "completions": ["a", "b"], "labels": [True]}, "labels"),
        ({"prompt": "q", "completions": ["a"], "labels": [1.5]}, "labels"),
        ({"prompt": "q", "completions": ["  "], "labels": [True]}, "completions"),
    ],
)
def test_bad_records_name_file_line_and_field(record, field):
    with pytest.raises(RecordError) as info:
        validate_step_example(record, path="data.jsonl", line=7)
    assert info.value.field == field
    assert "data.jsonl" in str(info.value) and "line 7" in str(info.value) and field in str(info.value)


def test_outcome_view_is_worst_step():
    assert outcome_from_steps({"prompt": "q", "completions": ["a", "b"], "labels": [True, False]})["label"] is False
    assert outcome_from_steps({"prompt": "q", "completions": ["a", "b"], "labels": [0.9, 0.4]})["label"] == 0.4


def test_outcome_view_keeps_the_steps_it_joins():
    # A step holding the separator ("a\nb") would come back as two steps if the joined text
    # were split again, so the view carries the steps themselves.
    record = {"prompt": "q", "completions": ["3 + 4 = 7\n7 - 2 = 5", "The answer is 5"], "labels": [True, True]}
    view = outcome_from_steps(record)
    assert view["steps"] == record["completions"] and view["steps"] is not record["completions"]
    assert view["completion"] == "3 + 4 = 7\n7 - 2 = 5\nThe answer is 5" and view["label"] is True
