"""PPO with dense per-step rewards from a PRM."""
