"""Process and outcome reward models: modelling, training, fast scoring, PPO."""
