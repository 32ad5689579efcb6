"""The "prm_dense" verl reward managers against the real verl 0.9.1 package, on CPU.

verl pins transformers < 5.11, so these tests run in its own venv:

    make verl
    .venv-verl/bin/python -m pytest tests/test_verl_manager.py

In the main .venv (no verl) the module is skipped.

A tiny policy (tokenizer of 500 tokens) writes the responses; a tiny PRM with its own tokenizer
(300 tokens) scores them, so steps reach the policy's tokens only through character offsets.
"""

import asyncio

import pytest

verl = pytest.importorskip(
    "verl", reason="verl is not installed in this venv: `make verl`, then "
                   "`.venv-verl/bin/python -m pytest tests/test_verl_manager.py`")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from verl import DataProto  # noqa: E402

import prm  # noqa: E402
from generation.tiny import build_tiny_causal_lm, save_tiny_causal_lm, train_tokenizer  # noqa: E402
from integrations.verl import manager as dense_manager  # noqa: E402
from prm.modeling import RewardModel, RewardSettings  # noqa: E402
from prm.ppo.credit import min_form, process_grpo_rewards, progress_form  # noqa: E402
from search.scorers import VerifierScorer  # noqa: E402

POLICY_TEXTS = ["Question: Tom has 3 apples and buys 4. How many?\n3 + 4 = 7\nThe answer is 7\n",
                "Question: 12 * 5 - 8?\n12 * 5 = 60\n60 - 8 = 52\nThe answer is 52\n",
                "Question: naïve × sum?\n2 × 3 = 6 → good\nThe answer is 6\n"] * 20
PRM_TEXTS = ["3 + 4 = 7\n7 - 2 = 5\nThe answer is 5\n", "12 * 5 = 60\nThe answer is 60\n"] * 20

QUESTIONS = ["Tom has 3 apples and buys 4. How many?", "Tom has 3 apples and buys 4. How many?",
             "What is 12 * 5 - 8?", "What is 12 * 5 - 8?"]
GROUND_TRUTH = ["7", "7", "52", "52"]
UIDS = ["a", "a", "b", "b"]
# (steps, finished with EOS)
RESPONSES = [
    (["3 + 4 = 7", "The answer is 7"], True),
    (["3 + 4 = 8", "8 × 1 = 8 → so", "The answer is 8"], True),
    (["12 * 5 = 60", "60 - 8 = 52", "The answer is 52"], True),
    (["12 * 5 = 60", "60 - 8 = 5"], False),  # truncated mid-number: no EOS, last step ends on the last token
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("verl")
    policy_dir = save_tiny_causal_lm(root / "policy", POLICY_TEXTS, vocab_size=500)
    prm_tokenizer = train_tokenizer(PRM_TEXTS, vocab_size=300)
    reward_model = RewardModel.from_backbone(build_tiny_causal_lm(prm_tokenizer, seed=1),
                                             RewardSettings(head="classification", num_labels=2),
                                             tokenizer=prm_tokenizer)
    reward_model.save_pretrained(root / "prm")
    prm_tokenizer.save_pretrained(root / "prm")
    policy_tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    return {"policy_dir": str(policy_dir), "prm_dir": str(root / "prm"), "tokenizer": policy_tokenizer,
            "prm_tokenizer": prm_tokenizer}


def _build_batch(tokenizer, prompts_as_chat=True):
    """A DataProto as verl's rollout leaves it: left-padded prompts, right-padded responses."""
    pad = tokenizer.pad_token_id
    prompt_ids = [tokenizer(f"Question: {q}\n", add_special_tokens=False)["input_ids"] for q in QUESTIONS]
    response_ids, last_tokens = [], []
    for steps, finished in RESPONSES:
        ids, last = [], []
        for k, step in enumerate(steps):
            ids += tokenizer(step, add_special_tokens=False)["input_ids"]
            last.append(len(ids) - 1)
            if k < len(steps) - 1 or finished:
                ids += tokenizer("\n", add_special_tokens=False)["input_ids"]
        if finished:
            ids.append(tokenizer.eos_token_id)
        response_ids.append(ids)
        last_tokens.append(last)
    P = max(map(len, prompt_ids)) + 2
    R = max(map(len, response_ids)) + 3
    prompts = torch.full((len(QUESTIONS), P), pad)
    responses = torch.full((len(QUESTIONS), R), pad)
    mask = torch.zeros((len(QUESTIONS), P + R), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        prompts[i, P - len(p):] = torch.tensor(p)
        responses[i, : len(r)] = torch.tensor(r)
        mask[i, P - len(p): P] = 1
        mask[i, P: P + len(r)] = 1
    input_ids = torch.cat([prompts, responses], dim=1)
    position_ids = (mask.cumsum(1) - 1).clamp(min=0)
    non_tensors = {
        "data_source": np.array(["gsm8k"] * len(QUESTIONS), dtype=object),
        "reward_model": np.array([{"ground_truth": g, "style": "rule"} for g in GROUND_TRUTH], dtype=object),
        "uid": np.array(UIDS, dtype=object),
    }
    if prompts_as_chat:
        chats = np.empty(len(QUESTIONS), dtype=object)
        for i, q in enumerate(QUESTIONS):
            chats[i] = [{"role": "user", "content": q}]
        non_tensors["raw_prompt"] = chats
    data = DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "input_ids": input_ids, "attention_mask": mask,
                 "position_ids": position_ids},
        non_tensors=non_tensors)
    lengths = [len(r) for r in response_ids]
    return data, last_tokens, lengths


def _reference_scores(models, steps_only=True):
    scorer = prm.load(models["prm_dir"], device="cpu")
    return [scorer.score_steps(q, steps) for q, (steps, _) in zip(QUESTIONS, RESPONSES)]


def _outcomes():
    import verifiers

    texts = ["\n".join(steps) for steps, _ in RESPONSES]
    return [1.0 if verifiers.is_correct(g, t) else 0.0 for g, t in zip(GROUND_TRUTH, texts)]


def test_registered_in_both_verl_registries():
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls as loop_cls
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn
    from verl.workers.reward_manager import get_reward_manager_cls

    assert get_reward_manager_cls("prm_dense") is dense_manager.PRMDenseRewardManager
    assert loop_cls("prm_dense") is dense_manager.PRMDenseRewardLoopManager
    assert get_adv_estimator_fn("prm_reward_to_go") is dense_manager.compute_reward_to_go_advantage


def test_the_two_tokenizers_split_the_responses_differently(models):
    tok, prm_tok = models["tokenizer"], models["prm_tokenizer"]
    assert len(tok) != len(prm_tok)
    text = "\n".join(RESPONSES[2][0])
    assert tok(text, add_special_tokens=False)["input_ids"] != prm_tok(text, add_special_tokens=False)["input_ids"]


def test_prm_rewards_land_on_each_steps_last_policy_token(models):
    data, last_tokens, lengths = _build_batch(models["tokenizer"])
    manager = dense_manager.PRMDenseRewardManager(models["tokenizer"], num_examine=0, prm_path=models["prm_dir"],
                                                  prm_device="cpu")
    rewards = manager(data)
    assert rewards.shape == data.batch["responses"].shape and rewards.dtype == torch.float32
    expected_steps = _reference_scores(models)
    outcomes = _outcomes()
    assert outcomes == [1.0, 0.0, 1.0, 0.0]
    for i, (ends, length) in enumerate(zip(last_tokens, lengths)):
        expected = torch.zeros(rewards.shape[1])
        for end, score in zip(ends, expected_steps[i]):
            expected[end] += score
        expected[length - 1] += outcomes[i]
        assert rewards[i].tolist() == pytest.approx(expected.tolist(), abs=1e-6), i
        # each step's PRM score sits on its own last token (EOS-ended rows: the outcome apart)
        if RESPONSES[i][1]:
            assert [rewards[i, e].item() for e in ends] == pytest.approx(expected_steps[i], abs=1e-6)
            assert rewards[i, length - 1].item() == outcomes[i]
        assert not rewards[i, length:].any()  # padding


def test_checker_and_mixed_scorers_and_the_dict_form(models):
    data, last_tokens, lengths = _build_batch(models["tokenizer"])
    checker = VerifierScorer()
    out = dense_manager.PRMDenseRewardManager(models["tokenizer"], verifier_weight=1.0, outcome="none")(
        data, return_dict=True)
    rewards, info = out["reward_tensor"], out["reward_extra_info"]
    for i, ends in enumerate(last_tokens):
        assert [rewards[i, e].item() for e in ends] == checker.score_steps(QUESTIONS[i], RESPONSES[i][0])
    assert rewards[1, last_tokens[1][0]].item() == 0.0  # "3 + 4 = 8" is false
    assert set(info) == {"score", "outcome", "num_steps", "step_score_mean", "step_score_min"}
    assert all(len(v) == len(QUESTIONS) for v in info.values())
    assert info["num_steps"] == [2.0, 3.0, 3.0, 2.0]

    mixed = dense_manager.PRMDenseRewardManager(models["tokenizer"], prm_path=models["prm_dir"], prm_device="cpu",
                                                prm_weight=0.7, verifier_weight=0.3, outcome="none")(data)
    prm_scores = _reference_scores(models)
    for i, ends in enumerate(last_tokens):
        want = [0.7 * p + 0.3 * c for p, c in zip(prm_scores[i], checker.score_steps(QUESTIONS[i], RESPONSES[i][0]))]
        assert [mixed[i, e].item() for e in ends] == pytest.approx(want, abs=1e-6)


def test_decoded_prompt_is_used_without_raw_chat(models):
    data, last_tokens, _ = _build_batch(models["tokenizer"], prompts_as_chat=False)
    rewards = dense_manager.PRMDenseRewardManager(models["tokenizer"], prm_path=models["prm_dir"], prm_device="cpu",
                                                  outcome="none")(data)
    scorer = prm.load(models["prm_dir"], device="cpu")
    for i, ends in enumerate(last_tokens):
        want = scorer.score_steps(f"Question: {QUESTIONS[i]}\n", RESPONSES[i][0])
        assert [rewards[i, e].item() for e in ends] == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("credit", ["min", "progress", "process_grpo"])
def test_credit_forms(models, credit):
    data, last_tokens, lengths = _build_batch(models["tokenizer"])
    rewards = dense_manager.PRMDenseRewardManager(models["tokenizer"], prm_path=models["prm_dir"], prm_device="cpu",
                                                  credit=credit, outcome_coef=0.5)(data)
    scores, outcomes = _reference_scores(models), _outcomes()
    if credit == "min":
        steps = [min_form(s) for s in scores]
    elif credit == "progress":
        steps = [progress_form(s, 0.5) for s in scores]
    else:  # per group (uid a: rows 0-1, b: rows 2-3) steps and 0.5 * outcome pooled and normalised
        pooled = [s + [0.5 * o] for s, o in zip(scores, outcomes)]
        normalised = process_grpo_rewards(pooled[:2]) + process_grpo_rewards(pooled[2:])
        steps = [n[:-1] for n in normalised]
        outcomes = [n[-1] / 0.5 for n in normalised]  # the check below multiplies by outcome_coef
    for i, (ends, length) in enumerate(zip(last_tokens, lengths)):
        expected = torch.zeros(rewards.shape[1])
        for end, value in zip(ends, steps[i]):
            expected[end] += value
        expected[length - 1] += 0.5 * outcomes[i]
        assert rewards[i].tolist() == pytest.approx(expected.tolist(), abs=1e-5), (credit, i)


def _loop_config(models, **reward_kwargs):
    return OmegaConf.create({
        "actor_rollout_ref": {"model": {"path": models["policy_dir"], "tokenizer_path": None}},
        "reward": {
            "num_workers": 1,
            "reward_manager": {"source": "register", "name": "prm_dense", "module": {"path": None, "name": None}},
            "custom_reward_function": {"path": None, "name": "compute_score"},
            "reward_model": {"enable": False, "model_path": None},
            "reward_kwargs": reward_kwargs,
        },
    })


@pytest.mark.parametrize("credit", ["sum", "process_grpo"])
def test_reward_loop_worker_and_assemble_match_the_batch_manager(models, credit):
    """verl's own RewardLoopWorker (without Ray) loads the manager from the registry and scores
    each row; the class's assemble_rm_scores then writes rm_scores as
    RewardLoopManager.compute_rm_score does."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    data, _, _ = _build_batch(models["tokenizer"])
    config = _loop_config(models, prm_path=models["prm_dir"], prm_device="cpu", credit=credit)
    worker = RewardLoopWorker(config, reward_router_address=None)
    assert isinstance(worker.reward_manager, dense_manager.PRMDenseRewardLoopManager)
    outputs = asyncio.get_event_loop().run_until_complete(worker.compute_score_batch(data))
    scores = [o["reward_score"] for o in outputs]
    rm_scores = resolve_reward_manager_cls(config).assemble_rm_scores(data, scores)
    batch = dense_manager.PRMDenseRewardManager(models["tokenizer"], prm_path=models["prm_dir"], prm_device="cpu",
                                                credit=credit)(data, return_dict=True)
    expected = batch["reward_tensor"]
    torch.testing.assert_close(rm_scores, expected, atol=1e-6, rtol=0)
    # the scalar each row carries is its total reward, what verl keeps where it takes a float;
    # for process_grpo the total before the group normalisation, i.e. the "sum" form's (one
    # response normalised alone would sum to ~0 and carry no signal)
    totals = expected if credit == "sum" else dense_manager.PRMDenseRewardManager(
        models["tokenizer"], prm_path=models["prm_dir"], prm_device="cpu", credit="sum")(data)
    assert [float(s) for s in scores] == pytest.approx(totals.sum(1).tolist(), abs=1e-5)
    assert len(set(round(float(s), 3) for s in scores)) > 1  # the rows differ: a signal
    extra = [o["reward_extra_info"] for o in outputs]
    assert [e["score"] for e in extra] == pytest.approx(totals.sum(1).tolist(), abs=1e-5)
    assert batch["reward_extra_info"]["score"] == pytest.approx(totals.sum(1).tolist(), abs=1e-5)  # logged alike
    assert [e["outcome"] for e in extra] == _outcomes()
    # reward_extra_info is what compute_rm_score turns into numpy columns
    assert np.array([e["num_steps"] for e in extra]).shape == (len(QUESTIONS),)


def test_reward_loop_manager_loaded_by_importlib_with_the_toolkit_outcome(models):
    """The recipe's form: source=importlib and the toolkit's compute_score as verl's custom
    reward function, used as the outcome (outcome='compute_score')."""
    from verl.trainer.ppo.reward import load_reward_manager

    data, last_tokens, lengths = _build_batch(models["tokenizer"])
    config = _loop_config(models, verifier_weight=1.0, outcome="compute_score")
    config.reward.reward_manager = {"source": "importlib", "name": "PRMDenseRewardLoopManager",
                                    "module": {"path": "pkg://integrations.verl.manager", "name": None}}
    config.reward.custom_reward_function = {"path": "pkg://integrations.verl.outcome", "name": "compute_score"}
    manager = load_reward_manager(config, models["tokenizer"])
    assert isinstance(manager, dense_manager.PRMDenseRewardLoopManager)
    outputs = [asyncio.get_event_loop().run_until_complete(manager.run_single(data[i:i + 1]))
               for i in range(len(data))]
    rm_scores = type(manager).assemble_rm_scores(data, [o["reward_score"] for o in outputs])
    for i, length in enumerate(lengths):
        if RESPONSES[i][1]:
            assert rm_scores[i, length - 1].item() == _outcomes()[i]


def test_plain_float_scores_fall_back_to_the_last_token(models):
    data, _, lengths = _build_batch(models["tokenizer"])
    rm_scores = dense_manager.PRMDenseRewardLoopManager.assemble_rm_scores(data, [1.0, 2.0, 3.0, 4.0])
    for i, length in enumerate(lengths):
        assert rm_scores[i].nonzero().flatten().tolist() == [length - 1]
        assert rm_scores[i, length - 1].item() == float(i + 1)


def test_reward_to_go_estimator_through_verls_compute_advantage():
    from verl.trainer.ppo.ray_trainer import compute_advantage

    rewards = torch.tensor([[0.0, 1.0, 0.0, -1.0, 0.5, 0.0], [0.2, 0.0, 0.3, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]])
    data = DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask},
                               non_tensors={"uid": np.array(["a", "b"], dtype=object)})
    out = compute_advantage(data, adv_estimator="prm_reward_to_go")
    torch.testing.assert_close(out.batch["advantages"], torch.tensor(
        [[0.5, 0.5, -0.5, -0.5, 0.5, 0.0], [0.5, 0.3, 0.3, 0.0, 0.0, 0.0]]))


def test_dense_score_survives_pickling_and_validates_as_a_float():
    import pickle

    from verl.experimental.agent_loop.agent_loop import AgentLoopOutput

    score = dense_manager.DenseScore(1.25, {"step_tokens": [1]})
    again = pickle.loads(pickle.dumps(score))
    assert again == 1.25 and again.payload == {"step_tokens": [1]}
    field = AgentLoopOutput.model_fields["reward_score"]
    assert "float" in str(field.annotation)


@pytest.mark.slow
def test_prm_in_a_shared_ray_actor_scores_like_in_process(models):
    """prm_actor_gpus: the PRM runs once in a named Ray actor (here a CPU actor on a local Ray)."""
    import ray

    data, _, _ = _build_batch(models["tokenizer"])
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        manager = dense_manager.PRMDenseRewardManager(models["tokenizer"], prm_path=models["prm_dir"],
                                                      prm_actor_gpus=0, prm_actor_name="prm_dense_test")
        remote = manager(data)
        again = dense_manager.PRMDenseRewardManager(models["tokenizer"], prm_path=models["prm_dir"],
                                                    prm_actor_gpus=0, prm_actor_name="prm_dense_test")
        assert again.rewarder.step_scorer.handle._actor_id == manager.rewarder.step_scorer.handle._actor_id
        ray.kill(ray.get_actor("prm_dense_test"))
    finally:
        ray.shutdown()
    local = dense_manager.PRMDenseRewardManager(models["tokenizer"], prm_path=models["prm_dir"], prm_device="cpu")(data)
    torch.testing.assert_close(remote, local, atol=1e-6, rtol=0)


def test_prepared_parquet_reads_through_verls_rl_dataset(models, tmp_path):
    """integrations.verl.prepare_data writes what verl's RLHFDataset reads and the manager needs."""
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from integrations.verl.prepare_data import main as prepare

    out = tmp_path / "train.parquet"
    prepare(["--task", "gsm8k", "--input", "tests/fixtures/gsm8k.jsonl", "--out", str(out)])
    tokenizer = AutoTokenizer.from_pretrained(models["policy_dir"])  # a copy: the chat template is set here
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}assistant: {% endif %}")
    dataset = RLHFDataset(str(out), tokenizer, OmegaConf.create({"max_prompt_length": 512, "return_raw_chat": True,
                                                                "cache_dir": str(tmp_path / "cache"),
                                                                "filter_overlong_prompts": False}))
    row = dataset[0]
    assert row["reward_model"]["ground_truth"] == "42"
    assert row["extra_info"]["question"].startswith("Lena picks 14 apples")
    assert row["raw_prompt"][-1]["role"] == "user"


def _recipe_overrides(recipe, policy_dir, *extra):
    """The Hydra overrides a recipe script passes to verl (its entry point swapped for printf)."""
    import os
    import subprocess

    env = {**os.environ, "POLICY": policy_dir, "PRM": "/models/prm", "DATA": "/data", "VERL_MAIN": "printf %s\\n"}
    out = subprocess.run(["bash", f"integrations/verl/recipes/{recipe}.sh", *extra], env=env, check=True,
                         capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line]


@pytest.mark.parametrize("recipe,estimator,credit", [("gae_dense", "gae", "min"),
                                                     ("grpo_process", "prm_reward_to_go", "process_grpo")])
def test_recipes_compose_and_validate_against_verls_schema(models, recipe, estimator, credit):
    from integrations.verl.check_config import check

    result = check(_recipe_overrides(recipe, models["policy_dir"]))
    assert result == {"manager": "PRMDenseRewardLoopManager", "adv_estimator": estimator, "credit": credit,
                      "critic": recipe == "gae_dense", "reference": True}


def test_dry_run_refuses_settings_where_dense_rewards_are_lost(models):
    from integrations.verl.check_config import check

    with pytest.raises(SystemExit, match="use_v1"):
        check(_recipe_overrides("gae_dense", models["policy_dir"], "trainer.use_v1=True"))
    with pytest.raises(SystemExit, match="agent loop"):
        check(_recipe_overrides("gae_dense", models["policy_dir"], "reward.reward_model.enable_resource_pool=True",
                                "reward.reward_model.n_gpus_per_node=1", "reward.reward_model.nnodes=1"))
