"""Generation: policy backends (HF generate with per-sequence KV caches, vLLM), hub aliases
(SmolLM2 offline), tiny models for CPU runs, and policy loading. Below the reward models:
SFT evaluation, labelling, search and PPO all sample through this package."""
