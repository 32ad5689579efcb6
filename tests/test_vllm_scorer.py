"""`VLLMScorer` (issue #17, item 2): a trained PRM scored through vLLM's token-classification
pooling gives the same per-step probabilities as `prm.load`. vLLM needs a GPU, so a fake engine
with the same interface (`get_tokenizer`, `encode(prompts, pooling_task=...)` returning outputs
whose `.outputs.data` is the per-token [T, num_labels] tensor) runs the standard transformers class
of the checkpoint here."""

import types

import pytest
import torch

import prm
from commands.cli import main
from tasks.math.protocols import StepScorer

PROMPT = "What is 2 + 3?"
STEPS = ["2 + 3 = 5", "5 * 1 = 5", "The answer is 5"]


class FakeLLM:
    """`vllm.LLM(dir, runner="pooling")` for a token-classification checkpoint, on CPU."""

    def __init__(self, path, *, activation: bool = True):
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        self.model = AutoModelForTokenClassification.from_pretrained(path).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.activation = activation
        self.calls = []

    def get_tokenizer(self):
        return self.tokenizer

    def encode(self, prompts, pooling_task=None, use_tqdm=True, **kwargs):
        self.calls.append((len(prompts), pooling_task))
        self.sent = [list(prompt["prompt_token_ids"]) for prompt in prompts]
        outputs = []
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            with torch.no_grad():
                logits = self.model(torch.tensor([ids])).logits[0].float()  # [T, num_labels]
            if self.activation:  # vLLM's default: sigmoid for 1 label, softmax for more
                logits = torch.sigmoid(logits) if logits.shape[-1] == 1 else torch.softmax(logits, -1)
            outputs.append(types.SimpleNamespace(prompt_token_ids=ids, outputs=types.SimpleNamespace(data=logits)))
        return outputs


@pytest.fixture(scope="module", params=[1, 2], ids=["1-label", "2-label"])
def checkpoint(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("vllm") / f"prm{request.param}"
    assert main(["train", "--synthetic_problems", "40", "--max_steps", "3", "--eval_every", "0", "--no_progress",
                 "--num_labels", str(request.param), "--output_dir", str(out)]) == 0
    return out


@pytest.mark.parametrize("activation", [True, False], ids=["probabilities", "logits"])
def test_same_step_probabilities_as_prm_load(checkpoint, activation):
    from prm.vllm_scorer import VLLMScorer

    llm = FakeLLM(checkpoint, activation=activation)
    scorer = VLLMScorer(checkpoint, llm=llm, activation="vllm" if activation else "none")
    assert isinstance(scorer, StepScorer)
    reference = prm.load(str(checkpoint), device="cpu")
    expected = reference.score_steps(PROMPT, STEPS)
    got = scorer.score_steps(PROMPT, STEPS)
    assert len(got) == len(STEPS)
    assert got == pytest.approx(expected, abs=1e-5)
    batch = scorer.score_steps_batch([PROMPT, "What is 1 + 1?"], [STEPS, ["1 + 1 = 2", "The answer is 2"]])
    assert batch[0] == pytest.approx(expected, abs=1e-5) and len(batch[1]) == 2
    assert llm.calls[-1] == (2, "token_classify")  # one engine call for the whole batch
    assert scorer.score(PROMPT, "\n".join(STEPS)) == pytest.approx(min(expected), abs=1e-5)


def test_steps_beyond_max_length_are_refused(checkpoint):
    from prm.vllm_scorer import VLLMScorer

    scorer = VLLMScorer(checkpoint, llm=FakeLLM(checkpoint), max_length=8)
    with pytest.raises(ValueError, match="max_length"):
        scorer.score_steps(PROMPT, STEPS)


def test_without_vllm_the_error_names_the_extra(checkpoint, monkeypatch):
    import builtins

    from prm.vllm_scorer import VLLMScorer

    real_import = builtins.__import__

    def no_vllm(name, *args, **kwargs):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(ImportError, match=r"prm-toolkit\[vllm\]"):
        VLLMScorer(checkpoint)


def test_plus_minus_checkpoints_are_refused_clearly(tmp_path):
    from prm.vllm_scorer import VLLMScorer

    (tmp_path / "config.json").write_text('{"prm": {"head": "plus_minus", "separator": "\\n", "num_labels": 1}}')
    with pytest.raises(ValueError, match="token-classification"):
        VLLMScorer(tmp_path, llm=object())


def test_likelihood_feature_checkpoints_are_refused_clearly():
    # The shipped demo PRM adds its own step likelihoods to the step logit (reward_heads.safetensors),
    # which a vLLM pooling engine never computes: served, its scores would silently differ.
    from pathlib import Path

    from prm.vllm_scorer import VLLMScorer

    demo_reward = Path(prm.__file__).resolve().parent / "assets" / "demo" / "reward"
    with pytest.raises(ValueError, match="likelihood"):
        VLLMScorer(demo_reward, llm=object())


def test_sends_the_ids_prm_load_scores(checkpoint):
    from prm.vllm_scorer import VLLMScorer

    llm = FakeLLM(checkpoint)
    scorer = VLLMScorer(checkpoint, llm=llm)
    reference = prm.load(str(checkpoint), device="cpu")
    solutions = [STEPS, [" 2 + 3 = 5 ", "so\nthe answer is 5"], ["x"]]
    prompts = [PROMPT, PROMPT + "\n", PROMPT]
    got = scorer.score_steps_batch(prompts, solutions)
    assert llm.sent == [reference.encoder.encode(p, s).input_ids for p, s in zip(prompts, solutions)]
    expected = [reference.score_steps(p, s) for p, s in zip(prompts, solutions)]
    for a, b in zip(got, expected):
        assert a == pytest.approx(b, abs=1e-5)


def test_an_old_layout_checkpoint_is_refused(tmp_path):
    # A bare backbone beside reward_heads.safetensors: vLLM never loads that step head and would
    # pool the backbone's hidden states, whose second value was read as P(correct).
    from prm.vllm_scorer import VLLMScorer

    (tmp_path / "config.json").write_text('{"prm": {"head": "classification", "separator": "\\n", "num_labels": 2}}')
    (tmp_path / "reward_heads.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="reward_heads.safetensors"):
        VLLMScorer(tmp_path, llm=object())


def test_rows_that_are_not_class_scores_are_refused(checkpoint):
    # An engine that pools hidden states (or another head) returns rows of another width.
    from prm.vllm_scorer import VLLMScorer

    llm = FakeLLM(checkpoint)
    real_encode = llm.encode

    def hidden_states(prompts, **kwargs):
        outputs = real_encode(prompts, **kwargs)
        for output in outputs:
            output.outputs.data = torch.randn(output.outputs.data.shape[0], 16)
        return outputs

    llm.encode = hidden_states
    with pytest.raises(ValueError, match="16 values per token"):
        VLLMScorer(checkpoint, llm=llm).score_steps(PROMPT, STEPS)
