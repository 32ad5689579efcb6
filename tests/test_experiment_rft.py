"""experiments/rft_baseline.py: what each filter keeps of the policy's right-answer samples, and a
tiny end-to-end run that writes every filter's accuracy and reuses its samples."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

QUESTION = "Mia has 9 eggs. She buys 6 more. She gives away 3. How many eggs does she have?"
CLEAN = {"question": QUESTION, "answer": "12", "steps": ["She buys 6 more: 9 + 6 = 15", "She gives away 3: 15 - 3 = 12",
                                                         "The answer is 12"]}
SLIP = {"question": QUESTION, "answer": "12", "steps": ["She buys 6 more: 9 + 6 = 16", "She gives away 3: 16 - 3 = 12",
                                                        "The answer is 12"]}


def test_the_process_filters_drop_a_right_answer_reached_through_a_false_step():
    import rft_baseline

    assert rft_baseline.filtered([CLEAN, SLIP], "outcome") == [CLEAN, SLIP]
    assert rft_baseline.filtered([CLEAN, SLIP], "checker") == [CLEAN]
    assert rft_baseline.filtered([CLEAN, SLIP], "prm+checker") == [CLEAN]


def test_a_tiny_run_reports_every_filter_and_reuses_its_samples(tmp_path, monkeypatch):
    import rft_baseline

    options = ["--smoke", "--ppo_eval_problems", "4", "--rft_problems", "3", "--rft_samples", "2", "--rft_steps", "1",
               "--output_dir", str(tmp_path)]
    result = rft_baseline.main(options)
    assert set(result["runs"]) == set(rft_baseline.FILTERS)
    assert result["runs"]["reference"]["solutions"] == 3 and result["runs"]["reference"]["not_the_reference"] == 0
    kept = [result["runs"][name]["solutions"] for name in ("outcome", "checker", "prm+checker")]
    assert kept == sorted(kept, reverse=True)
    assert json.loads((tmp_path / "rft.json").read_text())["runs"] == result["runs"]

    import commands.demo

    monkeypatch.setattr(commands.demo, "sample_solutions", lambda *args: pytest.fail("sampled again"))
    again = rft_baseline.main(options + ["--rft_filters", "outcome"])
    assert again["sampling"] == result["sampling"]


def test_repeats_are_kept_only_when_asked_and_each_choice_has_its_own_cache(tmp_path, monkeypatch):
    import commands.demo
    import rft_baseline
    from tasks.math.types import Problem

    problem = Problem(id="p0", question=QUESTION, answer="12", steps=tuple(CLEAN["steps"]))
    text = "\n".join(CLEAN["steps"])
    monkeypatch.setattr(commands.demo, "demo_policy", lambda *args, **kwargs: None)
    monkeypatch.setattr(commands.demo, "sample_solutions", lambda policy, problems, n: ([[text] * n], [[9] * n]))
    distinct, _ = rft_baseline.right_samples(tmp_path, [problem], rft_baseline.RFTArgs(rft_samples=3), 0)
    repeats, stats = rft_baseline.right_samples(tmp_path, [problem], rft_baseline.RFTArgs(rft_samples=3, rft_distinct=False), 0)
    assert len(distinct) == 1 and len(repeats) == 3 and stats["right_kept"] == 3
