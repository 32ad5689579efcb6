import json

import numpy as np
import pytest

from search.evaluate import evaluate_best_of_n, tokens_markdown
from search.plots import plot_accuracy_vs_n, plot_accuracy_vs_tokens
from search.rerank import curve_markdown

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class LookupScorer:
    def __init__(self, table):
        self.table = table

    def score_steps(self, prompt, steps):
        return [self.table.get(step, 0.5) for step in steps]


def make_samples(n_problems=5, m=8, seed=0):
    """Samples whose PRM score is informative: right answers score higher on average."""
    rng = np.random.default_rng(seed)
    prompts, samples, references, tokens, table = [], [], [], [], {}
    for p in range(n_problems):
        prompts.append(f"q{p}")
        references.append(str(p))
        texts = []
        for c in range(m):
            right = rng.random() < 0.4
            step = f"p{p} c{c} work"
            table[step] = float(rng.uniform(0.5, 1.0) if right else rng.uniform(0.0, 0.6))
            texts.append(f"{step}\nThe answer is {p if right else p + 1 + int(rng.integers(0, 3))}")
        samples.append(texts)
        tokens.append([int(t) for t in rng.integers(10, 30, size=m)])
    return prompts, samples, references, tokens, LookupScorer(table)


def test_in_memory_evaluation_and_plots(tmp_path):
    prompts, samples, references, tokens, prm = make_samples()
    points = evaluate_best_of_n(prompts, samples, references, {"prm": prm}, ns=[1, 2, 4, 8], seeds=[0, 1],
                                tokens_per_problem=tokens, progress=False)
    by = {(p.method, p.n): p for p in points}
    assert {"majority", "prm-min", "weighted-prm-min", "prm-min+verifier", "oracle"} <= {p.method for p in points}
    for (method, n), point in by.items():
        assert point.accuracy_mean <= by[("oracle", n)].accuracy_mean + 1e-12
        assert len(point.accuracies) == 2 and point.tokens_mean is not None
    # An informative PRM beats a single sample; the oracle grows with N.
    assert by[("prm-min", 8)].accuracy_mean > by[("prm-min", 1)].accuracy_mean
    assert by[("oracle", 8)].accuracy_mean >= by[("oracle", 1)].accuracy_mean
    # Generated tokens grow linearly with N.
    assert by[("majority", 8)].tokens_mean == pytest.approx(8 * by[("majority", 1)].tokens_mean)

    png = plot_accuracy_vs_n(points, tmp_path / "plots" / "n.png")
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
    png = plot_accuracy_vs_tokens(points, tmp_path / "tokens.png")
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "| prm-min |" in curve_markdown(points) and "| oracle | 8 |" in tokens_markdown(points)


def test_tokens_plot_skipped_without_token_counts(tmp_path):
    prompts, samples, references, _, prm = make_samples(n_problems=2, m=2)
    points = evaluate_best_of_n(prompts, samples, references, None, ns=[1, 2], seeds=[0], progress=False)
    assert {p.method for p in points} == {"majority", "majority+verifier", "oracle"}
    assert plot_accuracy_vs_tokens(points, tmp_path / "t.png") is None and not (tmp_path / "t.png").exists()
    with pytest.raises(ValueError, match="exceeds"):
        evaluate_best_of_n(prompts, samples, references, None, ns=[4], seeds=[0], progress=False)


@pytest.fixture(scope="module")
def tiny_policy_dir(tmp_path_factory):
    from generation.tiny import save_tiny_causal_lm
    from tasks.math.prompts import format_solution, policy_prompt
    from tasks.math.synthetic import generate_problems

    texts = [policy_prompt(p.question) + format_solution(p.steps) for p in generate_problems(40, seed=5)]
    return save_tiny_causal_lm(tmp_path_factory.mktemp("policy"), texts, size="tiny", vocab_size=300)


def test_eval_search_cli_writes_json_markdown_and_pngs(tmp_path, tiny_policy_dir):
    from commands.cli import main

    out = tmp_path / "eval"
    assert main(["eval-search", "--policy", str(tiny_policy_dir), "--n_problems", "3", "--ns", "1,2",
                 "--seeds", "0,1", "--methods", "majority,oracle", "--max_new_tokens", "12",
                 "--output_dir", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["problems"] == 3 and {p["method"] for p in results["points"]} == {"majority", "oracle"}
    assert all(p["tokens_mean"] > 0 for p in results["points"])
    assert "| majority |" in (out / "results.md").read_text()
    for name in ["accuracy_vs_n.png", "accuracy_vs_tokens.png"]:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC


def test_tree_search_grid_runs_with_any_step_scorer(tiny_policy_dir):
    from search.evaluate import evaluate_tree_search
    from generation.policy import HFPolicy
    from search.scorers import VerifierScorer

    policy = HFPolicy.from_pretrained(str(tiny_policy_dir), device="cpu", max_step_tokens=6, max_new_tokens=12)
    points = evaluate_tree_search(["What is 2 plus 3?"], ["5"], policy, VerifierScorer(), ns=[2], seeds=[0, 1],
                                  beam_width=2, max_steps=2, progress=False)
    assert [(p.method, p.n) for p in points] == [("beam", 2), ("dvts", 2)]
    assert all(p.tokens_mean > 0 and len(p.accuracies) == 2 for p in points)


def test_best_of_n_splits_every_sample_at_the_policy_separator():
    # Each sample's step style was guessed on its own, so one blank line turned a sample's lines
    # into paragraph steps and changed its PRM score (and the pick) by whitespace alone; beam
    # search and `prm search --method best_of_n` split every sample at the policy's "\n".
    seen = []

    class Recorder:
        def score_steps(self, prompt, steps):
            seen.append(list(steps))
            return [0.5] * len(steps)

    samples = [["a = 1\nb = 2\n\nThe answer is 3", "a = 1\nb = 2\nThe answer is 3"]]
    evaluate_best_of_n(["q"], samples, ["3"], {"prm": Recorder()}, ns=[1], seeds=[0], methods=["prm-min"],
                       progress=False)
    assert seen and all(steps == ["a = 1", "b = 2", "The answer is 3"] for steps in seen), seen
