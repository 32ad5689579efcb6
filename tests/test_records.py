"""One reader per record kind (tasks.math.records), the same rules in every command."""

import json

import pytest

from tasks.math.loaders import iter_jsonl
from tasks.math.steps import split_steps
from tasks.math.types import Problem, RecordError


def read_problems(*args, **kwargs):
    from tasks.math.records import read_problems

    return read_problems(*args, **kwargs)


def read_candidates(path):
    from tasks.math.records import read_candidates

    return read_candidates(path)


def write_jsonl(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


SPELLINGS = [
    {"question": "What is 3 + 4?", "answer": "7"},
    {"prompt": "What is 3 + 4?", "reference": 7},
    {"problem": "What is 3 + 4?", "answer": 7},
    {"question": "What is 3 + 4?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},  # GSM8K
    {"prompt": "What is 3 + 4?", "completions": ["3 + 4 = 7", "The answer is 7"], "labels": [True, True],
     "reference": "7"},  # TRL stepwise, as `prm label` writes it
    {"prompt": "What is 3 + 4?", "completion": "3 + 4 = 7\nThe answer is 7", "reference": "7"},
    {"problem": "What is 3 + 4?", "solution": "We add.\n\n$3 + 4 = \\boxed{7}$"},  # MATH
]


def test_every_problem_spelling_reads_the_same_question_and_answer(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", SPELLINGS)
    problems = read_problems(path)
    assert [(p.question, p.answer) for p in problems] == [("What is 3 + 4?", "7")] * len(SPELLINGS)
    assert problems[3].steps == ("3 + 4 = <<3+4=7>>7", "The answer is 7")
    assert problems[4].steps == ("3 + 4 = 7", "The answer is 7") and problems[4].meta["labels"] == [True, True]
    assert problems[5].steps == ("3 + 4 = 7", "The answer is 7")
    assert problems[6].steps == ("We add.", "$3 + 4 = \\boxed{7}$")
    assert problems[0].id == "p.jsonl:1"


@pytest.mark.parametrize("row, field, message", [
    ({"question": ""}, "question", "non-empty string"),
    ({"answer": "7"}, "question", "missing"),
    ({"question": "q"}, "answer", "missing"),
    ({"question": "q", "answer": True}, "answer", "string or a number"),
    ({"question": "q", "answer": ""}, "answer", "empty"),
    ({"question": "q", "prompt": "other q", "answer": "1"}, "prompt", "differs"),
    ({"question": "q", "answer": "1", "reference": "2"}, "answer", "disagrees"),
    ({"question": "q", "answer": "x\n#### 1", "reference": "2"}, "answer", "disagrees"),
    ({"question": "q", "answer": "1", "steps": []}, "steps", "non-empty list"),
    ({"prompt": "q", "completions": ["a", "b"], "labels": [True], "reference": "1"}, "labels", "labels"),
])
def test_bad_problem_lines_name_file_line_and_field(tmp_path, row, field, message):
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "ok?", "answer": "1"}, row])
    with pytest.raises(RecordError, match=message) as info:
        read_problems(path)
    assert info.value.line == 2 and info.value.field == field and "p.jsonl" in str(info.value)


def test_a_candidates_file_reads_as_problems_without_steps(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "What is 3 + 4?", "completions": ["7", "8"], "reference": 7}])
    (problem,) = read_problems(path)
    assert (problem.question, problem.answer, problem.steps) == ("What is 3 + 4?", "7", None)


def test_search_problem_file_errors_name_file_line_and_field(tmp_path):  # moved from test_beam (prm search)
    path = tmp_path / "problems.jsonl"
    path.write_text('{"prompt": "What is 1 + 1?", "reference": "2"}\n{"question": ""}\n')
    with pytest.raises(RecordError, match=r"problems.jsonl, line 2, field 'question'"):
        read_problems(str(path), require_answer=False)
    path.write_text('{"question": "What is 1 + 1?"}\n{"prompt": "2 + 2?", "reference": 4}\n')
    problems = read_problems(str(path), require_answer=False)
    assert [(p.question, p.answer) for p in problems] == [("What is 1 + 1?", None), ("2 + 2?", "4")]


def test_eval_search_problem_file_errors_name_file_line_and_field(tmp_path):  # moved from test_evaluate
    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps({"question": "1 + 1?", "answer": 2}) + "\n" + json.dumps({"question": "2 + 2?"}) + "\n")
    with pytest.raises(RecordError) as info:
        read_problems(path)
    assert info.value.line == 2 and info.value.field == "answer" and "problems.jsonl" in str(info.value)
    path.write_text(json.dumps({"prompt": "1 + 1?", "reference": 2}) + "\n")
    assert [(p.question, p.answer) for p in read_problems(path)] == [("1 + 1?", "2")]


def test_answers_are_optional_only_where_asked(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "What is 1 + 1?"}, {"prompt": "2 + 2?", "reference": 4}])
    problems = read_problems(path, require_answer=False)
    assert [(p.question, p.answer) for p in problems] == [("What is 1 + 1?", None), ("2 + 2?", "4")]
    with pytest.raises(RecordError, match=r"p.jsonl, line 1, field 'steps'"):
        read_problems(path, require_steps=True, require_answer=False)
    with pytest.raises(RecordError, match="no problems"):
        read_problems(write_jsonl(tmp_path / "empty.jsonl", []))
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_problems(tmp_path / "nope.jsonl")


def test_one_parser_of_synthetic_specs():
    from tasks.math.synthetic import synthetic_preset

    assert synthetic_preset("synthetic:tiny") == "tiny"
    assert synthetic_preset("synthetic") == synthetic_preset("synthetic:") == "tiny"
    assert synthetic_preset("synthetic", default="easy") == "easy"
    assert synthetic_preset("data/synthetic.jsonl") is None and synthetic_preset("openai/gsm8k") is None
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        synthetic_preset("synthetic:nope")
    problems = read_problems("synthetic:tiny", n_synthetic=3, seed=5)
    assert len(problems) == 3 and all(p.steps for p in problems)


def test_non_utf8_bytes_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"question": "q", "answer": "1"}\n{"question": "caf\xe9", "answer": "1"}\n')
    with pytest.raises(RecordError, match=r"bad.jsonl, line 2: not UTF-8") as info:
        list(iter_jsonl(path))
    assert info.value.line == 2
    whole = tmp_path / "bad.json"
    whole.write_bytes(b'[\n{"question": "q"},\n{"question": "\xff"}\n]')
    with pytest.raises(RecordError, match=r"bad.json, line 3: not UTF-8"):
        list(iter_jsonl(whole))


# --------------------------------------------------------------------------- candidates


def test_an_empty_candidate_is_the_same_error_in_rerank_score_and_label(tmp_path):
    from commands.label import LabelConfig, label_file
    from commands.score import ScoreConfig, score_file

    path = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "q", "completions": ["The answer is 1"], "reference": "1"},
                                              {"prompt": "q", "completions": ["The answer is 1", " "],
                                               "reference": "1"}])
    errors = []
    for run in (lambda: read_candidates(path),
                lambda: score_file(ScoreConfig(model=str(tmp_path / "no-model"), input=str(path))),
                lambda: label_file(LabelConfig(input=str(path), output=str(tmp_path / "l.jsonl")))):
        with pytest.raises(RecordError) as info:
            run()
        errors.append(str(info.value))
    assert errors == [f"{path}, line 2, field 'completions': completion 1 is empty"] * 3


@pytest.mark.parametrize(
    "bad_line, field, message",
    [
        ("{not json", None, "invalid JSON"),
        ({"completions": ["a"]}, "prompt", "missing"),
        ({"prompt": "q", "completions": "a"}, "completions", "list"),
        ({"prompt": "q", "completions": ["a", 3]}, "completions", "completion 1"),
        ({"prompt": "q", "completions": ["a"], "reference": True}, "reference", "string or a number"),
    ],
)
def test_bad_candidates_name_file_line_and_field(tmp_path, bad_line, field, message):
    path = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "q", "completions": ["a"]}, bad_line])
    with pytest.raises(RecordError, match=message) as info:
        read_candidates(path)
    assert info.value.line == 2 and info.value.field == field and "c.jsonl" in str(info.value)


def test_numeric_reference_is_read_as_text(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "q", "completions": ["The answer is 7"], "reference": 7}])
    assert read_candidates(path)[0].reference == "7"


def test_candidates_keep_id_and_numeric_reference():
    from tasks.math.records import candidates_from_record

    record = candidates_from_record({"prompt": "q", "completions": ["a"], "reference": 7, "id": 3}, path="f", line=1)
    assert (record.reference, record.id, record.line) == ("7", "3", 1)


# --------------------------------------------------------------------------- commands read the same problems


def test_ppo_reads_the_problem_files_search_reads(tmp_path):
    from prm.ppo.train import PPOConfig, load_problems

    train = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "What is 3 + 4?", "reference": 7},
                                                   {"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"}])
    train_problems, heldout = load_problems(PPOConfig(data=str(train), eval_data=str(train), n_eval=5))
    assert [(p.question, p.answer) for p in train_problems] == [("What is 3 + 4?", "7"), ("What is 2 + 2?", "4")]
    assert heldout == []


def test_ppo_says_how_many_held_out_problems_overlap_training(tmp_path, capsys):
    from prm.ppo.train import PPOConfig, load_problems

    train = write_jsonl(tmp_path / "train.jsonl", [{"question": "a?", "answer": "1"}, {"question": "b?", "answer": "2"}])
    held = write_jsonl(tmp_path / "held.jsonl", [{"question": "b?", "answer": "2"}, {"question": "c?", "answer": "3"}])
    _, heldout = load_problems(PPOConfig(data=str(train), eval_data=str(held), n_eval=5))
    assert [p.question for p in heldout] == ["c?"]
    assert "1 of 2 held-out problems are also training problems" in capsys.readouterr().out
    from tasks.math.records import without_overlap

    quiet = without_overlap([Problem("x", "c?", "3")], [Problem("y", "a?", "1")])
    assert len(quiet) == 1 and capsys.readouterr().out == ""


def test_ppo_orm_without_a_coefficient_is_not_a_silent_no_op():
    from prm.ppo.train import PPOConfig

    assert PPOConfig(orm="runs/orm").orm_coef == 1.0
    assert PPOConfig().orm_coef == 0.0
    assert PPOConfig(orm="runs/orm", orm_coef=0.5).orm_coef == 0.5
    with pytest.raises(ValueError, match="--orm_coef 0"):
        PPOConfig(orm="runs/orm", orm_coef=0.0)


def test_sft_and_search_and_eval_search_read_the_same_files(tmp_path):
    from commands.eval_search import EvalSearchConfig, load_problems
    from prm.sft import load_sft_problems

    path = write_jsonl(tmp_path / "gsm8k.jsonl", [{"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"}])
    (problem,) = load_sft_problems(str(path), n_train=0, seed=0)
    assert problem.steps == ("2 + 2 = 4", "The answer is 4") and problem.answer == "4"
    problems = load_problems(EvalSearchConfig(policy="p", problems=str(path)))
    assert ([p.question for p in problems], [p.answer for p in problems]) == (["What is 2 + 2?"], ["4"])
    problems = load_problems(EvalSearchConfig(policy="p", problems="synthetic:tiny", n_problems=2))
    questions, answers = [p.question for p in problems], [p.answer for p in problems]
    assert len(questions) == len(answers) == 2


# --------------------------------------------------------------------------- step splitting


def test_split_steps_at_a_models_separator():
    assert split_steps("a\n\n b \n\n\n\n", separator="\n\n") == ["a", "b"]
    assert split_steps("x + 1 = 2 ки y = 3 ки", separator="ки") == ["x + 1 = 2", "y = 3"]
    assert split_steps("3 + 4 = 7\n\nThe answer is 7", separator="\n") == split_steps("3 + 4 = 7\n\nThe answer is 7",
                                                                                       "lines")


# --------------------------------------------------------------------------- reward-model records


def test_reward_records_of_each_kind_from_one_reader(tmp_path):
    from tasks.math.records import read_reward_records

    step = {"prompt": "q", "completions": ["3 + 4 = 7", "The answer is 7"], "labels": [True, 0]}
    path = write_jsonl(tmp_path / "steps.jsonl", [step, {"prompt": "q", "completion": "x", "label": 0.5}])
    with pytest.raises(RecordError, match=r"steps.jsonl, line 2, field 'completions'"):
        read_reward_records(path, "step")
    outcome = read_reward_records(path, "outcome")
    assert outcome == [{"prompt": "q", "completion": "3 + 4 = 7\nThe answer is 7", "label": False,
                        "steps": ["3 + 4 = 7", "The answer is 7"]},
                       {"prompt": "q", "completion": "x", "label": 0.5}]
    with pytest.raises(RecordError, match=r"line 1, field 'chosen'"):
        read_reward_records(path, "pairwise")
    pairs = read_reward_records("synthetic:tiny", "pairwise", n_synthetic=2)
    assert len(pairs) == 2 and all(p["chosen"] != p["rejected"] for p in pairs)
    with pytest.raises(RecordError, match="no records"):
        read_reward_records(write_jsonl(tmp_path / "empty.jsonl", []), "step")


def test_a_gsm8k_row_is_a_candidate_with_its_final_answer_as_a_step(tmp_path):
    from tasks.math.records import read_candidates

    row = {"question": "Natalia sold 48 clips in April and half as many in May. How many?",
           "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nIn all 48+24 = <<48+24=72>>72.\n#### 72"}
    path = tmp_path / "gsm8k.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (candidate,) = read_candidates(path)
    assert candidate.prompt == row["question"] and candidate.reference == "72"
    assert candidate.completions == ["Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nIn all 48+24 = <<48+24=72>>72.\n"
                                     "The answer is 72"]


def test_prm_score_and_rerank_read_gsm8k_rows(tmp_path):
    import subprocess
    import sys as system
    from pathlib import Path as P

    root = P(__file__).resolve().parents[1]
    rows = [json.loads(line) for line in (root / "tests" / "fixtures" / "gsm8k_train_sample.jsonl").read_text().splitlines()[:3]]
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(json.dumps({"question": r["question"], "answer": r["answer"]}) + "\n" for r in rows))
    env = {**__import__("os").environ, "PYTHONPATH": str(root), "OMP_WAIT_POLICY": "PASSIVE"}
    model = str(root / "prm" / "assets" / "demo" / "reward")
    score = subprocess.run([system.executable, "-m", "commands.cli", "score", "--model", model, "--input", str(path),
                            "--output", str(tmp_path / "scores.jsonl")], env=env, capture_output=True, text=True,
                           timeout=300)
    assert score.returncode == 0, score.stderr
    scored = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert len(scored) == 3 and all(len(r["step_scores"][0]) >= 2 for r in scored)
    rerank = subprocess.run([system.executable, "-m", "commands.cli", "rerank", "--input", str(path),
                             "--output_dir", str(tmp_path / "rerank"), "--methods", "majority"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert rerank.returncode == 0, rerank.stderr


def test_a_step_labelled_record_is_not_a_candidates_record(tmp_path):
    """Its completions are the steps of one solution: read as candidates, each step would be
    ranked (and exported for SFT) as a whole solution and its labels dropped."""
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps({"prompt": "q", "completions": ["1 + 2 = 3", "The answer is 3"], "reference": "3"}) + "\n"
                    + json.dumps({"prompt": "q", "completions": ["1 + 2 = 3", "The answer is 3"], "labels": [True, True]})
                    + "\n")
    with pytest.raises(RecordError) as error:
        read_candidates(path)
    assert "line 2" in str(error.value) and "labels" in str(error.value)


def _write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_sft_never_takes_a_solution_its_own_labels_call_wrong(tmp_path, capsys):
    # A "steps" record's labels were never read, so prm sft trained on a ProcessBench row
    # (label 0: the first step is wrong) and on steps labelled [true, false] as references.
    from prm.sft import load_sft_problems

    rows = [{"id": "pb-0", "problem": "What is 2+3*4?", "steps": ["2+3=5", "5*4=20", "The answer is 20"],
             "final_answer_correct": False, "label": 0},
            {"question": "Q2", "steps": ["a", "b"], "labels": [True, False], "answer": "3"},
            {"question": "Q3", "steps": ["c", "d"], "answer": "4"},
            {"id": "pb-1", "problem": "What is 1+1?", "steps": ["1+1=2", "The answer is 2"], "label": -1,
             "final_answer_correct": True},
            {"question": "Q5", "answer": "1 + 1 = 3\n#### 3", "label": False}]
    kept = load_sft_problems(_write(tmp_path / "p.jsonl", rows), 0, 0)
    assert [p.question for p in kept] == ["Q3", "What is 1+1?"]
    assert "3 records with an incorrect step or a false label" in capsys.readouterr().out


@pytest.mark.parametrize("row", [
    {"prompt": "Q", "completions": ["a", "b"], "labels": [True, True], "label": False},
    {"question": "Q", "steps": ["a", "b"], "labels": [True, True], "label": False, "answer": "1"},
    {"question": "Q", "steps": ["a", "b"], "labels": [True], "answer": "1"},
])
def test_label_fields_that_disagree_are_an_error_naming_the_field(tmp_path, row):
    from tasks.math.records import read_problems, read_reward_records

    path = _write(tmp_path / "r.jsonl", [row])
    with pytest.raises(RecordError) as caught:
        read_problems(path, require_answer=False, require_steps=True)
    assert caught.value.line == 1 and caught.value.field in ("label", "labels")
    if "completions" in row:
        with pytest.raises(RecordError, match="label"):
            read_reward_records(path, "outcome")


@pytest.mark.parametrize("row", [
    {"question": "Q?", "answer": "2+2=<<2+2=5>>5\n#### 5", "label": False},
    {"problem": "Q?", "solution": "x=1 so \\boxed{1}", "label": False},
])
def test_a_gsm8k_or_math_row_with_a_label_is_not_read_as_a_correct_reference(tmp_path, row):
    # Such a row (a model's solution in GSM8K or MATH format, with its verdict) was read as a
    # reference solution: every step labelled true, its own label: false ignored.
    from tasks.math.loaders import load_step_dataset

    with pytest.raises(RecordError) as caught:
        load_step_dataset(_write(tmp_path / "g.jsonl", [row]))
    assert caught.value.field == "label"


def test_a_reference_given_as_answer_or_as_a_number_is_read(tmp_path):
    # Candidates read only "reference" (an "answer" key was ignored, so `prm label` passed the
    # given labels through unchecked); the TRL loader dropped a numeric reference.
    from tasks.math.loaders import load_trl_stepwise
    from tasks.math.records import read_candidates

    (candidate,) = read_candidates(_write(tmp_path / "c.jsonl", [{"prompt": "Q", "completions": ["The answer is 3"],
                                                                     "answer": "3"}]))
    assert candidate.reference == "3"
    with pytest.raises(RecordError, match="reference"):
        read_candidates(_write(tmp_path / "d.jsonl", [{"prompt": "Q", "completions": ["x"], "answer": "3",
                                                       "reference": "4"}]))
    rows = [{"prompt": "Q", "completions": ["a"], "labels": [True], "reference": 18},
            {"prompt": "Q", "completions": ["a"], "labels": [True], "reference": None, "answer": "7"}]
    assert list(load_trl_stepwise(_write(tmp_path / "t.jsonl", rows))["reference"]) == ["18", "7"]


def test_outcome_and_pairwise_views_of_step_records_keep_the_training_separator(tmp_path):
    """An ORM / pairwise model reads the joined solution split again on --separator: joined with
    "\\n" under --separator "\\n\\n", a whole solution was one step in training and four in scoring."""
    from prm.train import load_records

    steps = ["3 + 4 = 7", "7 - 2 = 5", "The answer is 5"]
    path = tmp_path / "steps.jsonl"
    path.write_text(json.dumps({"prompt": "What is 3 + 4 - 2?", "completions": steps, "labels": [True] * 3}) + "\n")
    (outcome,) = load_records(str(path), "orm", separator="\n\n")
    assert outcome["completion"] == "\n\n".join(steps)
    pairs = load_records("synthetic:tiny", "pairwise", synthetic_problems=3, separator="\n\n")
    assert all("\n\n" in pair["chosen"] and "\n\n" in pair["rejected"] for pair in pairs)
