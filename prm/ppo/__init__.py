"""PPO with dense per-step rewards from a PRM: `PPOConfig`, `train_ppo` (the `prm ppo` recipe)."""

from prm.ppo.train import PPOConfig, train_ppo

__all__ = ["PPOConfig", "train_ppo"]
