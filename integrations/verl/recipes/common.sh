#!/usr/bin/env bash
# Shared settings of the two prm_dense recipes. NOT RUN ON GPUS: written against verl 0.9.1's
# config schema, with the manager and estimator tested on CPU only (tests/test_verl_manager.py).
# Dry run on CPU (compose + validate, starts nothing):
#   VERL_MAIN="python -m integrations.verl.check_config" bash integrations/verl/recipes/<recipe>.sh
# One node, 8 GPUs: 4 for verl (actor, rollout, reference, critic, the placeholder reward server),
# 1 for the toolkit's PRM in its own Ray actor (prm_actor_gpus=1), 3 spare.
set -euo pipefail

POLICY=${POLICY:-$HOME/models/Qwen2.5-Math-1.5B-Instruct}   # local folders (download them first)
PRM=${PRM:-$HOME/models/Qwen2.5-Math-PRM-7B}
DATA=${DATA:-$HOME/data/prm_dense_math}                      # integrations.verl.prepare_data --qwen
GPUS=${GPUS:-4}

COMMON=(
  # the legacy trainer: in verl 0.9.1 only its colocated reward step hands the whole batch (uid,
  # ground truth) to RewardLoopManager.compute_rm_score -> our assemble_rm_scores (docs/verl.md)
  trainer.use_v1=False
  data.train_files="$DATA/train.parquet"
  data.val_files="$DATA/test.parquet"
  data.max_prompt_length=1024
  data.max_response_length=2048
  data.return_raw_chat=True
  data.filter_overlong_prompts=True
  actor_rollout_ref.model.path="$POLICY"
  actor_rollout_ref.model.use_remove_padding=True
  actor_rollout_ref.actor.optim.lr=1e-6
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8
  actor_rollout_ref.actor.use_kl_loss=True
  actor_rollout_ref.actor.kl_loss_coef=0.001
  actor_rollout_ref.actor.kl_loss_type=low_var_kl
  actor_rollout_ref.rollout.name=vllm
  actor_rollout_ref.rollout.tensor_model_parallel_size=1
  actor_rollout_ref.rollout.gpu_memory_utilization=0.5
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16
  algorithm.use_kl_in_reward=False
  # the dense manager, loaded by path (no registration needed in the driver)
  reward.num_workers=4
  reward.reward_manager.source=importlib
  reward.reward_manager.name=PRMDenseRewardLoopManager
  reward.reward_manager.module.path=pkg://integrations.verl.manager
  # verl 0.9.1 calls a manager's run_single in the colocated step only when a custom reward
  # function is set; ours is the toolkit's answer check (also usable as outcome=compute_score)
  reward.custom_reward_function.path=pkg://integrations.verl.outcome
  reward.custom_reward_function.name=compute_score
  # the colocated reward step needs reward_model.enable=True, which starts a reward server that
  # the manager does not use: point it at the small policy, let it sleep (free_cache_engine)
  reward.reward_model.enable=True
  reward.reward_model.enable_resource_pool=False
  reward.reward_model.model_path="$POLICY"
  reward.reward_model.rollout.name=vllm
  reward.reward_model.rollout.tensor_model_parallel_size=1
  reward.reward_model.rollout.gpu_memory_utilization=0.05
  # prm_dense options (config.reward.reward_kwargs)
  +reward.reward_kwargs.prm_path="$PRM"
  +reward.reward_kwargs.prm_format=qwen-prm
  +reward.reward_kwargs.prm_dtype=bfloat16
  +reward.reward_kwargs.prm_batch_size=32
  +reward.reward_kwargs.prm_actor_gpus=1
  +reward.reward_kwargs.step_style=blank        # Qwen2.5-Math separates steps by blank lines
  +reward.reward_kwargs.prompt_source=raw_prompt
  +reward.reward_kwargs.outcome=answer
  trainer.nnodes=1
  trainer.n_gpus_per_node="$GPUS"
  trainer.logger='[console]'
  trainer.val_before_train=True
  trainer.test_freq=20
  trainer.save_freq=100
  trainer.total_epochs=1
)
