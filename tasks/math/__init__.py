"""Math problems: types, one reader per record kind, step splitting, loaders, the synthetic task, GSM8K corruptions, prompt templates."""

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
    SYNTHETIC_PREFIX,
    CorruptedSolution,
    SyntheticConfig,
    corrupt,
    generate_problems,
    step_labelled_records,
    synthetic_preset,
)
from tasks.math.gsm8k_corruptions import (
    GSM8K_ERROR_KINDS,
    GSM8KCorruption,
    applicable_kinds,
    corrupt_gsm8k,
    gsm8k_corruption_records,
    gsm8k_problem,
    gsm8k_problems,
    holdout_split,
)
from tasks.math.steps import join_steps, split_gsm8k, split_steps, strip_calculator_annotations
from tasks.math.loaders import (  # datasets is imported only when a loader runs
    iter_jsonl,
    load_gsm8k,
    load_math,
    load_math_shepherd,
    load_prm800k,
    load_processbench,
    load_report,
    load_step_dataset,
    load_trl_stepwise,
    read_jsonl,
)
from tasks.math.records import (
    CandidateRecord,
    candidates_from_record,
    problem_from_record,
    read_candidates,
    read_problems,
    read_reward_records,
    without_overlap,
)
