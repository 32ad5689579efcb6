"""The demo's report: `report.md` from `results.json`, and the summary printed at the end.

Every number comes from the results; orderings are stated as measured, not as hoped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# Children per beam of the demo's tree searches (`commands.demo` runs them with it).
TREE_BEAM_WIDTH = 4


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


def _majority_at_tokens(points: list[dict], tokens: float) -> dict | None:
    """The best-of-N majority point that spends at least `tokens` (the smallest such N), else the largest."""
    majority = sorted((p for p in points if p["method"] == "majority"), key=lambda p: p["n"])
    return next((p for p in majority if (p.get("tokens_mean") or 0) >= tokens), majority[-1] if majority else None)


def targets(results: dict) -> list[tuple[str, str, str, bool | None]]:
    """(target, goal, measured, met) rows for the four targets of issue #14; met is None where
    this run did not measure it."""
    rows: list[tuple[str, str, str, bool | None]] = []
    quality = results["prm_quality"]["prm"]
    rows.append(("1. PRM quality (generated solutions; AUC over the steps up to the first error)",
                 "step AUC ≥ 0.95, F1 ≥ 0.80",
                 f"AUC {quality['step_auc']:.3f} (all steps {quality.get('step_auc_all_steps', float('nan')):.3f}), "
                 f"F1 {quality['f1']:.3f}",
                 quality["step_auc"] >= 0.95 and quality["f1"] >= 0.80))
    samples = results.get("prm_on_policy_samples") or {}
    if samples.get("step_auc") is not None:
        rows.append(("1. PRM quality (policy samples, checker labels)", "step AUC ≥ 0.90",
                     f"AUC {samples['step_auc']:.3f} on {samples['steps']} steps ({samples['false_steps']} false; "
                     f"{samples.get('checker_true_not_reference', '–')} of the true ones are a solution's first step off the "
                     "reference)",
                     samples["step_auc"] >= 0.90))
    exact = samples.get("reference") or {}
    if exact.get("step_auc") is not None:
        rows.append(("1. PRM quality (policy samples, exact labels: the reference's steps)", "step AUC ≥ 0.90",
                     f"AUC {exact['step_auc']:.3f} on {exact['steps']} steps ({exact['false_steps']} false)",
                     exact["step_auc"] >= 0.90))
    bon = _points(results, "best_of_n")
    acc = {key: point["accuracy_mean"] for key, point in bon.items()}
    if ("prm-min", 16) in acc:
        prm, orm, majority, single = acc[("prm-min", 16)], acc[("orm", 16)], acc[("majority", 16)], acc[("prm-min", 1)]
        rows.append(("2. Best-of-16: PRM-min vs majority", "PRM-min ≥ majority + 0.05",
                     f"{prm:.3f} vs {majority:.3f}", prm >= majority + 0.05))
        rows.append(("2. Best-of-16: PRM > ORM > pass@1", "PRM-min > ORM > pass@1",
                     f"{prm:.3f} / {orm:.3f} / {single:.3f}", prm > orm > single))
        curve = [acc[("prm-min", n)] for n in sorted(n for m, n in acc if m == "prm-min")]
        rows.append(("2. PRM-min never below its N = 1 value", f"≥ {single:.3f} up to N = {max(n for _, n in acc)}",
                     f"lowest {min(curve):.3f}", min(curve) >= single - 1e-9))
        if ("prm-min+verifier", 16) in acc and ("majority+verifier", 16) in acc:
            mixed, filtered = acc[("prm-min+verifier", 16)], acc[("majority+verifier", 16)]
            rows.append(("2. PRM adds what the checker cannot see (N = 16)", "PRM + checker ≥ majority + checker + 0.03",
                         f"{mixed:.3f} vs {filtered:.3f}", mixed >= filtered + 0.03))
    tree_bon = results.get("best_of_n_tree_problems") or []
    for point in results.get("tree_search") or []:
        reference = _majority_at_tokens(tree_bon, point.get("tokens_mean") or 0)
        if reference is None:
            continue
        # DVTS with one subtree (width <= the beam width) is beam search itself: reported, not counted twice.
        single_subtree = point["method"] == "dvts" and point["n"] <= TREE_BEAM_WIDTH
        # Majority at fewer tokens than the search spent is an easier bar, not the target's.
        fewer_tokens = (reference.get("tokens_mean") or 0) < (point.get("tokens_mean") or 0)
        rows.append((f"3. {point['method']} width {point['n']} vs best-of-N majority at equal tokens"
                     + (" (one subtree: the beam search's run, not counted again)" if single_subtree else "")
                     + (" (no best-of-N run spent as many tokens: not judged)" if fewer_tokens else ""),
                     f"≥ majority@{reference['n']} ({reference['accuracy_mean']:.3f}, {reference['tokens_mean']:.0f} tokens)",
                     f"{point['accuracy_mean']:.3f} ({point['tokens_mean']:.0f} tokens)",
                     None if single_subtree or fewer_tokens else point["accuracy_mean"] >= reference["accuracy_mean"]))
    ppo = _ppo_summary(results["ppo"])
    if {"dense", "outcome"} <= set(ppo):
        start, final = results["ppo_start_accuracy"], ppo["outcome"]["final_mean"]
        total = ppo["outcome"]["updates"][-1]
        reach = _updates_to_reach(ppo, "dense", final, after_start=True)
        rows.append(("4. Dense PPO reaches outcome-only's final accuracy", f"in ≤ {2 * total // 3} of {total} updates",
                     f"after {reach} updates" if reach is not None else "never", reach is not None and reach <= 2 * total / 3))
        rows.append(("4. Both PPO modes end above the SFT start", f"≥ {start:.3f} + 0.05",
                     f"dense {ppo['dense']['final_mean']:.3f}, outcome {final:.3f}",
                     min(ppo["dense"]["final_mean"], final) >= start + 0.05))
    return rows


def targets_table(results: dict) -> list[str]:
    """The targets as a markdown table, goal beside measured value."""
    out = ["| target | goal | measured | met |", "|---|---|---|---|"]
    for name, goal, measured, met in targets(results):
        out.append(f"| {name} | {goal} | {measured} | {'–' if met is None else ('yes' if met else 'no')} |")
    return out


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
    met = [row[3] for row in targets(results) if row[3] is not None]
    lines.append(f"targets met: {sum(met)} of {len(met)} (report.md lists each)")
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
    out += ["", "## Targets", "", "Issue #14's targets, measured in this run (held-out problems: seeds the training "
            "never sees, see the config above).", ""]
    out += targets_table(results)
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
    if results.get("ranking_auc"):
        out += ["", "Right vs wrong candidates, AUC over all problems' samples pooled and among one problem's "
                "samples (mean over the problems that have both; best-of-N needs the second, and a score "
                "that only knows which problems are easy has a high first and a second near 0.5):", "",
                "| score | pooled | within a problem | problems |", "|---|---|---|---|"]
        for name, row in results["ranking_auc"].items():
            out.append(f"| {name} | {_auc(row['pooled'])} | {_auc(row['within_problem'])} | {row['problems']} |")

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
            "steps at its position are correct in training data. Step AUC \"to first error\" counts the steps "
            "whose labels are exact (each step before a solution's first error, and that error); \"all steps\" "
            "also counts the later steps of a corrupted solution as wrong.", "",
            "| scorer | step AUC (to first error) | step AUC (all steps) | ProcessBench F1 | accuracy (erroneous) | "
            "accuracy (correct) |", "|---|---|---|---|---|---|"]
    for name, key in (("PRM", "prm"), ("step-position baseline", "position_baseline")):
        q = quality[key]
        out.append(f"| {name} | {q['step_auc']:.3f} | {q.get('step_auc_all_steps', float('nan')):.3f} | "
                   f"{q['f1']:.3f} | {q['error_accuracy']:.3f} | "
                   f"{q['correct_accuracy']:.3f} |")
    if quality.get("by_kind"):
        out += ["", "Per error kind: the AUC of the first wrong steps of that kind against every correct step.", "",
                "| error kind | solutions | step AUC |", "|---|---|---|"]
        out += [f"| {kind} | {row['solutions']} | {row['step_auc']:.3f} |" for kind, row in quality["by_kind"].items()]
        out += ["", "Per step position (1 = first step):", "",
                "| step | steps | share correct | mean PRM score | step AUC |", "|---|---|---|---|---|"]
        out += [f"| {index} | {row['steps']} | {row['correct_share']:.3f} | {row['mean_score']:.3f} | "
                f"{_auc(row['step_auc'])} |"
                for index, row in quality["by_position"].items()]
        out += ["", f"Calibration (expected calibration error {quality['expected_calibration_error']:.3f}):", "",
                "| PRM probability | steps | mean score | share correct |", "|---|---|---|---|"]
        out += [f"| {row['low']:.1f}–{row['high']:.1f} | {row['count']} | "
                f"{'–' if row['mean_score'] is None else format(row['mean_score'], '.3f')} | "
                f"{'–' if row['observed'] is None else format(row['observed'], '.3f')} |" for row in quality["calibration"]]
    samples = results.get("prm_on_policy_samples") or {}
    if (samples.get("reference") or {}).get("step_auc") is not None:
        exact = samples["reference"]
        out += ["", "On held-out policy samples (up to 8 per best-of-N problem), labelled two ways: by the checker "
                "(steps it can judge, up to the first false one) and exactly, against the reference solution (the "
                "first step that is not the reference's step at its position is the first error). The checker sees "
                f"arithmetic only: {samples['checker_true_not_reference']} of the steps it calls true are a solution's "
                "first step off the reference (a true equation on a number or an operation the question does not give "
                "there; the steps after them are not counted), and a PRM that flags them loses AUC "
                "under the checker's labels.", "",
                "| labels | solutions | steps | false steps | step AUC |", "|---|---|---|---|---|",
                f"| checker | {samples['solutions']} | {samples['steps']} | {samples['false_steps']} | "
                f"{_auc(samples['step_auc'])} |",
                f"| reference | {exact['solutions']} | {exact['steps']} | {exact['false_steps']} | "
                f"{_auc(exact['step_auc'])} |"]

    out += ["", "## Verifier statistics", ""]
    reward = results.get("reward_training") or {}
    if reward:
        out += [f"Reward-model training data{'' if results['retrained'] else ' (of the shipped model)'}: "
                f"{reward['policy_samples']} policy samples labelled automatically (mode hard; rollouts where "
                f"nothing is checkable and on the checked steps of wrong answers without a false claim) and "
                f"{reward['synthetic']} reference/corrupted solutions with exact labels.", "",
                "Labels of the policy samples by source: " + _sources(reward["stats"]), ""]
    agreement = results["verifier_agreement"]
    steps = agreement.get("steps", 0)
    # The source counts cover the written steps only (`LabelStats`; every step in results made
    # before that): say how many they cover.
    counted = sum((agreement.get("steps_by_source") or {}).values())
    out += [f"Held-out samples labelled in consensus mode (sympy and {config['n_rollouts']} rollouts per step judge "
            f"the same steps): {agreement.get('solutions', 0)} solutions, {steps} steps, "
            f"{agreement.get('emitted_steps', steps)} of them written (each solution up to its first disagreement; "
            f"{agreement.get('dropped_solutions', 0)} solutions disagree at their first step). "
            f"By source ({counted} steps): " + _sources(agreement) + ".",
            f"Agreement between sympy and rollouts where both judged a step: {_agreement(agreement)}."]

    ppo = _ppo_summary(results["ppo"])
    settings = results["ppo_settings"]
    out += ["", "## PPO: dense per-step rewards vs outcome only", "",
            f"{config['ppo_updates']} updates from the SFT policy, {config['ppo_seeds']} seeds per mode, batch "
            f"{settings['batch_size']} prompts × {settings['samples_per_prompt']} samples, "
            f"{settings['ppo_epochs']} epochs × {settings['n_minibatches']} minibatches; held-out accuracy (greedy, {config['ppo_eval_problems']} problems) every "
            f"{config['ppo_eval_every']} updates; update 0 is the SFT policy "
            f"({results['ppo_start_accuracy']:.3f}). No critic: outcome = GRPO on the verifier's outcome (group "
            "mean and std); dense = DeepSeekMath's process-supervision GRPO: the PRM's step scores (centred) at "
            "each step's last token and the outcome at EOS, normalised over the group, a token's advantage the "
            "sum from its step on; checker = the sympy verdicts as step scores; prm+checker = half each. "
            f"lr {settings['lr']:g}, rollouts at T = {settings['temperature']:g}, KL as a k3 loss term, coefficient "
            f"{settings['kl_coef']:g}.", "",
            "![PPO accuracy](ppo_accuracy.png)", "",
            "| mode | " + " | ".join(f"update {u}" for u in next(iter(ppo.values()))["updates"]) + " |",
            "|---|" + "---|" * len(next(iter(ppo.values()))["updates"])]
    for mode, summary in ppo.items():
        runs = np.array([r["accuracy"] for r in results["ppo"][mode]])
        cells = [f"{m:.3f} ± {s:.3f}" for m, s in zip(runs.mean(0), runs.std(0, ddof=1) if len(runs) > 1 else 0 * runs[0])]
        out.append(f"| {mode} | " + " | ".join(cells) + " |")

    out += ["", "## Time per stage", "", "| stage | seconds |", "|---|---|"]
    out += [f"| {stage} | {seconds} |" for stage, seconds in results["timings_s"].items()]
    if results.get("side_by_side"):
        out += ["", "Beam search / DVTS and PPO ran in worker processes (`--workers`) from the start of the PRM "
                "quality stage, beside the stages before them in this table; their rows are the time the demo "
                "still waited for them afterwards."]
    out += ["", "Everything above is measured in this run; with tiny models and few problems the spread is large, "
            "so read orderings together with the ± columns."]
    path.write_text("\n".join(out) + "\n")
    return path


def _auc(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"


def _sources(stats: dict) -> str:
    sources = stats.get("steps_by_source") or {}
    total = sum(sources.values()) or 1
    return ", ".join(f"{name} {count} ({count / total:.0%})" for name, count in sorted(sources.items(), key=lambda kv: -kv[1])) or "none"


def _agreement(stats: dict) -> str:
    both = stats.get("symbolic_rollout_compared", 0)
    if not both:
        return "no step was judged by both"
    return f"{stats['symbolic_rollout_agreement']:.0%} of {both} steps"
