#!/usr/bin/env bash
# GRPO with process supervision (DeepSeekMath): step rewards normalised over each group's steps
# (credit "process_grpo", grouped by verl's uid), advantage = reward-to-go ("prm_reward_to_go").
# The estimator is registered by integrations.verl.setup_worker in every Ray worker (the
# TaskRunner computes advantages in one). NOT RUN ON GPUS.
source "$(dirname "$0")/common.sh"
${VERL_MAIN:-python -m verl.trainer.main_ppo} "${COMMON[@]}" \
  +ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=integrations.verl.setup_worker \
  algorithm.adv_estimator=prm_reward_to_go \
  data.train_batch_size=128 \
  actor_rollout_ref.rollout.n=8 \
  actor_rollout_ref.actor.ppo_mini_batch_size=32 \
  +reward.reward_kwargs.credit=process_grpo \
  +reward.reward_kwargs.step_coef=1.0 \
  +reward.reward_kwargs.outcome_coef=1.0 \
  trainer.project_name=prm_dense \
  trainer.experiment_name=grpo_process \
  "$@"
