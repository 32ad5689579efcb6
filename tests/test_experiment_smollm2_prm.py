"""The SmolLM2 GSM8K PRM recipe (experiments/smollm2_prm.py) end to end on a tiny random model:
data with a held-out split, adapter-only training, shipping, loading through `prm.load`, the
held-out report and the model card. The real model is never loaded here."""

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def _load_experiment():
    spec = importlib.util.spec_from_file_location("smollm2_prm", ROOT / "experiments" / "smollm2_prm.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_recipe_runs_end_to_end_and_ships_a_loadable_adapter(tmp_path):
    from generation.tiny import save_tiny_causal_lm

    experiment = _load_experiment()
    rows = [json.loads(line) for line in (FIXTURES / "gsm8k_train_sample.jsonl").read_text().splitlines()]
    base = save_tiny_causal_lm(tmp_path / "base", [row["question"] + "\n" + row["answer"] for row in rows],
                               size="tiny", seed=0)
    ship = tmp_path / "ship"
    args = ["--gsm8k", str(FIXTURES / "gsm8k_train_sample.jsonl"), "--output_dir", str(tmp_path / "run"),
            "--ship_dir", str(ship), "--model", str(base), "--holdout", "5", "--max_steps", "2",
            "--batch_size", "4", "--lora_r", "2", "--eval_records", "6"]
    experiment.main(args)
    run = tmp_path / "run"
    train_ids = {json.loads(line)["id"] for line in (run / "train.jsonl").read_text().splitlines()}
    held_ids = {json.loads(line)["id"] for line in (run / "heldout.jsonl").read_text().splitlines()}
    assert held_ids and train_ids and not train_ids & held_ids
    assert not list(ship.glob("model*.safetensors"))  # adapter and heads only
    from safetensors.torch import load_file

    assert {str(t.dtype) for t in load_file(str(ship / "adapter" / "adapter_model.safetensors")).values()} == {"torch.bfloat16"}
    assert json.loads((ship / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    results = json.loads((run / "results.json").read_text())
    assert results["problems"] == len(held_ids)
    for row in results["selection"].values():
        assert all(0.0 <= row[method] <= 1.0 for method in experiment.METHODS)
    assert "Held-out figures" in (ship / "README.md").read_text()

    import prm

    steps = ["Natalia sold 48/2 = <<48/2=24>>24 clips in May.", "The answer is 72"]
    first = prm.load(str(ship)).score_steps("How many clips?", steps)
    assert len(first) == 2 and all(0.0 < p < 1.0 for p in first)
    experiment.main(args)  # a rerun reuses the data and the trained model
    assert prm.load(str(ship)).score_steps("How many clips?", steps) == first
