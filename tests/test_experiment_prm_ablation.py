"""The PRM ablation experiment runs end to end at the smallest size and reports every kind."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))


def test_ablation_smoke(tmp_path):
    import prm_ablation

    results = prm_ablation.main(["--problems", "30", "--steps", "3", "--eval_problems", "10",
                                 "--variants", "plain,+first_wrong", "--output_dir", str(tmp_path)])
    assert set(results) == {"plain", "+first_wrong"}
    for row in results.values():
        assert all(0.0 <= row[kind] <= 1.0 for kind in prm_ablation.KINDS)
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(json.dumps(results))


def test_evaluation_problems_share_no_question_with_the_training_problems():
    import prm_ablation
    from tasks.math.synthetic import generate_problems

    # The generator repeats questions, so seed 99991 alone would hold training questions.
    training = {p.question for p in generate_problems(2000, "tiny", seed=0)}
    assert training & {p.question for p in generate_problems(400, "tiny", seed=99991)}
    problems = prm_ablation.evaluation_problems(400, 2000)
    questions = [p.question for p in problems]
    assert len(questions) == len(set(questions)) == 400
    assert not training & set(questions)
