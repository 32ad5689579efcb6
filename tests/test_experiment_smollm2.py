"""The SmolLM2 experiment's pipeline (experiments/smollm2_gsm8k.py) on a tiny random model.

The real model is never loaded here: the same recipe runs with a tiny Qwen2 saved to a
temporary directory as policy and backbone, so the plumbing (problem choice, sampling,
labelling, joint training, reranking, resume) is checked offline in seconds.
"""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def _load_experiment():
    spec = importlib.util.spec_from_file_location("smollm2_gsm8k", ROOT / "experiments" / "smollm2_gsm8k.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


experiment = _load_experiment()


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from generation.tiny import save_tiny_causal_lm
    from tasks.math.synthetic import generate_problems

    texts = [p.question + "\n" + "\n".join(p.steps) for p in generate_problems(50, "tiny", seed=0)]
    texts += [json.loads(line)["question"] for line in (FIXTURES / "gsm8k.jsonl").read_text().splitlines()]
    return save_tiny_causal_lm(tmp_path_factory.mktemp("lm"), texts, size="tiny", seed=0)


def _config(tiny_lm, output_dir, **overrides):
    options = dict(
        policy=str(tiny_lm), backbone=str(tiny_lm), gsm8k=str(FIXTURES / "gsm8k.jsonl"),
        n_train_synthetic=2, n_test_synthetic=2, n_train_gsm8k=1, n_test_gsm8k=1, n_reference_synthetic=3,
        n_samples=2, max_new_tokens=6, batch_size=2, train_steps=2, train_batch_size=4, max_length=128,
        seeds="0,1", n_subsets=2, output_dir=str(output_dir), progress=False,
    )
    options.update(overrides)
    return experiment.ExperimentConfig(**options)


def test_problem_slices_are_disjoint_and_gsm8k_is_easiest_first(tiny_lm, tmp_path):
    config = _config(tiny_lm, tmp_path, n_train_gsm8k=1, n_test_gsm8k=1)
    problems = experiment.choose_problems(config)
    questions = [p["question"] for p in problems]
    assert len(questions) == len(set(questions))
    gsm8k = [p for p in problems if p["slice"] == "gsm8k"]
    assert sorted(p["split"] for p in gsm8k) == ["test", "train"]
    # Fewest steps first (the one-step ticket problem), then the smaller numbers (pens: at
    # most 30, against 42 apples).
    assert sorted(p["reference"] for p in gsm8k) == ["12", "22"]


def test_missing_gsm8k_file_says_what_to_do(tiny_lm, tmp_path):
    with pytest.raises(FileNotFoundError, match="--n_train_gsm8k 0"):
        experiment.choose_problems(_config(tiny_lm, tmp_path, gsm8k=str(tmp_path / "absent.jsonl")))


def test_checker_findings_count_false_claims_with_reasons(tiny_lm, tmp_path):
    problems = [{"id": "p", "slice": "synthetic", "split": "train", "question": "Tom has 12 apples and buys 7. How many?",
                 "reference": "19", "steps": ["12 + 7 = 19", "The answer is 19"]}]
    samples = {"p": {"texts": ["He has 12 + 7 = 20 apples.\nThe answer is 20", "12 + 7 = 19\nThe answer is 19\nOr 5", ""]}}
    labels = experiment.label_samples(problems, samples, tmp_path / "labels.jsonl", _config(tiny_lm, tmp_path))
    assert labels["p"]["labels"] == [[False, False], [True, True], [False]]
    assert labels["p"]["correct"] == [False, True, False]
    assert labels["p"]["steps"][1] == ["12 + 7 = 19", "The answer is 19"]  # the rambling after the answer is cut
    report = experiment.claim_report(problems, labels)["synthetic"]
    assert (report["steps"], report["steps_with_false_claim"], report["correct_solutions"]) == (5, 1, 1)
    assert "12 + 7 = 20" in report["examples"][0]["reason"]


def test_end_to_end_on_a_tiny_model_then_resume(tiny_lm, tmp_path):
    output_dir = tmp_path / "run"
    summary = experiment.run(_config(tiny_lm, output_dir))
    for name in ("results_synthetic.md", "results_gsm8k.md", "accuracy_vs_n_synthetic.png", "claims.json",
                 "reward_model/model.safetensors", "summary.json"):
        assert (output_dir / name).exists(), name
    results = json.loads((output_dir / "results_synthetic.json").read_text())
    methods = {p["method"] for p in results["points"]}
    assert {"majority", "majority+verifier", "orm", "prm-min", "prm-prod", "prm-last", "oracle"} <= methods
    oracle = {p["n"]: p["accuracy_mean"] for p in results["points"] if p["method"] == "oracle"}
    assert all(p["accuracy_mean"] <= oracle[p["n"]] + 1e-9 for p in results["points"])
    assert set(summary["results"]) == {"synthetic", "gsm8k"}

    # An interruption after the first sampling chunk: the rerun samples the rest exactly as
    # the first run did and does not retrain the finished model.
    samples_path = output_dir / "samples.jsonl"
    full = samples_path.read_text().splitlines()
    samples_path.write_text(full[0] + "\n" + full[1] + "\n")
    (output_dir / "labels.jsonl").unlink()
    model_file = output_dir / "reward_model" / "model.safetensors"
    trained_at = model_file.stat().st_mtime_ns
    experiment.run(_config(tiny_lm, output_dir))
    assert samples_path.read_text().splitlines() == full
    assert model_file.stat().st_mtime_ns == trained_at

    # Other sizes in the same directory are refused rather than mixed in.
    with pytest.raises(ValueError, match="other problems"):
        experiment.run(_config(tiny_lm, output_dir, n_test_synthetic=3))
    shutil.rmtree(output_dir)
