"""verl reward managers that write dense per-step rewards; importing this module registers them.

Registered name "prm_dense" in both of verl 0.9.1's registries:

* `PRMDenseRewardManager` (`verl.workers.reward_manager.register`, the batch API
  `AbstractRewardManager.__call__(data, return_dict)` of verl/workers/reward_manager/abstract.py,
  the interface of `NaiveRewardManager`): returns `reward_tensor` [batch, response_length].
* `PRMDenseRewardLoopManager` (`verl.experimental.reward_loop.reward_manager.register`, the
  `RewardManagerBase` of verl/experimental/reward_loop/reward_manager/base.py that verl 0.9.1's
  trainers use): `run_single` scores one response; the class method `assemble_rm_scores`
  writes the dense `rm_scores` for the batch.

Also registered: the advantage estimator "prm_reward_to_go" (`verl.trainer.ppo.core_algos.
register_adv_est`): A_t = sum of the token rewards from t on, no baseline, no whitening. With the
"process_grpo" credit form, which already normalises the rewards over each group, that is
DeepSeekMath's process-supervision GRPO advantage.

Options (the same names for both managers; the batch manager takes them as keyword arguments,
the reward-loop manager reads them from `config.reward.reward_kwargs`):

    prm_path         a saved PRM (`prm.load`): a toolkit checkpoint or a published PRM folder
    prm_format       `prm.load`'s format ("auto", "native", "qwen-prm", ...)
    prm_device, prm_dtype, prm_batch_size   passed to `prm.load`
    prm_weight       weight of the PRM in the step score (default 1.0)
    verifier_weight  weight of the sympy step checker (`VerifierScorer`); with no prm_path the
                     checker alone is the step scorer
    verifier_neutral the checker's score for a step with nothing to check (default 0.5)
    step_scorer      (batch manager only) any object with score_steps(prompt, steps)
    orm_path         an outcome scorer for outcome="orm" (`prm.load(...).score`)
    prm_actor_gpus   a number: run the PRM in one named, detached Ray actor holding that many
                     GPUs (0: a CPU actor), shared by every reward worker, on GPUs that verl's
                     resource pools leave free; unset (default): the PRM runs in-process
    prm_actor_name   the actor's name (default "prm_dense_scorer")
    credit, min_temperature, progress_baseline, step_coef, outcome, outcome_coef, step_style,
    prompt_source    see `integrations.verl.dense.DenseRewardConfig`
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

import torch
from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register as register_loop_manager
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est
from verl.workers.reward_manager import register as register_batch_manager
from verl.workers.reward_manager.abstract import AbstractRewardManager

from integrations.verl.dense import (DenseRewardConfig, DenseRewarder, ResponseRewards, assign_rewards,
                                     choose_prompt, scalar_reward)
from prm.ppo.credit import reward_to_go

NAME = "prm_dense"
ADVANTAGE_ESTIMATOR = "prm_reward_to_go"
SCORER_OPTIONS = ("prm_path", "prm_format", "prm_device", "prm_dtype", "prm_batch_size", "prm_weight",
                  "verifier_weight", "verifier_neutral", "step_scorer", "orm_path", "prm_actor_gpus", "prm_actor_name")
CONFIG_OPTIONS = tuple(f.name for f in fields(DenseRewardConfig))


def split_options(options: Mapping[str, Any]) -> tuple[dict, DenseRewardConfig]:
    """(scorer options, DenseRewardConfig) from one flat options mapping; unknown keys raise."""
    options = dict(options)
    unknown = sorted(set(options) - set(SCORER_OPTIONS) - set(CONFIG_OPTIONS))
    if unknown:
        raise TypeError(f"unknown {NAME} options: {unknown}; known: {sorted(SCORER_OPTIONS + CONFIG_OPTIONS)}")
    config = DenseRewardConfig(**{k: options[k] for k in CONFIG_OPTIONS if k in options})
    return {k: options[k] for k in SCORER_OPTIONS if k in options}, config


class _PRMServer:
    """The PRM in a Ray actor: one copy on its own GPUs, shared by every reward worker."""

    def __init__(self, path: str, load_kwargs: dict):
        import prm

        self.scorer = prm.load(path, **load_kwargs)

    def score_steps_batch(self, prompts, steps_lists):
        return self.scorer.score_steps_batch(prompts, steps_lists)


class _ActorScorer:
    def __init__(self, handle):
        self.handle = handle

    def score_steps_batch(self, prompts, steps_lists):
        import ray

        return ray.get(self.handle.score_steps_batch.remote(list(prompts), [list(s) for s in steps_lists]))

    def score_steps(self, prompt, steps):
        return self.score_steps_batch([prompt], [steps])[0]


def _load_prm(path: str, opts: Mapping[str, Any]):
    load_kwargs = {"device": opts.get("prm_device"), "dtype": opts.get("prm_dtype"),
                   "format": opts.get("prm_format", "auto"), "batch_size": int(opts.get("prm_batch_size", 16))}
    gpus = opts.get("prm_actor_gpus", None)
    if gpus is not None:
        import ray

        if not ray.is_initialized():
            raise RuntimeError("prm_actor_gpus needs a running Ray cluster (verl's trainer starts one)")
        gpus = float(gpus)
        device = load_kwargs["device"] or ("cuda" if gpus > 0 else "cpu")
        actor = ray.remote(num_gpus=gpus)(_PRMServer).options(
            name=opts.get("prm_actor_name", "prm_dense_scorer"), get_if_exists=True, lifetime="detached")
        return _ActorScorer(actor.remote(path, {**load_kwargs, "device": device}))
    import prm

    return prm.load(path, **load_kwargs)


def build_step_scorer(opts: Mapping[str, Any]):
    """The step scorer the options describe: a PRM, the checker, or their `WeightedScorer` mix."""
    from search.scorers import VerifierScorer, WeightedScorer

    if opts.get("step_scorer") is not None:
        return opts["step_scorer"]
    components = []
    if opts.get("prm_path"):
        components.append((_load_prm(str(opts["prm_path"]), opts), float(opts.get("prm_weight", 1.0))))
    verifier_weight = float(opts.get("verifier_weight", 0.0) or 0.0)
    if verifier_weight or not components:
        components.append((VerifierScorer(neutral=float(opts.get("verifier_neutral", 0.5))), verifier_weight or 1.0))
    if len(components) == 1 and components[0][1] == 1.0:
        return components[0][0]
    return WeightedScorer(components)


def build_rewarder(tokenizer, options: Mapping[str, Any], compute_score=None) -> DenseRewarder:
    scorer_opts, config = split_options(options)
    outcome_scorer = None
    if config.outcome == "orm":
        import prm

        if not scorer_opts.get("orm_path"):
            raise ValueError("outcome='orm' needs orm_path")
        outcome_scorer = prm.load(str(scorer_opts["orm_path"]), device=scorer_opts.get("prm_device"))
    return DenseRewarder(tokenizer, build_step_scorer(scorer_opts), config, outcome_scorer=outcome_scorer,
                         compute_score=compute_score)


def _item_fields(item) -> tuple[list[int], list[int], int]:
    """(valid prompt ids, valid response ids, response width) of a DataProtoItem, as verl's
    NaiveRewardManager reads them: prompts are left-padded, responses right-padded."""
    prompt_ids = item.batch["prompts"]
    prompt_length = prompt_ids.shape[-1]
    mask = item.batch["attention_mask"]
    valid_prompt = int(mask[:prompt_length].sum())
    valid_response = int(mask[prompt_length:].sum())
    prompt = prompt_ids[prompt_length - valid_prompt:] if valid_prompt else prompt_ids[:0]
    response = item.batch["responses"][:valid_response]
    return prompt.tolist(), response.tolist(), item.batch["responses"].shape[-1]


def _prepare_item(rewarder: DenseRewarder, item) -> tuple[ResponseRewards, Any, Any, Any]:
    prompt_ids, response_ids, _ = _item_fields(item)
    nt = item.non_tensor_batch
    decoded_prompt = rewarder.tokenizer.decode(prompt_ids, skip_special_tokens=True)
    extra_info = nt.get("extra_info", None)
    prompt = choose_prompt(rewarder.config.prompt_source, decoded_prompt, nt.get("raw_prompt", None), extra_info)
    prepared = rewarder.prepare(response_ids, prompt)
    reward_model = nt.get("reward_model", None)
    ground_truth = reward_model.get("ground_truth") if isinstance(reward_model, Mapping) else None
    prepared.group = nt.get("uid", None)
    if prepared.group is None:
        prepared.group = ("prompt", decoded_prompt)  # no uid: samples of the same prompt form a group
    return prepared, ground_truth, nt.get("data_source", None), extra_info


def _extra_info(item: ResponseRewards, config: DenseRewardConfig) -> dict[str, float]:
    scores = item.step_scores
    return {
        # the scalar the reward-loop manager reports (`dense.scalar_reward`), so that both
        # managers log the same "score": for process_grpo the task reward before normalisation
        "score": scalar_reward(item, config),
        "outcome": float("nan") if item.outcome is None else float(item.outcome),
        "num_steps": float(len(scores)),
        "step_score_mean": float(sum(scores) / len(scores)) if scores else float("nan"),
        "step_score_min": float(min(scores)) if scores else float("nan"),
    }


@register_batch_manager(NAME)
class PRMDenseRewardManager(AbstractRewardManager):
    """verl batch reward manager: step rewards on each step's last policy token, the outcome on
    the last response token (see the module docstring for the options)."""

    def __init__(self, tokenizer, num_examine: int = 0, compute_score=None, reward_fn_key: str = "data_source",
                 **options):
        self.tokenizer = tokenizer
        self.num_examine = num_examine
        self.reward_fn_key = reward_fn_key
        self.rewarder = build_rewarder(tokenizer, options, compute_score)

    def __call__(self, data: DataProto, return_dict: bool = False):
        items, printed = [], 0
        for i in range(len(data)):
            prepared, ground_truth, data_source, extra_info = _prepare_item(self.rewarder, data[i])
            items.append((prepared, ground_truth, data_source, extra_info))
        responses = [p for p, *_ in items]
        self.rewarder.score(responses)
        for prepared, ground_truth, data_source, extra_info in items:
            prepared.outcome = self.rewarder.outcome_of(prepared, ground_truth, data_source, extra_info)
        assign_rewards(responses, self.rewarder.config)

        reward_tensor = torch.zeros_like(data.batch["responses"], dtype=torch.float32)
        reward_extra_info: dict[str, list] = defaultdict(list)
        for i, item in enumerate(responses):
            if item.length:
                reward_tensor[i, : item.length] = torch.tensor(item.dense(), dtype=torch.float32)
            for key, value in _extra_info(item, self.rewarder.config).items():
                reward_extra_info[key].append(value)
            if printed < self.num_examine:
                printed += 1
                print("[prompt]", item.prompt)
                print("[response]", item.text)
                print("[step scores]", [round(s, 4) for s in item.step_scores], "[outcome]", item.outcome)
        if return_dict:
            return {"reward_tensor": reward_tensor, "reward_extra_info": reward_extra_info}
        return reward_tensor


class DenseScore(float):
    """A trajectory's scalar reward (`dense.scalar_reward`: the sum of its dense rewards; for
    "process_grpo" the sum before the group normalisation) that also carries the dense
    placement, so `assemble_rm_scores` can write per-token rewards. Where verl keeps only a
    float (the agent loop's async reward, `AgentLoopOutput.reward_score`), the scalar remains."""

    payload: dict

    def __new__(cls, value: float, payload: dict):
        obj = super().__new__(cls, value)
        obj.payload = payload
        return obj

    def __reduce__(self):
        return (DenseScore, (float(self), self.payload))


@register_loop_manager(NAME)
class PRMDenseRewardLoopManager(RewardManagerBase):
    """verl reward-loop manager (verl 0.9.1's trainers): `run_single` scores one response and
    returns a `DenseScore`; `assemble_rm_scores` (called by `RewardLoopManager.compute_rm_score`
    with the whole batch) writes each step's reward on its last token and the outcome on the
    last response token, normalising per group (uid) for "process_grpo".

    Options come from `config.reward.reward_kwargs` (see the module docstring).
    """

    def __init__(self, config, tokenizer, compute_score, reward_router_address=None, reward_model_tokenizer=None):
        super().__init__(config, tokenizer, compute_score)
        kwargs = config.reward.get("reward_kwargs", None) if hasattr(config, "reward") else None
        options = _to_dict(kwargs)
        self.reward_router_address = reward_router_address
        self.reward_model_tokenizer = reward_model_tokenizer
        self.rewarder = build_rewarder(tokenizer, options, compute_score)

    def _score_one(self, data: DataProto) -> dict:
        prepared, ground_truth, data_source, extra_info = _prepare_item(self.rewarder, data[0])
        self.rewarder.score([prepared])
        prepared.outcome = self.rewarder.outcome_of(prepared, ground_truth, data_source, extra_info)
        config = self.rewarder.config
        payload = {
            "step_tokens": prepared.step_tokens, "step_scores": prepared.step_scores, "outcome": prepared.outcome,
            "length": prepared.length, "config": asdict(config),
        }
        # The float is all verl's agent-loop path keeps: the row's total reward, for process_grpo
        # before the group normalisation (one response normalised alone sums to ~0). The
        # per-token rewards, process_grpo's per group, are made from the payload by
        # assemble_rm_scores.
        score = DenseScore(scalar_reward(prepared, config), payload)
        return {"reward_score": score, "reward_extra_info": _extra_info(prepared, config)}

    async def run_single(self, data: DataProto) -> dict:
        data = data[-1:]  # multi-sequence outputs: the last sequence, as verl's managers do
        return await self.loop.run_in_executor(None, self._score_one, data)

    @classmethod
    def assemble_rm_scores(cls, data: DataProto, scores: list) -> torch.Tensor:
        rm_scores = torch.zeros_like(data.batch["responses"], dtype=torch.float32)
        prompt_length = data.batch["prompts"].size(1)
        valid = data.batch["attention_mask"][:, prompt_length:].sum(dim=1).tolist()
        uids = data.non_tensor_batch.get("uid", None)
        items, rows, config = [], [], None
        for i, score in enumerate(scores):
            payload = getattr(score, "payload", None)
            if payload is None:  # a plain float: the scalar on the last token, as verl does
                if valid[i]:
                    rm_scores[i, int(valid[i]) - 1] = float(score)
                continue
            config = DenseRewardConfig(**payload["config"])
            items.append(ResponseRewards(prompt="", text="", steps=[""] * len(payload["step_scores"]),
                                         step_tokens=list(payload["step_tokens"]),
                                         step_scores=list(payload["step_scores"]), outcome=payload["outcome"],
                                         length=int(payload["length"]),
                                         group=None if uids is None else uids[i]))
            rows.append(i)
        if items:
            if config.credit == "process_grpo" and uids is None:
                raise ValueError("credit='process_grpo' needs verl's uid in non_tensor_batch to group samples")
            assign_rewards(items, config)
            for row, item in zip(rows, items):
                if item.length:
                    rm_scores[row, : item.length] = torch.tensor(item.dense(), dtype=torch.float32)
        return rm_scores


def _to_dict(value) -> dict:
    if value is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(value, DictConfig):
            return dict(OmegaConf.to_container(value, resolve=True))
    except ImportError:  # pragma: no cover - omegaconf ships with verl
        pass
    return dict(value)


def compute_reward_to_go_advantage(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, config=None,
                                   index=None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """verl advantage estimator "prm_reward_to_go": advantages = returns = sum_{t' >= t} r_t'
    over the response (gamma = 1), no baseline, no whitening (`prm.ppo.credit.reward_to_go`)."""
    returns = reward_to_go(token_level_rewards, response_mask)
    return returns, returns


if ADVANTAGE_ESTIMATOR not in ADV_ESTIMATOR_REGISTRY:
    register_adv_est(ADVANTAGE_ESTIMATOR)(compute_reward_to_go_advantage)


def run_sync(coro):
    """Run a coroutine to completion (tests and scripts outside verl's event loop)."""
    return asyncio.get_event_loop().run_until_complete(coro)
