"""Process and outcome reward models: modelling, training, fast scoring, PPO."""


def load(path_or_hub_id, *, device=None, dtype=None, format="auto", trust_remote_code=False, **kw):
    """A `prm.scoring.RewardScorer` for a saved or published reward model (see `prm.scoring.load`)."""
    from prm.scoring import load as _load

    return _load(path_or_hub_id, device=device, dtype=dtype, format=format, trust_remote_code=trust_remote_code, **kw)


__all__ = ["load"]
