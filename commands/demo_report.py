"""The demo's report: `report.md` from `results.json`, and the summary printed at the end.

Every number comes from the results; orderings are stated as measured, not as hoped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _points(results: dict, key: str) -> dict[tuple[str, int], dict]:
    return {(p["method"], p["n"]): p for p in results[key]}


def _cell(point: dict | None) -> str:
    if point is None:
        return "–"
    return f"{point['accuracy_mean']:.3f} ± {point['accuracy_std']:.3f}"


def _ppo_summary(curves: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """Per mode: final accuracy (mean, std over seeds) and the mean curve."""
    summary = {}
    for mode, runs in curves.items():
        values = np.array([r["accuracy"] for r in runs])
        mean = values.mean(0)
        summary[mode] = {
            "updates": runs[0]["updates"],
            "mean": mean.tolist(),
            "final_mean": float(mean[-1]),
            "final_std": float(values[:, -1].std(ddof=1)) if len(runs) > 1 else 0.0,
            "seeds": len(runs),
        }
    return summary


def _updates_to_reach(summary: dict, mode: str, target: float, after_start: bool = False) -> int | None:
    for update, value in zip(summary[mode]["updates"], summary[mode]["mean"]):
        if value >= target and (update > 0 or not after_start):
            return update
    return None


def headline(results: dict) -> list[tuple[str, str]]:
    """(claim, measured) pairs: the papers' orderings, checked against this run."""
    bon = _points(results, "best_of_n")
    largest = max(n for _, n in bon)
    rows = []
    for n in sorted({16, largest}):
        if ("prm-min", n) not in bon:
            continue
        prm, orm, majority = (bon[(m, n)]["accuracy_mean"] for m in ("prm-min", "orm", "majority"))
        ranked = sorted([("PRM", prm), ("ORM", orm), ("majority", majority)], key=lambda item: -item[1])
        order = ranked[0][0]
        for (_, previous), (name, value) in zip(ranked, ranked[1:]):
            order += (" = " if value == previous else " > ") + name
        rows.append((f"best-of-{n}: PRM-min {prm:.3f}, ORM {orm:.3f}, majority {majority:.3f}",
                     "papers' order (PRM > ORM > majority)" if prm > orm > majority else f"measured order: {order}"))
    n = 16 if ("majority+verifier", 16) in bon else largest
    if ("majority+verifier", n) in bon and ("prm-min+verifier", n) in bon:
        rows.append((f"best-of-{n} with the sympy filter (drop candidates with a false equation)",
                     f"majority {bon[('majority', n)]['accuracy_mean']:.3f} -> "
                     f"{bon[('majority+verifier', n)]['accuracy_mean']:.3f}, PRM-min "
                     f"{bon[('prm-min', n)]['accuracy_mean']:.3f} -> {bon[('prm-min+verifier', n)]['accuracy_mean']:.3f}"))
    ppo = _ppo_summary(results["ppo"])
    if {"dense", "outcome"} <= set(ppo):
        start = results["ppo_start_accuracy"]
        target = ppo["outcome"]["final_mean"]
        total = ppo["outcome"]["updates"][-1]
        if max(ppo["dense"]["final_mean"], target) <= start:
            verdict = f"neither mode improved on the SFT policy ({start:.3f}) within {total} updates"
        else:
            # Updates after the start that dense needs to match outcome-only's final accuracy.
            reach = _updates_to_reach(ppo, "dense", target, after_start=True)
            verdict = (f"dense reached outcome-only's final accuracy ({target:.3f}) after {reach} of {total} updates"
                       if reach is not None else f"dense never reached outcome-only's final accuracy ({target:.3f})")
        rows.append((f"PPO final accuracy: dense {ppo['dense']['final_mean']:.3f} ± {ppo['dense']['final_std']:.3f}, "
                     f"outcome-only {ppo['outcome']['final_mean']:.3f} ± {ppo['outcome']['final_std']:.3f}", verdict))
    return rows


def summary_table(results: dict) -> str:
    """The short table printed at the end of `prm demo`."""
    bon = _points(results, "best_of_n")
    ns = sorted({n for _, n in bon})
    show = [n for n in ns if n in (1, 4, 16, 64)] or ns
    methods = list(dict.fromkeys(m for m, _ in bon))
    lines = ["", "prm demo summary (held-out accuracy, mean ± std over seeds)",
             "method".ljust(22) + "".join(f"N={n}".ljust(18) for n in show)]
    for method in methods:
        lines.append(method.ljust(22) + "".join(_cell(bon.get((method, n))).ljust(18) for n in show))
    quality = results["prm_quality"]
    lines.append(f"PRM step AUC {quality['prm']['step_auc']:.3f} (position baseline "
                 f"{quality['position_baseline']['step_auc']:.3f}); ProcessBench F1 {quality['prm']['f1']:.3f} "
                 f"(baseline {quality['position_baseline']['f1']:.3f})")
    for claim, verdict in headline(results):
        lines.append(f"{claim}: {verdict}")
    lines.append(f"total {results['timings_s']['total']:.0f} s on {results['device']}")
    return "\n".join(lines)


def write_report(results: dict, path: Path) -> Path:
    config = results["config"]
    bon = _points(results, "best_of_n")
    ns = sorted({n for _, n in bon})
    methods = list(dict.fromkeys(m for m, _ in bon))
    out = ["# prm demo report", ""]
    out.append(
        f"Synthetic task preset `{config['preset']}`, {config['n_eval_problems']} held-out problems, "
        f"{config['n_samples']} samples each at temperature {config['temperature']}, device `{results['device']}`, "
        f"seed {config['seed']}. Models: {'trained in this run' if results['retrained'] else 'shipped checkpoints'}. "
        f"Wall time {results['timings_s']['total']:.0f} s."
    )
    out += ["", "## Headline", ""]
    out += [f"- {claim} — {verdict}" for claim, verdict in headline(results)]

    out += ["", "## Best-of-N", "",
            f"Accuracy on held-out problems (mean ± std over {config['n_seeds']} subsampling seeds; each seed "
            "averages random size-N subsets of the samples). `prm-*`: the PRM's step scores aggregated; `orm`: the "
            "outcome head; `weighted-*`: votes weighted by score; `+verifier`: candidates with a false equation "
            "(sympy) dropped first; `oracle`: pass@N, the ceiling.", "",
            "![accuracy vs N](accuracy_vs_n.png)", "",
            "| method | " + " | ".join(f"N={n}" for n in ns) + " |",
            "|---|" + "---|" * len(ns)]
    for method in methods:
        out.append(f"| {method} | " + " | ".join(_cell(bon.get((method, n))) for n in ns) + " |")

    out += ["", "## Beam search and DVTS at equal budget", "",
            f"On the first {config['tree_problems']} held-out problems: step-level beam search and DVTS (PRM-guided, "
            "min aggregation) at widths " + config["tree_widths"] + ", next to best-of-N on the same problems. "
            "Tokens are the policy's generated tokens per problem.", "",
            "![accuracy vs tokens](accuracy_vs_tokens.png)", "",
            "| method | width / N | accuracy | generated tokens per problem |", "|---|---|---|---|"]
    for point in results["tree_search"] + results["best_of_n_tree_problems"]:
        tokens = f"{point['tokens_mean']:.0f}" if point.get("tokens_mean") is not None else "–"
        out.append(f"| {point['method']} | {point['n']} | {_cell(point)} | {tokens} |")

    quality = results["prm_quality"]
    out += ["", "## PRM quality", "",
            f"{quality['records']} held-out solutions (half corrupted by the generator: exact first-wrong-step "
            "labels). ProcessBench F1 is the harmonic mean of accuracy on erroneous solutions (first wrong step "
            "found exactly) and on correct ones (no step flagged). The baseline scores a step by how often "
            "steps at its position are correct in training data.", "",
            "| scorer | step AUC | ProcessBench F1 | accuracy (erroneous) | accuracy (correct) |", "|---|---|---|---|---|"]
    for name, key in (("PRM", "prm"), ("step-position baseline", "position_baseline")):
        q = quality[key]
        out.append(f"| {name} | {q['step_auc']:.3f} | {q['f1']:.3f} | {q['error_accuracy']:.3f} | "
                   f"{q['correct_accuracy']:.3f} |")

    out += ["", "## Verifier statistics", ""]
    reward = results.get("reward_training") or {}
    if reward:
        out += [f"Reward-model training data{'' if results['retrained'] else ' (of the shipped model)'}: "
                f"{reward['policy_samples']} policy samples labelled automatically (mode hard; rollouts where "
                f"nothing is checkable and on the checked steps of wrong answers without a false claim) and "
                f"{reward['synthetic']} reference/corrupted solutions with exact labels.", "",
                "Labels of the policy samples by source: " + _sources(reward["stats"]), ""]
    agreement = results["verifier_agreement"]
    out += [f"Held-out samples labelled in consensus mode (sympy and {config['n_rollouts']} rollouts per step judge "
            f"the same steps): {agreement.get('solutions', 0)} solutions, {agreement.get('steps', 0)} steps. "
            "By source: " + _sources(agreement) + ".",
            f"Agreement between sympy and rollouts where both judged a step: {_agreement(agreement)}."]

    ppo = _ppo_summary(results["ppo"])
    out += ["", "## PPO: dense per-step rewards vs outcome only", "",
            f"{config['ppo_updates']} updates from the SFT policy, {config['ppo_seeds']} seeds per mode, batch 16 "
            f"prompts; held-out accuracy (greedy, {config['ppo_eval_problems']} problems) every "
            f"{config['ppo_eval_every']} updates; update 0 is the SFT policy "
            f"({results['ppo_start_accuracy']:.3f}). Dense = PRM step scores (centred) at each step's last token + "
            "verifier outcome at EOS − KL; outcome = verifier outcome − KL. lr 1e-5, rollouts at T = 0.7, "
            "KL coefficient 0.1 (k1).", "",
            "![PPO accuracy](ppo_accuracy.png)", "",
            "| mode | " + " | ".join(f"update {u}" for u in next(iter(ppo.values()))["updates"]) + " |",
            "|---|" + "---|" * len(next(iter(ppo.values()))["updates"])]
    for mode, summary in ppo.items():
        runs = np.array([r["accuracy"] for r in results["ppo"][mode]])
        cells = [f"{m:.3f} ± {s:.3f}" for m, s in zip(runs.mean(0), runs.std(0, ddof=1) if len(runs) > 1 else 0 * runs[0])]
        out.append(f"| {mode} | " + " | ".join(cells) + " |")

    out += ["", "## Time per stage", "", "| stage | seconds |", "|---|---|"]
    out += [f"| {stage} | {seconds} |" for stage, seconds in results["timings_s"].items()]
    out += ["", "Everything above is measured in this run; with tiny models and few problems the spread is large, "
            "so read orderings together with the ± columns."]
    path.write_text("\n".join(out) + "\n")
    return path


def _sources(stats: dict) -> str:
    sources = stats.get("steps_by_source") or {}
    total = sum(sources.values()) or 1
    return ", ".join(f"{name} {count} ({count / total:.0%})" for name, count in sorted(sources.items(), key=lambda kv: -kv[1])) or "none"


def _agreement(stats: dict) -> str:
    both = stats.get("symbolic_rollout_compared", 0)
    if not both:
        return "no step was judged by both"
    return f"{stats['symbolic_rollout_agreement']:.0%} of {both} steps"
