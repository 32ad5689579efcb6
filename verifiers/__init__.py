"""Safe symbolic checking of math reasoning steps and final answers.

Nothing here executes the text it is given: expressions are parsed by our own grammar
(`verifiers.parser`) and evaluated exactly with rationals, or built into sympy objects
through constructors. Every public function is bounded in time and never raises on bad input
(except `parse_expression`, which raises `ParseError` / `LimitError` with a message).
"""

from verifiers.answers import answers_equivalent, extract_answer, is_correct
from verifiers.limits import DEFAULT_LIMITS, LimitError, Limits, ParseError
from verifiers.parser import parse_expression
from verifiers.steps import (
    Claim,
    SolutionVerdict,
    StepVerdict,
    check_step,
    check_transition,
    find_claims,
    verify_solution,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Claim",
    "answers_equivalent",
    "extract_answer",
    "is_correct",
    "LimitError",
    "Limits",
    "ParseError",
    "SolutionVerdict",
    "StepVerdict",
    "check_step",
    "check_transition",
    "find_claims",
    "parse_expression",
    "verify_solution",
]
