"""Dense-reward RL through verl (0.9.1): the "prm_dense" reward manager and its helpers.

* `integrations.verl.dense`: the framework-free core (decode, split into steps, score, credit
  form, place rewards on the policy's tokens through character offsets).
* `integrations.verl.manager`: the verl reward managers registered as "prm_dense" and the
  advantage estimator "prm_reward_to_go" (imports verl; importing it registers them).
* `integrations.verl.outcome`: `compute_score` for verl's custom_reward_function (the toolkit's
  answer check).

verl pins transformers < 5.11, so it lives in its own venv: `make verl` builds .venv-verl.
See docs/verl.md for the recipe.
"""


def register() -> None:
    """Import the verl-bound module, registering "prm_dense" and "prm_reward_to_go" in verl."""
    import integrations.verl.manager  # noqa: F401


def setup_worker() -> None:
    """Ray `worker_process_setup_hook`: register the manager and the advantage estimator in every
    Ray worker process (verl's TaskRunner computes advantages in one)."""
    register()
