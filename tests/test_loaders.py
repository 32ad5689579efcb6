"""Every loader on small fixture files in its source's format, including malformed lines."""

import json
import logging
from pathlib import Path

import pytest

from tasks.math import RecordError
from tasks.math.loaders import (
    LoadReport,
    boxed_answer,
    detect_source,
    iter_jsonl,
    load_gsm8k,
    load_math,
    load_math_shepherd,
    load_prm800k,
    load_processbench,
    load_report,
    load_step_dataset,
    load_trl_stepwise,
    read_jsonl,
)

FIXTURES = Path(__file__).parent / "fixtures"
COLUMNS = ["id", "prompt", "completions", "labels", "reference"]


def test_gsm8k_reference_solutions():
    data = load_gsm8k(FIXTURES / "gsm8k.jsonl")
    assert data.column_names == COLUMNS and len(data) == 3
    first = data[0]
    assert first["completions"] == [
        "In the afternoon she picks 14*2 = <<14*2=28>>28 apples.",
        "Altogether she picks 14+28 = <<14+28=42>>42 apples.",
        "The answer is 42",
    ]
    assert first["labels"] == [True, True, True] and first["reference"] == "42"
    assert first["id"] == "gsm8k-1"
    bare = load_gsm8k(FIXTURES / "gsm8k.jsonl", with_answer_step=False, keep_annotations=False)
    assert bare[2]["completions"] == ["4 tickets cost 4*3 = $12."]


def test_math_boxed_answers_and_answer_field():
    data = load_math(FIXTURES / "math.jsonl")
    assert data["reference"] == ["\\frac{1}{2}", "\\{-1, 1\\}", "42"]
    assert data[0]["completions"][1] == "Simplifying, the sum is $\\boxed{\\frac{1}{2}}$."  # blank-line steps
    assert data[2]["id"] == "test/prealgebra/1.json" and len(data[2]["completions"]) == 2
    assert all(all(labels) for labels in data["labels"])


def test_boxed_answer_helper():
    assert boxed_answer("so $\\boxed{\\frac{a}{b^{2}}}$ and") == "\\frac{a}{b^{2}}"
    assert boxed_answer("first \\boxed{1}, finally \\fbox{2}") == "2"
    assert boxed_answer("\\boxed 5$") == "5"
    assert boxed_answer("\\boxed{1") is None and boxed_answer("no box") is None


def test_prm800k_phase1_chosen_and_human_steps():
    data = load_prm800k(FIXTURES / "prm800k_phase1.jsonl")
    assert len(data) == 1 and data[0]["reference"] == "6"
    assert data[0]["completions"] == [
        "I need the largest number dividing both $12$ and $18$.",
        "$12 = 2^2 \\cdot 3$ and $18 = 2 \\cdot 3^2$.",
        "The common primes with lowest powers give $2 \\cdot 3 = 6$.",
        "# Answer\n\n6",
    ]
    assert data[0]["labels"] == [True, True, True, True]  # rating 0 -> positive by default
    assert load_prm800k(FIXTURES / "prm800k_phase1.jsonl", neutral="negative")[0]["labels"][0] is False
    half = load_prm800k(FIXTURES / "prm800k_phase1.jsonl", neutral="half")
    assert half[0]["labels"] == [0.5, 1.0, 1.0, 1.0]
    with_alternatives = load_prm800k(FIXTURES / "prm800k_phase1.jsonl", alternatives=True)
    # two rejected alternatives (-1) at steps 1 and 2
    assert len(with_alternatives) == 3
    assert sorted(r["labels"][-1] for r in with_alternatives) == [False, False, True]
    assert len(set(with_alternatives["id"])) == 3
    with pytest.raises(ValueError):
        load_prm800k(FIXTURES / "prm800k_phase1.jsonl", neutral="ignore")


def test_prm800k_phase2_stops_at_the_first_error_and_reports_unlabelled(caplog):
    with caplog.at_level(logging.WARNING):
        data = load_prm800k(FIXTURES / "prm800k_phase2.jsonl")
    assert len(data) == 1
    assert data[0]["completions"] == ["Subtract $3$: $2x = 8$.", "Divide by $2$: $x = 3$."]
    assert data[0]["labels"] == [True, False] and data[0]["reference"] == "4"
    assert load_report(data)["skipped_unlabelled"] == 1
    assert "bad_problem" in caplog.text


def _prm800k_step(text, rating, *alternatives):
    """One PRM800K step whose chosen completion (index 0) is `text`; `alternatives` are
    (text, rating) pairs of the other completions."""
    completions = [{"text": text, "rating": rating, "flagged": None}]
    completions += [{"text": t, "rating": r, "flagged": None} for t, r in alternatives]
    return {"completions": completions, "human_completion": None, "chosen_completion": 0}


def test_a_prm800k_human_step_without_text_is_a_record_error(tmp_path):
    # It was a KeyError, which skip_invalid does not catch: one odd line stopped the whole load.
    human = {"completions": [{"text": "x", "rating": -1, "flagged": None}], "human_completion": {"rating": None},
             "chosen_completion": None}
    row = {"question": {"problem": "P", "ground_truth_answer": "1"},
           "label": {"steps": [_prm800k_step("a", 1), human], "finish_reason": "solution"}}
    path = tmp_path / "human.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(RecordError) as caught:
        load_prm800k(path)
    assert caught.value.field == "label.steps[1].human_completion"
    assert len(load_prm800k(path, skip_invalid=True)) == 0


def test_prm800k_record_ends_at_a_chosen_step_rated_minus_one(tmp_path):
    # A labeler may choose a completion rated -1 and go on; the record still stops there, so
    # no step follows a -1 (no True after that False).
    row = {"question": {"problem": "P", "ground_truth_answer": "1"},
           "label": {"steps": [_prm800k_step("a", 1),
                               _prm800k_step("b (wrong)", -1, ("b'", 1)),
                               _prm800k_step("c", 1, ("c'", -1)),
                               _prm800k_step("# Answer\n\n1", 1)],
                     "finish_reason": "solution"}}
    path = tmp_path / "chosen_wrong.jsonl"
    path.write_text(json.dumps(row) + "\n")
    data = load_prm800k(path)
    assert len(data) == 1
    assert data[0]["completions"] == ["a", "b (wrong)"] and data[0]["labels"] == [True, False]
    # the other completions of the closing step still make records; none from after it
    alternatives = load_prm800k(path, alternatives=True)
    assert [(r["completions"], r["labels"]) for r in alternatives] == [
        (["a", "b (wrong)"], [True, False]), (["a", "b'"], [True, True])]
    # a chosen step rated 0 is not rated -1: with neutral="negative" it is False, and the record goes on
    row["label"]["steps"][1] = _prm800k_step("b (neutral)", 0)
    path.write_text(json.dumps(row) + "\n")
    assert load_prm800k(path, neutral="negative")[0]["labels"] == [True, False, True, True]


def test_prm800k_records_cut_at_an_unrated_step_are_counted_and_logged(tmp_path, caplog):
    def row(*steps):
        return {"question": {"problem": "P", "ground_truth_answer": "1"},
                "label": {"steps": list(steps), "finish_reason": "solution"}}

    rows = [row(_prm800k_step("a", 1), _prm800k_step("b (unrated)", None), _prm800k_step("c", 1),
                _prm800k_step("# Answer\n\n1", 1)),
            row(_prm800k_step("a", 1), _prm800k_step("b", 1), _prm800k_step("c (unrated)", None)),
            row(_prm800k_step("a", 1), _prm800k_step("# Answer\n\n1", 1))]
    path = tmp_path / "unrated.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING):
        data = load_prm800k(path)
    assert [len(r["completions"]) for r in data] == [1, 2, 2]
    report = load_report(data)
    # steps lost: the unrated one and every step after it
    assert (report["records_cut"], report["steps_cut"]) == (2, 4)
    assert "cut 2 record(s) at an unrated step (4 step(s) not written)" in caplog.text


def test_a_prm800k_trajectory_that_ends_on_its_first_error_is_not_counted_as_cut(caplog):
    with caplog.at_level(logging.WARNING):
        data = load_prm800k(FIXTURES / "prm800k_phase2.jsonl")
    assert (load_report(data)["records_cut"], load_report(data)["steps_cut"]) == (0, 0)
    assert "unrated" not in caplog.text


def test_math_shepherd_tags_become_labels():
    data = load_math_shepherd(FIXTURES / "math_shepherd.jsonl")
    assert data[0]["prompt"] == "Janet has 16 eggs and eats 3. She sells the rest at $2 each. How much does she make?"
    assert data[0]["completions"][0] == "Step 1: She has 16 - 3 = <<16-3=13>>13 eggs left."
    assert data[0]["labels"] == [True, True]
    assert data[1]["labels"] == [True, False, False] and data[1]["reference"] is None


def test_a_question_that_says_step_1_keeps_its_text(tmp_path):
    # The first "step 1:" anywhere started the steps: the question was cut and its end became step 1.
    row = {"input": "Follow the recipe, step 1: mix. How many cups? Step 1: 2 cups. ки\nStep 2: The answer is: 2 ки",
           "label": "Follow the recipe, step 1: mix. How many cups? Step 1: 2 cups. +\nStep 2: The answer is: 2 +"}
    path = tmp_path / "shepherd.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (record,) = load_math_shepherd(path)
    assert record["prompt"] == "Follow the recipe, step 1: mix. How many cups?"
    assert record["completions"] == ["Step 1: 2 cups.", "Step 2: The answer is: 2"] and record["labels"] == [True, True]


def test_trl_stepwise_identity_json_and_soft_labels():
    data = load_trl_stepwise(FIXTURES / "trl_stepwise.jsonl")
    rows = [json.loads(line) for line in (FIXTURES / "trl_stepwise.jsonl").read_text().splitlines()]
    assert [{k: r[k] for k in ("prompt", "completions", "labels")} for r in data] == rows
    assert load_trl_stepwise(FIXTURES / "trl_stepwise.json")["prompt"] == data["prompt"]
    soft = load_trl_stepwise(FIXTURES / "trl_soft.jsonl")
    assert soft["labels"] == [[1.0, 1.0], [0.75, 1.0]]


def test_processbench_first_wrong_index():
    data = load_processbench(FIXTURES / "processbench.jsonl")
    assert data["id"] == ["gsm8k-0", "gsm8k-1"]
    assert data[0]["labels"] == [True] * 4
    assert data[1]["labels"] == [True, False, False]


@pytest.mark.parametrize(
    "name, source",
    [
        ("gsm8k.jsonl", "gsm8k"),
        ("math.jsonl", "math"),
        ("prm800k_phase1.jsonl", "prm800k"),
        ("math_shepherd.jsonl", "math_shepherd"),
        ("trl_stepwise.jsonl", "trl"),
        ("processbench.jsonl", "processbench"),
    ],
)
def test_autodetect_matches_the_dedicated_loader(name, source):
    assert detect_source(read_jsonl(FIXTURES / name)[0]) == source
    loaders = {
        "gsm8k": load_gsm8k, "math": load_math, "prm800k": load_prm800k, "math_shepherd": load_math_shepherd,
        "trl": load_trl_stepwise, "processbench": load_processbench,
    }
    assert load_step_dataset(FIXTURES / name).to_list() == loaders[source](FIXTURES / name).to_list()


# (loader, file, line of the first bad record, its field, total bad lines, good lines)
BAD_FILES = [
    (load_gsm8k, "gsm8k_bad.jsonl", 2, None, 4, 2),
    (load_math, "math_bad.jsonl", 2, "solution", 4, 1),
    (load_prm800k, "prm800k_bad.jsonl", 2, "label.steps[0].completions[0].rating", 4, 1),
    (load_math_shepherd, "math_shepherd_bad.jsonl", 2, "label", 5, 1),
    (load_trl_stepwise, "trl_stepwise_bad.jsonl", 2, "labels", 4, 1),
    (load_processbench, "processbench_bad.jsonl", 2, "label", 3, 1),
]


@pytest.mark.parametrize("loader, name, line, field, n_bad, n_good", BAD_FILES)
def test_malformed_lines_raise_with_file_line_and_field(loader, name, line, field, n_bad, n_good):
    with pytest.raises(RecordError) as info:
        loader(FIXTURES / name)
    error = info.value
    assert error.line == line and error.field == field
    assert name in str(error) and f"line {line}" in str(error)


@pytest.mark.parametrize("loader, name, line, field, n_bad, n_good", BAD_FILES)
def test_skip_invalid_skips_and_counts(loader, name, line, field, n_bad, n_good, caplog):
    with caplog.at_level(logging.WARNING):
        data = loader(FIXTURES / name, skip_invalid=True)
    assert len(data) == n_good
    report = load_report(data)
    assert report["skipped_invalid"] == n_bad and len(report["errors"]) == n_bad
    assert f"skipped {n_bad} invalid" in caplog.text


@pytest.mark.parametrize(
    "name, line, field",
    [
        ("gsm8k_bad.jsonl", 3, "answer"),  # missing
        ("gsm8k_bad.jsonl", 4, "answer"),  # no #### line
        ("gsm8k_bad.jsonl", 5, "answer"),  # empty solution
        ("math_bad.jsonl", 3, "solution"),  # no \boxed{}
        ("math_bad.jsonl", 4, "solution"),  # empty
        ("prm800k_bad.jsonl", 3, "label.steps[0].chosen_completion"),
        ("prm800k_bad.jsonl", 4, "label.steps"),
        ("prm800k_bad.jsonl", 5, "question.problem"),
        ("math_shepherd_bad.jsonl", 3, "label"),  # tags not replaced by +/-
        ("math_shepherd_bad.jsonl", 4, "label"),  # missing
        ("math_shepherd_bad.jsonl", 5, "label"),  # tag count differs from step count
        ("trl_stepwise_bad.jsonl", 3, "prompt"),
        ("trl_stepwise_bad.jsonl", 4, "completions"),
        ("trl_stepwise_bad.jsonl", 5, "labels"),
        ("processbench_bad.jsonl", 3, "steps"),
        ("processbench_bad.jsonl", 4, "label"),
    ],
)
def test_each_malformed_line_names_its_field(tmp_path, name, line, field):
    text = (FIXTURES / name).read_text(encoding="utf-8").splitlines()[line - 1]
    path = tmp_path / name
    path.write_text("\n" * (line - 1) + text + "\n", encoding="utf-8")  # same line number
    loader = {
        "gsm8k": load_gsm8k, "math": load_math, "prm800k": load_prm800k, "math_shepherd": load_math_shepherd,
        "trl_stepwise": load_trl_stepwise, "processbench": load_processbench,
    }[name.rsplit("_bad", 1)[0]]
    with pytest.raises(RecordError) as info:
        loader(path)
    assert (info.value.line, info.value.field) == (line, field)
    assert str(path) in str(info.value)


def test_iter_jsonl_numbers_lines_and_names_bad_ones(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n[1, 2]\n{broken\n{"a": 3}\n')
    with pytest.raises(RecordError, match=r"rows\.jsonl, line 4: must be a JSON object, got list"):
        list(iter_jsonl(path))
    path.write_text('{"a": 1}\n{broken\n')
    with pytest.raises(RecordError, match=r"rows\.jsonl, line 2: invalid JSON"):
        list(iter_jsonl(path))
    path.write_text('{"a": 1}\n\n{"a": 2}\n[1, 2]\n{broken\n{"a": 3}\n')
    report = LoadReport(source="jsonl", location=str(path))
    rows = list(iter_jsonl(path, skip_invalid=True, report=report))
    assert rows == [(1, {"a": 1}), (3, {"a": 2}), (6, {"a": 3})]
    assert report.skipped_invalid == 2 and "line 4" in report.errors[0] and "line 5" in report.errors[1]


def test_read_jsonl_and_unknown_sources(tmp_path):
    assert len(read_jsonl(FIXTURES / "gsm8k.jsonl")) == 3
    with pytest.raises(RecordError, match="line 2"):
        read_jsonl(FIXTURES / "gsm8k_bad.jsonl")
    assert len(read_jsonl(FIXTURES / "gsm8k_bad.jsonl", skip_invalid=True)) == 5
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"x": 1}\n')
    with pytest.raises(RecordError, match="cannot tell the source"):
        load_step_dataset(odd)
    with pytest.raises(TypeError):
        load_step_dataset(FIXTURES / "gsm8k.jsonl", neutral="half")


def test_deeply_nested_json_is_one_clear_error(tmp_path):
    from tasks.math.loaders import iter_jsonl

    path = tmp_path / "nested.jsonl"
    path.write_text('{"prompt": "q"}\n' + "[" * 100000 + "]" * 100000 + "\n")
    with pytest.raises(RecordError) as error:
        list(iter_jsonl(path))
    assert "line 2" in str(error.value) and "nested" in str(error.value)


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_utf8_byte_order_mark_is_read_as_text(tmp_path, suffix):
    # Windows and spreadsheet exports start with one; it used to be "invalid JSON ... utf-8-sig".
    from tasks.math.loaders import iter_jsonl

    record = {"prompt": "q", "completions": ["a"], "labels": [True]}
    body = json.dumps(record) + "\n" + json.dumps(record) if suffix == ".jsonl" else json.dumps([record, record])
    path = tmp_path / f"bom{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert [row for _, row in iter_jsonl(path)] == [record, record]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_reference_that_is_not_a_finite_number_names_file_line_and_field(tmp_path, value):
    # json reads bare NaN / Infinity; as the text "nan" such a reference graded every answer wrong.
    from tasks.math.records import read_problems

    path = tmp_path / "problems.jsonl"
    path.write_text('{"question": "2 + 2?", "answer": 4}\n{"question": "3 + 3?", "answer": %s}\n' % value)
    with pytest.raises(RecordError, match=r"problems\.jsonl, line 2, field 'answer'.*finite"):
        read_problems(path)


def test_a_directory_given_as_records_is_named_so_by_every_reader(tmp_path):
    # It was "[Errno 21] Is a directory" in some commands and "no such problems file" in others.
    from tasks.math.loaders import iter_jsonl
    from tasks.math.records import read_candidates, read_problems

    folder = tmp_path / "records.jsonl"
    folder.mkdir()
    for read in (lambda p: list(iter_jsonl(p)), read_problems, read_candidates):
        with pytest.raises(RecordError, match=r"records\.jsonl: is a directory, not a JSONL or JSON file"):
            read(folder)


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_key_given_twice_in_one_record_is_an_error(tmp_path, suffix):
    # JSON's "last one wins" silently replaced the first prompt with the second.
    from tasks.math.loaders import iter_jsonl

    good = '{"prompt": "q", "completions": ["a"], "labels": [true]}'
    twice = '{"prompt": "first", "completions": ["a"], "labels": [true], "prompt": "second"}'
    path = tmp_path / f"twice{suffix}"
    path.write_text(f"{good}\n{twice}\n" if suffix == ".jsonl" else f"[{good},\n{twice}]")
    where = "line 2: " if suffix == ".jsonl" else ""  # a .json file is parsed whole: no record position
    with pytest.raises(RecordError, match=rf"{where}invalid JSON: key 'prompt' appears twice in one object"):
        list(iter_jsonl(path))


def test_a_jsonl_file_named_json_gets_a_hint(tmp_path):
    from tasks.math.loaders import iter_jsonl

    path = tmp_path / "records.json"
    path.write_text('{"prompt": "q"}\n{"prompt": "r"}\n')
    with pytest.raises(RecordError, match=r"one JSON object a line: name it \.jsonl"):
        list(iter_jsonl(path))
