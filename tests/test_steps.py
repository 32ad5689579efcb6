import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.math.steps import (
    SHEPHERD_TAG,
    detect_style,
    join_shepherd,
    join_steps,
    split_gsm8k,
    split_steps,
    strip_calculator_annotations,
)

# Step text: no newline, no surrounding whitespace, no Shepherd tag, no "Step k:" / "####".
_alphabet = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\n\r#кs$\\")
step_text = st.text(_alphabet, min_size=1, max_size=30).map(str.strip).filter(bool)
step_lists = st.lists(step_text, min_size=1, max_size=8)


@settings(max_examples=80, deadline=None)
@given(step_lists)
def test_lines_round_trip(steps):
    text = join_steps(steps, "\n")
    assert split_steps(text, "lines") == steps
    assert join_steps(split_steps(text, "lines"), "\n") == text


@settings(max_examples=80, deadline=None)
@given(step_lists)
def test_blank_round_trip(steps):
    text = join_steps(steps, "\n\n")
    assert split_steps(text, "blank") == steps
    assert join_steps(split_steps(text, "blank"), "\n\n") == text


@settings(max_examples=80, deadline=None)
@given(step_lists)
def test_step_prefix_round_trip(bodies):
    steps = [f"Step {k}: {body}" for k, body in enumerate(bodies, 1)]
    text = join_steps(steps, "\n")
    assert split_steps(text, "step_prefix") == steps
    assert join_steps(split_steps(text, "step_prefix"), "\n") == text


@settings(max_examples=80, deadline=None)
@given(step_lists, st.integers(-1000, 1000))
def test_gsm8k_and_shepherd_round_trip(steps, answer):
    text = join_steps(steps, "\n") + f"\n#### {answer}"
    assert split_gsm8k(text) == (steps, str(answer))
    assert split_steps(text, "gsm8k") == steps
    assert split_steps(join_shepherd(steps), "shepherd") == steps
    assert split_steps(join_shepherd(steps)) == steps


def test_gsm8k_lines_keep_annotations_and_drop_the_answer():
    text = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
    assert detect_style(text) == "gsm8k"
    assert split_steps(text) == ["Natalia sold 48/2 = <<48/2=24>>24 clips in May.", "She sold 48+24 = <<48+24=72>>72 clips."]
    assert strip_calculator_annotations(split_steps(text)[0]) == "Natalia sold 48/2 = 24 clips in May."


def test_step_prefix_on_one_line_and_quoted_step_numbers():
    text = "Step 1: 3 + 4 = 7. Step 2: as in step 1: 7 - 2 = 5. Step 3: The answer is 5"
    assert split_steps(text) == ["Step 1: 3 + 4 = 7.", "Step 2: as in step 1: 7 - 2 = 5.", "Step 3: The answer is 5"]


def test_shepherd_tags_and_other_shapes():
    text = f"Step 1: 16 - 3 = 13. {SHEPHERD_TAG}\nStep 2: 13 * 2 = 26. The answer is: 26 {SHEPHERD_TAG}"
    assert split_steps(text) == ["Step 1: 16 - 3 = 13.", "Step 2: 13 * 2 = 26. The answer is: 26"]
    assert split_steps("First.\nStill first.\n\n  \nSecond.") == ["First.\nStill first.", "Second."]
    assert split_steps("a\r\nb\n\n") == ["a", "b"]
    assert split_steps(["  I want x. ", "", "So x = 2."]) == ["I want x.", "So x = 2."]  # PRM800K lists
    assert split_steps("") == []
    with pytest.raises(ValueError):
        split_steps("x", "sentences")


def test_a_markdown_header_of_four_hashes_is_not_a_gsm8k_answer():
    # Only a last "#### X" line is GSM8K's answer; a "####" header with text after it is a step
    # start, and nothing after it is lost.
    text = ("#### Step 1: Add\n3 + 4 = 7\n#### Step 2: Double\n7 * 2 = 14\n#### Final Answer\nThe answer is 14")
    assert split_steps(text) == ["#### Step 1: Add\n3 + 4 = 7", "#### Step 2: Double\n7 * 2 = 14\n#### Final Answer",
                                 "The answer is 14"]
    assert split_gsm8k("3 + 4 = 7\n#### Final\nThe answer is 7") == (["3 + 4 = 7", "#### Final", "The answer is 7"], None)
    assert split_gsm8k("3 + 4 = 7\n#### 7\n") == (["3 + 4 = 7"], "7")


def test_bold_step_prefixes_and_a_last_answer_line_in_the_step_prefix_style():
    text = "**Step 1:** Add the apples.\n2 + 3 = 5\n**Step 2:** Double them.\n5 * 2 = 10\nThe answer is 10"
    assert split_steps(text) == ["**Step 1:** Add the apples.\n2 + 3 = 5", "**Step 2:** Double them.\n5 * 2 = 10",
                                 "The answer is 10"]


def test_a_step_number_with_a_period_inside_prose_does_not_start_a_step():
    text = "Step 1: We set up; in step 2. we will add.\nStep 2: 2 + 3 = 5\nStep 3: The answer is 5"
    assert split_steps(text) == ["Step 1: We set up; in step 2. we will add.", "Step 2: 2 + 3 = 5",
                                 "Step 3: The answer is 5"]
    assert split_steps("Step 1. Add: 2 + 3 = 5\nStep 2. The answer is 5") == ["Step 1. Add: 2 + 3 = 5",
                                                                              "Step 2. The answer is 5"]


def test_display_math_over_several_lines_stays_in_one_step():
    text = "We add:\n\\[\n2 + 3 = 5\n\\]\nThe answer is 5"
    assert split_steps(text) == ["We add:", "\\[\n2 + 3 = 5\n\\]", "The answer is 5"]
    align = "We have\n\\begin{align*}\nx &= 2 + 3 \\\\\n&= 5\n\\end{align*}\nThe answer is 5"
    assert split_steps(align) == ["We have", "\\begin{align*}\nx &= 2 + 3 \\\\\n&= 5\n\\end{align*}",
                                  "The answer is 5"]
    assert split_steps("$$\n1 + 1 = 2\n$$\nSo 2") == ["$$\n1 + 1 = 2\n$$", "So 2"]
    assert split_steps("\\[\n1 + 1 = 2\nnever closed\nSo 2") == ["\\[", "1 + 1 = 2", "never closed", "So 2"]


def test_display_math_ignores_a_latex_line_break_and_an_escaped_dollar():
    # "\\[2pt]" (a line break with spacing) opened a display block, and the "$$" inside
    # "$\$$" (a dollar sign in inline math) opened or closed one: unrelated lines were merged.
    aligned = "We have\n\\begin{align*}\nx &= 1 \\\\[2pt]\ny &= 2\n\\end{align*}\nSo $x+y=3$."
    assert split_steps(aligned, "lines") == ["We have", "\\begin{align*}\nx &= 1 \\\\[2pt]\ny &= 2\n\\end{align*}",
                                             "So $x+y=3$."]
    dollars = "Each pen costs $\\$$2.\nShe has 10 dollars.\nShe spends $\\$$6.\nThe answer is 4"
    assert split_steps(dollars, "lines") == dollars.split("\n")
