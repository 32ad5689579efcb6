"""Bridges from the toolkit to other frameworks. Nothing of the toolkit imports this package.

* `integrations.verl`: dense per-step rewards for verl (a reward manager registered as
  "prm_dense", credit-assignment forms shared with `prm.ppo.credit`). See docs/verl.md.
"""
