"""Process and outcome reward models: modelling, training, fast scoring, PPO."""


def _version() -> str:
    """The installed distribution's version; from pyproject.toml in a source checkout that is not installed."""
    from importlib import metadata

    try:
        return metadata.version("prm-toolkit")
    except metadata.PackageNotFoundError:
        import re
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        found = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.M) if pyproject.is_file() else None
        return found.group(1) if found else "0.0.0+unknown"


__version__ = _version()


def load(path_or_hub_id, *, device=None, dtype=None, format="auto", trust_remote_code=False, **kw):
    """A `prm.scoring.RewardScorer` for a saved or published reward model (see `prm.scoring.load`)."""
    from prm.scoring import load as _load

    return _load(path_or_hub_id, device=device, dtype=dtype, format=format, trust_remote_code=trust_remote_code, **kw)


__all__ = ["__version__", "load"]
