#!/usr/bin/env bash
# PPO with GAE on dense PRM rewards (credit form "min", PURE; CREDIT=sum for Math-Shepherd's).
# NOT RUN ON GPUS. Usage: POLICY=... PRM=... DATA=... bash integrations/verl/recipes/gae_dense.sh [overrides]
source "$(dirname "$0")/common.sh"
${VERL_MAIN:-python -m verl.trainer.main_ppo} "${COMMON[@]}" \
  algorithm.adv_estimator=gae \
  algorithm.gamma=1.0 \
  algorithm.lam=0.95 \
  data.train_batch_size=256 \
  actor_rollout_ref.rollout.n=1 \
  actor_rollout_ref.actor.ppo_mini_batch_size=64 \
  critic.model.path="$POLICY" \
  critic.optim.lr=1e-5 \
  critic.ppo_micro_batch_size_per_gpu=8 \
  +reward.reward_kwargs.credit="${CREDIT:-min}" \
  +reward.reward_kwargs.step_coef=1.0 \
  +reward.reward_kwargs.outcome_coef=1.0 \
  trainer.project_name=prm_dense \
  trainer.experiment_name="gae_${CREDIT:-min}" \
  "$@"
