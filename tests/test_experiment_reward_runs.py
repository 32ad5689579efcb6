"""experiments/reward_runs.py measures every reward model it is given on the same problems and samples."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))


def test_each_reward_model_gets_a_row_measured_on_the_same_samples(tmp_path):
    import reward_runs

    from commands.demo import ASSETS

    shipped = str(ASSETS / "reward")
    rows = reward_runs.main([shipped, shipped, "--n_problems", "3", "--n_samples", "4", "--n", "4",
                             "--output_dir", str(tmp_path)])
    assert [row["reward_model"] for row in rows] == [shipped, shipped]
    assert rows[0] == rows[1]  # the same model on the same samples: the same figures
    assert 0.5 < rows[0]["step_auc"] <= 1.0  # the shipped PRM tells right from wrong steps
    assert set(rows[0]["best_of_n"]) == {"prm-min", "orm", "majority", "prm-min+verifier", "majority+verifier"}
    assert json.loads((tmp_path / "reward_runs.json").read_text()) == rows
