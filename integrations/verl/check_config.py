"""Dry-run a verl command line on CPU: compose verl's config with the given Hydra overrides, run
verl's own config validation and the checks of what "prm_dense" needs, start nothing.

    VERL_MAIN="python -m integrations.verl.check_config" bash integrations/verl/recipes/gae_dense.sh

Checks: the overrides compose against verl 0.9.1's ppo_trainer schema; `validate_config` passes
(batch sizes divide the GPUs...); the legacy reward keys migrate; the reward manager class resolves
(register or importlib) to a prm_dense manager; the custom reward function loads; the advantage
estimator exists once `integrations.verl.setup_worker` ran; every reward_kwargs key is a prm_dense
option; and the dense rewards can reach training (the legacy trainer, a colocated reward step).
"""

from __future__ import annotations

import sys
from pathlib import Path


def check(overrides: list[str]) -> dict:
    import verl
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from integrations.verl import setup_worker

    setup_worker()
    from integrations.verl.manager import PRMDenseRewardLoopManager, split_options
    from verl.experimental.reward_loop import migrate_legacy_reward_impl
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn
    from verl.trainer.ppo.reward import get_custom_reward_fn, resolve_reward_manager_cls
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    config = migrate_legacy_reward_impl(config)
    manager = resolve_reward_manager_cls(config)
    if not issubclass(manager, PRMDenseRewardLoopManager):
        raise SystemExit(f"reward manager resolves to {manager}, not prm_dense")
    kwargs = OmegaConf.to_container(config.reward.get("reward_kwargs") or OmegaConf.create({}), resolve=True)
    _, dense_config = split_options(kwargs)
    estimator = config.algorithm.adv_estimator
    if estimator not in ("gae", "grpo"):
        get_adv_estimator_fn(estimator)  # raises for an unregistered name
    problems = []
    if config.trainer.use_v1:
        problems.append("trainer.use_v1=True: verl 0.9.1's v1 colocated reward step passes neither uid nor "
                        "ground truth; use trainer.use_v1=False")
    if not config.reward.reward_model.enable or config.reward.reward_model.enable_resource_pool:
        problems.append("rewards are computed in the agent loop, which keeps one float per response: set "
                        "reward.reward_model.enable=True and enable_resource_pool=False for dense rewards")
    if config.reward.custom_reward_function.path is None:
        problems.append("reward.custom_reward_function.path is unset: with a reward model verl 0.9.1 then "
                        "scores with it (compute_score_disrm) instead of the manager")
    if dense_config.credit == "process_grpo" and estimator != "prm_reward_to_go":
        problems.append(f"credit=process_grpo wants algorithm.adv_estimator=prm_reward_to_go, not {estimator}")
    if problems:
        raise SystemExit("prm_dense: " + "\n  ".join(["dense rewards would not reach training:"] + problems))
    get_custom_reward_fn(config)
    return {"manager": manager.__name__, "adv_estimator": estimator, "credit": dense_config.credit,
            "critic": need_critic(config), "reference": need_reference_policy(config)}


def main(argv=None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["-m", "verl.trainer.main_ppo"]:
        args = args[2:]
    result = check(args)
    print("prm_dense config OK:", ", ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
