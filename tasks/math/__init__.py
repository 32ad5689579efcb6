"""Math problems: types, step splitting, loaders, the synthetic task, prompt templates."""

from tasks.math.prompts import ANSWER_PREFIX, STEP_SEPARATOR, answer_step, format_solution, policy_prompt
from tasks.math.protocols import OutcomeScorer, Policy, StepScorer
from tasks.math.types import (
    OutcomeExample,
    PairwiseExample,
    Problem,
    RecordError,
    StepLabelledExample,
    outcome_from_steps,
    validate_outcome_example,
    validate_pairwise_example,
    validate_step_example,
)
from tasks.math.synthetic import (
    ERROR_KINDS,
    PRESETS,
    CorruptedSolution,
    SyntheticConfig,
    corrupt,
    generate_problems,
    step_labelled_records,
)
