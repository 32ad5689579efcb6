"""Prompt templates for a policy: question -> one step a line -> final answer line.

The solution a policy writes (and a reference solution, and a PRM input) has one step per
line; its last step states the answer::

    Question: Tom has 3 apples and buys 4 more. How many apples does he have?
    Solution:
    3 + 4 = 7
    The answer is 7

`policy_prompt` gives the text up to and including "Solution:\\n"; steps follow, each
ended by `STEP_SEPARATOR`. Chat models get the same content through `chat_messages`.
"""

from __future__ import annotations

STEP_SEPARATOR = "\n"
ANSWER_PREFIX = "The answer is "

SYSTEM_PROMPT = (
    "Solve the math problem step by step. Write one step per line, each with the "
    "calculation it makes, and end with a line 'The answer is <number>'."
)


def policy_prompt(question: str) -> str:
    """The plain-text prompt a base or tiny policy continues."""
    return f"Question: {question.strip()}\nSolution:\n"


def answer_step(answer: str) -> str:
    """The final step that states the answer."""
    return f"{ANSWER_PREFIX}{answer}"


def format_solution(steps: list[str] | tuple[str, ...]) -> str:
    """Join steps into the text a policy writes after its prompt (each step ends a line)."""
    return "".join(step + STEP_SEPARATOR for step in steps)


def chat_messages(question: str) -> list[dict[str, str]]:
    """The same task for a chat model, to pass through `tokenizer.apply_chat_template`."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": question.strip()},
    ]
