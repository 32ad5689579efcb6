"""End to end: `prm demo --smoke --retrain` runs every stage at the smallest size and its report
is consistent with the samples it wrote."""

import json

import pytest

import verifiers
from commands.demo import DemoConfig, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    results = run_demo(DemoConfig(smoke=True, retrain=True, output_dir=str(output), prm_first_problem=3))
    return output, results


def test_the_reward_data_samples_the_training_problems_from_prm_first_problem_on(demo):
    from commands.demo import make_problems

    output, _ = demo
    config = DemoConfig(smoke=True, prm_first_problem=3)
    train, _ = make_problems(config)
    n_sampled = json.loads((output / "reward_data.json").read_text())["policy_samples"]
    records = [json.loads(line) for line in (output / "reward_data.jsonl").read_text().splitlines()[:n_sampled]]
    sampled = {record["prompt"] for record in records}
    assert n_sampled > 0
    assert sampled <= {p.question for p in train[3 : 3 + config.prm_problems]}
    assert not sampled <= {p.question for p in train[: config.prm_problems]}


def test_every_stage_writes_its_artifacts(demo):
    output, results = demo
    for name in ("report.md", "results.json", "samples.jsonl", "accuracy_vs_n.png", "accuracy_vs_tokens.png",
                 "ppo_accuracy.png"):
        assert (output / name).stat().st_size > 0, name
    report = (output / "report.md").read_text()
    for heading in ("## Targets", "## Best-of-N", "## Beam search and DVTS", "## PRM quality", "## Verifier statistics",
                    "## PPO"):
        assert heading in report
    assert set(results["timings_s"]) >= {"problems", "policy (SFT)", "labels + reward model", "best-of-N", "PPO"}


def test_oracle_bounds_every_method_and_best_of_one_is_pass_at_one(demo):
    output, results = demo
    samples = [json.loads(line) for line in (output / "samples.jsonl").read_text().splitlines()]
    right = [
        verifiers.answers_equivalent(s["reference"], verifiers.extract_answer(text) or "")
        for s in samples for text in s["completions"]
    ]
    pass_at_1 = sum(right) / len(right)
    by_n: dict[int, dict[str, float]] = {}
    for point in results["best_of_n"]:
        by_n.setdefault(point["n"], {})[point["method"]] = point["accuracy_mean"]
    for n, methods in by_n.items():
        assert all(value <= methods["oracle"] + 1e-9 for value in methods.values()), n
    assert by_n[1]["majority"] == pytest.approx(pass_at_1)
    assert by_n[1]["prm-min"] == pytest.approx(pass_at_1)


def test_prm_quality_and_ppo_curves_are_complete(demo):
    _, results = demo
    for scorer in ("prm", "position_baseline"):
        assert 0.0 <= results["prm_quality"][scorer]["step_auc"] <= 1.0
    quality = results["prm_quality"]
    assert set(quality["by_kind"]) <= {"arithmetic_slip", "wrong_operation", "wrong_number", "dropped_step",
                                       "wrong_algebra_move"}
    assert sum(row["count"] for row in quality["calibration"]) == sum(row["steps"] for row in quality["by_position"].values())
    assert set(results["ranking_auc"]) == {"orm", "prm-min"}
    on_samples = results["prm_on_policy_samples"]
    assert on_samples["reference"]["steps"] > 0 and 0 <= on_samples["checker_true_not_reference"] <= on_samples["steps"]
    config = results["config"]
    assert set(results["ppo"]) == {"dense", "outcome", "checker", "prm+checker"}
    assert {p["method"] for p in results["tree_search"]} == {"beam", "dvts", "beam (checker)", "beam (prm+checker)"}
    for mode in results["ppo"]:
        runs = results["ppo"][mode]
        assert len(runs) == config["ppo_seeds"]
        for run in runs:
            assert run["updates"][0] == 0 and run["updates"][-1] == config["ppo_updates"]
            assert all(0.0 <= a <= 1.0 for a in run["accuracy"])


def test_the_report_leads_with_the_targets_goal_beside_measured(demo):
    from commands.demo_report import targets

    output, results = demo
    rows = targets(results)
    names = [name for name, *_ in rows]
    assert any(name.startswith("1. PRM quality") for name in names)
    assert any(name.startswith("4. Dense PPO") for name in names)
    report = (output / "report.md").read_text()
    assert "| score | pooled | within a problem | problems |" in report
    assert report.index("## Targets") < report.index("## Headline") < report.index("## Best-of-N")
    for name, goal, measured, met in rows:
        assert f"| {name} | {goal} | {measured} |" in report


def test_quick_tour_is_smaller_than_the_judged_sizes():
    full, quick = DemoConfig(), DemoConfig(quick=True)
    assert (full.n_eval_problems, full.tree_problems, full.ppo_seeds) == (64, 32, 3)
    assert quick.n_eval_problems < full.n_eval_problems and quick.tree_problems < full.tree_problems
    assert quick.ppo_modes == "dense,outcome" and quick.tree_scorers == "prm"


def test_the_training_problems_cover_every_reward_data_source_however_few_the_sft_takes():
    from commands.demo import make_problems, synthetic_reward_records

    config = DemoConfig(sft_problems=100, prm_problems=50, prm_first_problem=120, prm_synthetic=300,
                        n_eval_problems=8, ppo_eval_problems=8)
    train, heldout = make_problems(config)
    assert len(train) == 300
    assert len(synthetic_reward_records(train, config)) == 300
    assert not {p.question for p in heldout} & {p.question for p in train}


def test_paired_synthetic_records_give_each_problem_its_reference_and_a_corruption():
    from commands.demo import synthetic_reward_records
    from tasks.math.synthetic import generate_problems

    problems = generate_problems(40, "tiny", seed=3)
    single = synthetic_reward_records(problems, DemoConfig(prm_synthetic=20, prm_paired_synthetic=False))
    paired = synthetic_reward_records(problems, DemoConfig(prm_synthetic=20, prm_paired_synthetic=True))
    assert len(single) == len(paired) == 20
    assert len({r["prompt"] for r in single}) == 20
    by_prompt: dict[str, list[int]] = {}
    for record in paired:
        by_prompt.setdefault(record["prompt"], []).append(record["first_wrong"])
    assert len(by_prompt) == 10
    assert all(sorted(first_wrong)[0] == -1 and sorted(first_wrong)[1] >= 0 for first_wrong in by_prompt.values())
    # Half the records are corrupted either way: the label mix does not change.
    assert sum(r["first_wrong"] >= 0 for r in single) == sum(r["first_wrong"] >= 0 for r in paired) == 10


def test_ranking_auc_tells_ranking_problems_from_ranking_their_solutions():
    from commands.demo import ranking_auc
    from search.rerank import build_pool

    # Problem "easy": 3 of 4 right; "hard": 1 of 4 right. The ORM scores every solution of the easy
    # problem above every solution of the hard one, but within each problem the wrong ones highest.
    pools = []
    for prompt, correct, orm in (("easy", [True, True, True, False], [0.7, 0.7, 0.7, 0.9]),
                                 ("hard", [True, False, False, False], [0.1, 0.3, 0.3, 0.3])):
        pool = build_pool(prompt, [["x = 1"]] * 4, reference="1")
        pool.correct = correct
        pool.outcome_scores["orm"] = orm
        pool.step_scores["prm"] = [[1.0 if ok else 0.0] for ok in correct]
        pools.append(pool)
    result = ranking_auc(pools)
    assert result["orm"]["within_problem"] == 0.0 and result["orm"]["pooled"] > 0.5
    assert result["prm-min"]["within_problem"] == 1.0 == result["prm-min"]["pooled"]
    assert result["orm"]["problems"] == 2


def test_policy_samples_are_also_labelled_exactly_against_the_reference():
    """A step with true arithmetic but a number the question does not say there is wrong: the
    checker calls it true, the reference labels call it the first error."""
    from commands.demo import prm_on_samples, reference_step_labels
    from tasks.math.types import Problem

    problem = Problem(id="p", question="Tom has 6 apples. He buys 2 more. He gives away 7. How many apples does he have now?",
                      answer="1", steps=("He buys 2 more: 6 + 2 = 8", "He gives away 7: 8 - 7 = 1", "The answer is 1"))
    right = "He buys 2 more: 6 + 2 = 8\nHe gives away 7: 8 - 7 = 1\nThe answer is 1"
    wrong_number = "He buys 2 more: 6 + 2 = 8\nHe gives away 4: 8 - 4 = 4\nThe answer is 4"
    slip = "He buys 2 more: 6 + 2 = 9\nHe gives away 7: 9 - 7 = 2\nThe answer is 2"
    assert reference_step_labels(right.split("\n"), problem.steps) == [True, True, True]
    assert reference_step_labels(wrong_number.split("\n"), problem.steps) == [True, False]
    assert reference_step_labels(slip.split("\n"), problem.steps) == [False]
    assert reference_step_labels(right.split("\n") + ["extra"], problem.steps) == [True, True, True, False]

    class ReferenceScorer:  # a PRM that knows the reference: every other step scores low
        def score_steps_batch(self, prompts, solutions):
            return [[0.9 if step in problem.steps else 0.1 for step in steps] for steps in solutions]

    result = prm_on_samples(ReferenceScorer(), [([right, wrong_number, slip], problem)])
    assert result["reference"]["step_auc"] == 1.0
    assert result["reference"]["false_steps"] == 2
    # The checker calls "He gives away 4: 8 - 4 = 4" true, so the same scores rank a "true" step low.
    assert result["step_auc"] < 1.0
    assert result["checker_true_not_reference"] == 1


def test_worker_processes_give_the_results_of_one_process(demo, tmp_path, capfd):
    # Tree searches and PPO runs are seeded one by one, so running them side by side in spawned
    # single-thread processes must give what running them here gives.
    from commands.demo import make_problems, run_ppo, run_tree_search, write_problems
    from commands.workers import worker_pool

    output, results = demo
    config = DemoConfig(smoke=True, ppo_modes="dense,outcome", ppo_seeds=1, tree_scorers="prm,checker")
    policy_dir, reward_dir = output / "models" / "policy", output / "models" / "reward"
    train, heldout = make_problems(config)
    train_file = write_problems(train, tmp_path / "train.jsonl")
    heldout_file = write_problems(heldout[: config.ppo_eval_problems], tmp_path / "heldout.jsonl")
    outcomes = {}
    for name, workers in (("here", 1), ("workers", 2)):
        with worker_pool(workers, "cpu") as pool:
            assert (pool is None) == (name == "here")
            tree = run_tree_search(config, policy_dir, reward_dir, "cpu", heldout[: config.tree_problems], pool)
            ppo = run_ppo(config, tmp_path / name, policy_dir, reward_dir, train_file, heldout_file, 0.5, pool=pool)
        bars = capfd.readouterr().err
        # Side by side, the stage's bar counts runs; a worker's own bars would interleave.
        assert ("ppo[group]" in bars) == (pool is None) and "PPO runs" in bars
        outcomes[name] = ([(p.method, p.n, p.accuracies, p.tokens_mean) for p in tree], ppo)
    assert [method for method, *_ in outcomes["here"][0]] == ["beam", "dvts", "beam (checker)"]
    assert outcomes["workers"] == outcomes["here"]


def test_held_out_problems_never_hold_a_question_the_shipped_models_trained_on():
    # The shipped checkpoints were trained on the problems of their own run's seed; another
    # --seed must not evaluate them on those.
    from commands.demo import make_problems, shipped_training_questions

    shipped = shipped_training_questions()
    assert len(shipped) > 1000
    for seed in (0, 1, 2):
        train, heldout = make_problems(DemoConfig(seed=seed), also_trained_on=shipped)
        questions = {p.question for p in heldout}
        assert not questions & shipped and not questions & {p.question for p in train}
    default_train, default_heldout = make_problems(DemoConfig())
    assert [p.question for p in make_problems(DemoConfig(), also_trained_on=shipped)[1]] == \
        [p.question for p in default_heldout]  # seed 0 is the shipped models' seed: the same split


def test_the_demo_seed_moves_the_tree_searches_and_ppo_runs(tmp_path):
    from commands.demo import ASSETS, _tree_point, make_problems, start_ppo

    _, heldout = make_problems(DemoConfig())
    questions, answers = [p.question for p in heldout[:3]], [p.answer for p in heldout[:3]]
    points = [_tree_point(str(ASSETS / "policy"), str(ASSETS / "reward"), "cpu", 0.8, seed, "checker", "beam", 4,
                          questions, answers, 1) for seed in (0, 7)]
    assert points[0].tokens_mean != points[1].tokens_mean  # another draw of the same searches
    submitted = []

    class Pool:  # records the PPO jobs instead of running them
        def submit(self, function, *args):
            submitted.append(args[0])

    start_ppo(DemoConfig(seed=5, ppo_seeds=2, ppo_modes="outcome"), tmp_path, ASSETS / "policy", ASSETS / "reward",
              tmp_path / "train.jsonl", tmp_path / "heldout.jsonl", pool=Pool())
    assert [job["seed"] for job in submitted] == [5, 6]
