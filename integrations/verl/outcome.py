"""verl `custom_reward_function` with the toolkit's outcome check (no verl import).

    reward.custom_reward_function.path=pkg://integrations.verl.outcome
    reward.custom_reward_function.name=compute_score
"""

from __future__ import annotations

import verifiers


def compute_score(data_source=None, solution_str: str = "", ground_truth=None, extra_info=None, **kwargs) -> float:
    """1.0 if the solution's final answer is equivalent to the ground truth (`verifiers.is_correct`),
    else 0.0; verl's compute_score signature."""
    if ground_truth is None:
        return 0.0
    return 1.0 if verifiers.is_correct(str(ground_truth), solution_str) else 0.0
