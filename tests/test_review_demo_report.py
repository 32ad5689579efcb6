"""The demo report's target table and statistics, from small hand-made results (no demo run)."""

from __future__ import annotations

from commands.demo_report import targets, write_report


def _point(method: str, n: int, accuracy: float, tokens: float | None) -> dict:
    return {"method": method, "n": n, "accuracy_mean": accuracy, "accuracy_std": 0.01, "tokens_mean": tokens}


def _results(tree_tokens: float, agreement: dict | None = None) -> dict:
    quality = {"step_auc": 0.9, "step_auc_all_steps": 0.8, "f1": 0.7, "error_accuracy": 0.6, "correct_accuracy": 0.8}
    best_of_n = [_point(method, n, 0.5 + 0.01 * n, None) for method in ("majority", "orm", "prm-min") for n in (1, 16)]
    return {
        "config": {"preset": "tiny", "n_eval_problems": 4, "n_samples": 16, "temperature": 0.8, "seed": 0,
                   "n_seeds": 2, "tree_problems": 2, "tree_widths": "16", "n_rollouts": 2, "ppo_updates": 2,
                   "ppo_seeds": 2, "ppo_eval_problems": 4, "ppo_eval_every": 1},
        "device": "cpu", "retrained": False, "timings_s": {"total": 1.0},
        "prm_quality": {"records": 4, "prm": quality, "position_baseline": quality},
        "best_of_n": best_of_n,
        "tree_search": [_point("beam", 16, 0.9, tree_tokens)],
        # best-of-N on the tree problems up to N = 8: 400 tokens at most
        "best_of_n_tree_problems": [_point("majority", n, 0.5, 50.0 * n) for n in (1, 2, 4, 8)],
        "verifier_agreement": agreement or {},
        "ppo": {mode: [{"seed": seed, "updates": [0, 1, 2], "accuracy": [0.5, 0.5, 0.5]} for seed in (0, 1)]
                for mode in ("dense", "outcome")},
        "ppo_start_accuracy": 0.5,
        "ppo_settings": {"batch_size": 4, "samples_per_prompt": 2, "ppo_epochs": 1, "n_minibatches": 1, "lr": 1e-5,
                         "temperature": 0.7, "kl_coef": 0.1},
    }


def _tree_row(results: dict) -> tuple:
    [row] = [row for row in targets(results) if row[0].startswith("3. beam")]
    return row


def test_a_search_is_judged_only_against_best_of_n_that_spent_as_many_tokens():
    # The search spent 700 tokens; the largest best-of-N run spent 400: that is no equal-token
    # comparison (a cheaper majority is an easier bar), so the row is not counted as met.
    name, goal, measured, met = _tree_row(_results(tree_tokens=700.0))
    assert met is None and "not judged" in name
    assert "majority@8" in goal
    # Where a best-of-N run spends at least the search's tokens it is judged against the smallest such.
    name, goal, measured, met = _tree_row(_results(tree_tokens=300.0))
    assert met is True and "majority@8" in goal and "not judged" not in name


def test_consensus_statistics_name_the_steps_their_source_counts_cover(tmp_path):
    agreement = {"solutions": 3, "steps": 10, "steps_by_source": {"symbolic+rollout": 4, "answer": 2},
                 "symbolic_rollout_agreement": 0.5, "symbolic_rollout_compared": 8, "emitted_steps": 6,
                 "dropped_solutions": 1}
    report = write_report(_results(300.0, agreement), tmp_path / "report.md").read_text()
    line = next(line for line in report.splitlines() if line.startswith("Held-out samples labelled in consensus"))
    # The source counts add up to the written steps (6), not to every labelled step (10).
    assert sum(agreement["steps_by_source"].values()) == agreement["emitted_steps"]
    assert "10 steps, 6 of them written" in line and "1 solutions disagree at their first step" in line
    assert "By source (6 steps)" in line


def test_the_ppo_goal_shows_the_bound_the_row_is_judged_by():
    # 16 updates: 2/3 of them is 10.67, so reaching outcome's final after update 11 misses it; the
    # goal must not read "≤ 11".
    results = _results(300.0)
    updates = list(range(17))
    outcome = [0.5] * 16 + [0.6]
    dense = [0.5] * 11 + [0.6] * 6
    results["ppo"] = {"outcome": [{"seed": s, "updates": updates, "accuracy": outcome} for s in (0, 1)],
                      "dense": [{"seed": s, "updates": updates, "accuracy": dense} for s in (0, 1)]}
    [(name, goal, measured, met)] = [row for row in targets(results) if row[0].startswith("4. Dense PPO")]
    assert measured == "after 11 updates" and met is False
    bound = int(goal.split("≤ ")[1].split()[0])
    assert not 11 <= bound
