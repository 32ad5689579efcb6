"""check_step over the hand-labelled data of benchmarks/verifier_false_alarms.py: no true step is
called False, no false step is called True (the rates themselves are measured by the benchmark)."""

import importlib.util
import json
from pathlib import Path

from verifiers import check_step

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data"


def rows(name):
    with open(DATA / name, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


TRUE_STEPS = rows("prose_arithmetic_true.jsonl")
FALSE_STEPS = rows("prose_arithmetic_false.jsonl")
GSM8K_LABELS = rows("gsm8k_false_steps.jsonl")


def test_corpora_are_large_enough_and_labelled():
    assert len(TRUE_STEPS) >= 200 and len(FALSE_STEPS) >= 24
    assert {row["verdict"] for row in GSM8K_LABELS} <= {"real_error", "false_alarm"}
    assert all(row["reason"] for row in GSM8K_LABELS)


def test_no_true_prose_step_is_called_false():
    called_false = [row["text"] for row in TRUE_STEPS if check_step(row["text"]) is False]
    assert called_false == []


def test_no_false_prose_step_is_called_true():
    called_true = [row["text"] for row in FALSE_STEPS if check_step(row["text"]) is True]
    assert called_true == []


def test_gsm8k_false_alarms_are_not_false_and_real_errors_not_true():
    false_alarms = [row["text"] for row in GSM8K_LABELS if row["verdict"] == "false_alarm"
                    and check_step(row["text"]) is False]
    assert false_alarms == []
    real_errors_true = [row["text"] for row in GSM8K_LABELS if row["verdict"] == "real_error"
                        and check_step(row["text"]) is True]
    assert real_errors_true == []


def test_prose_corpora_match_their_generator():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "make_prose_arithmetic.py"
    spec = importlib.util.spec_from_file_location("make_prose_arithmetic", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import random

    rng = random.Random(2024)
    true_texts = [t for _, t in module.HAND_WRITTEN_TRUE + module.HAND_WRITTEN_TRUE_HARD + module.generated_true(rng)]
    false_texts = [t for _, t, _ in module.HAND_WRITTEN_FALSE + module.generated_false(rng)]
    assert [row["text"] for row in TRUE_STEPS] == list(dict.fromkeys(true_texts))
    assert [row["text"] for row in FALSE_STEPS] == list(dict.fromkeys(false_texts))

