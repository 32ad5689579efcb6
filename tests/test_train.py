"""The training recipe: learns a separable toy, resumes to the same result, accumulates
gradients exactly, saves what it trained, and rejects bad data with file/line/field."""

import json
import random

import pytest
import torch
from safetensors.torch import load_file

from prm.modeling import RewardModel
from prm.train import TrainConfig, encode_records, evaluate, train
from tasks.math.types import RecordError

WORDS = ["add", "sum", "take", "half", "two", "three", "four", "five"]


def toy_records(n: int, seed: int, solutions_per_prompt: int = 1) -> list[dict]:
    """Each step ends in "ok" (correct) or "no" (wrong): separable by the token before "\\n".
    Consecutive records share a prompt in runs of `solutions_per_prompt`."""
    rng = random.Random(seed)
    records = []
    for index in range(n):
        labels = [rng.random() < 0.5 for _ in range(rng.randint(1, 4))]
        steps = [" ".join(rng.choices(WORDS, k=rng.randint(1, 4)) + ["ok" if label else "no"]) for label in labels]
        records.append({"prompt": f"Problem {index // solutions_per_prompt}: check", "completions": steps,
                        "labels": labels})
    return records


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return write_jsonl(root / "train.jsonl", toy_records(160, 0)), write_jsonl(root / "eval.jsonl", toy_records(40, 1))


def _config(tmp_path, data, **overrides) -> TrainConfig:
    train_path, eval_path = data
    values = dict(data=train_path, eval_data=eval_path, model="tiny:tiny", vocab_size=300, output_dir=str(tmp_path / "run"),
                  batch_size=8, max_steps=12, lr=3e-3, warmup_steps=2, eval_every=0, log_every=1, progress=False, seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def _log(run_dir, key):
    return [row[key] for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if key in row]


def test_tiny_prm_learns_separable_toy(tmp_path, toy_data):
    run_dir = train(_config(tmp_path, toy_data, max_steps=60, lr=1e-2))
    losses = _log(run_dir, "loss")
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:5]) / 5
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert results["step_auc"] >= 0.9
    # The saved model is the trained one: reloading reproduces the held-out metrics exactly.
    from transformers import AutoTokenizer

    model, tokenizer = RewardModel.from_pretrained(run_dir), AutoTokenizer.from_pretrained(run_dir)
    features, _ = encode_records(tokenizer, toy_records(40, 1), model.settings, 512)
    assert evaluate(model, features, "prm", tokenizer.pad_token_id) == {k: v for k, v in results.items() if k != "step"}


def test_resume_continues_to_the_same_result(tmp_path, toy_data):
    straight = train(_config(tmp_path / "a", toy_data, max_steps=8, save_every=4, lora_r=4, objective="joint"))
    resumed = train(_config(tmp_path / "b", toy_data, max_steps=8, lora_r=4, objective="joint",
                            resume=str(straight / "checkpoints" / "step-4")))
    assert _log(resumed, "loss") == pytest.approx(_log(straight, "loss")[4:], rel=1e-5)
    for name in ("model.safetensors", "outcome_head.safetensors"):
        first, second = load_file(straight / name), load_file(resumed / name)
        assert first.keys() == second.keys()
        for key in first:
            torch.testing.assert_close(first[key], second[key], rtol=1e-5, atol=1e-6)
    # What the resumed run saves repeats the run anywhere: no --resume, which would look for
    # checkpoints in the repeat's own folder.
    assert json.loads((resumed / "train_config.json").read_text())["resume"] is None
    made = (resumed / "README.md").read_text().split("## How it was made", 1)[1]
    assert "--resume" not in made and "--overwrite_output_dir" in made


@pytest.mark.parametrize("group_by_length", [False, True])
def test_gradient_accumulation_matches_a_larger_batch(tmp_path, toy_data, group_by_length):
    # With --group_by_length the sampler sorted chunks of 16 micro-batches, whatever --grad_accum:
    # the accumulated steps saw other examples than the larger batches.
    big = train(_config(tmp_path / "big", toy_data, batch_size=8, max_steps=6, group_by_length=group_by_length))
    accumulated = train(_config(tmp_path / "acc", toy_data, batch_size=4, grad_accum=2, max_steps=6,
                                group_by_length=group_by_length))
    assert _log(accumulated, "loss") == pytest.approx(_log(big, "loss"), rel=1e-4)


@pytest.mark.parametrize("objective", ["orm", "pairwise"])
def test_outcome_objectives_train(tmp_path, objective):
    rng = random.Random(0)
    if objective == "orm":
        records = [{"prompt": "Q", "completion": f"step {rng.choice(WORDS)} {rng.choice(WORDS)}\nend {label}",
                    "label": label == "ok"} for label in rng.choices(["ok", "no"], k=64)]
    else:
        records = [{"prompt": "Q", "chosen": f"{rng.choice(WORDS)} ok", "rejected": f"{rng.choice(WORDS)} no", "margin": 0.5}
                   for _ in range(64)]
    data = write_jsonl(tmp_path / "data.jsonl", records[:48])
    heldout = write_jsonl(tmp_path / "heldout.jsonl", records[48:])
    run_dir = train(_config(tmp_path, (data, heldout), objective=objective, max_steps=30, lr=1e-2))
    losses = _log(run_dir, "loss")
    assert sum(losses[-5:]) < sum(losses[:5])
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert results["outcome_auc" if objective == "orm" else "pair_accuracy"] > 0.8


def test_bad_record_names_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "Q", "completions": ["a"], "labels": [True]}) + "\n"
                    + json.dumps({"prompt": "Q", "completions": ["a", "b"], "labels": [True]}) + "\n")
    with pytest.raises(RecordError, match=r"bad\.jsonl, line 2, field 'labels'"):
        train(_config(tmp_path, (str(path), str(path))))


def test_truncation_warns_with_count(tmp_path, toy_data):
    with pytest.warns(UserWarning, match=r"\d+ step labels .* beyond --max_length 12"):
        train(_config(tmp_path, toy_data, max_steps=1, max_length=12))


@pytest.mark.parametrize("which", ["training", "held-out"])
def test_no_label_within_max_length_is_refused_before_training(tmp_path, toy_data, which):
    # Every label of one side lies beyond --max_length: refused in one line before any step is
    # taken, not a loss of 0.0 (training) or a TypeError after training with the model unsaved.
    long_records = [{**record, "prompt": "a long question " * 40} for record in toy_records(8, 2)]
    long_path = write_jsonl(tmp_path / "long.jsonl", long_records)
    data = (long_path, toy_data[1]) if which == "training" else (toy_data[0], long_path)
    config = _config(tmp_path, data, max_steps=2, max_length=40)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=rf"no step label of the {which} data fits --max_length 40"):
        train(config)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("split", [False, True])
def test_fewer_training_records_than_a_batch_is_one_line_counting_records_and_the_held_out_share(tmp_path, split):
    # It said "14 examples are fewer than one global batch" for a file of 16 records: neither
    # the records nor the 2 that --eval_fraction took were named, nor the option to change.
    train_path = write_jsonl(tmp_path / "train.jsonl", toy_records(16, 0))
    data = (train_path, None) if split else (train_path, write_jsonl(tmp_path / "eval.jsonl", toy_records(4, 1)))
    config = _config(tmp_path, data, batch_size=16 if split else 32)
    message = (r"14 training records \(2 of the 16 read are held out by --eval_fraction 0.1\) are fewer than one batch "
               r"\(--batch_size 16 x 1 process\): lower --batch_size" if split else
               r"16 training records are fewer than one batch \(--batch_size 32 x 1 process\): lower --batch_size")
    with pytest.raises(ValueError, match=message):
        train(config)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_fewer_training_records_than_one_accumulated_step_is_one_line_naming_grad_accum(tmp_path):
    # The sampler drops an epoch's incomplete last optimizer step; with fewer records than one
    # step there would be nothing to train on.
    data = (write_jsonl(tmp_path / "train.jsonl", toy_records(20, 0)), write_jsonl(tmp_path / "eval.jsonl", toy_records(4, 1)))
    with pytest.raises(ValueError, match=r"20 training records are fewer than one batch \(--batch_size 8 x 1 process "
                                         r"x --grad_accum 4\): lower --batch_size or --grad_accum or add records"):
        train(_config(tmp_path, data, batch_size=8, grad_accum=4))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_held_out_records_that_are_training_records_are_left_out_and_counted(tmp_path, capsys):
    # --eval_data X with --data X reported "held-out" metrics on the training data, without a word.
    train_records, fresh = toy_records(40, 0), toy_records(4, 7)
    train_path = write_jsonl(tmp_path / "train.jsonl", train_records)
    eval_path = write_jsonl(tmp_path / "eval.jsonl", train_records[:4] + fresh)
    run_dir = train(_config(tmp_path, (train_path, eval_path), max_steps=1))
    assert "4 of 8 held-out records are also training records; left out of evaluation (4 kept)" in capsys.readouterr().out
    assert "- held-out records: 4" in (run_dir / "README.md").read_text()  # metrics of the 4 held out only
    assert (run_dir / "eval_results.json").is_file()


def test_held_out_copies_of_training_records_are_left_out_of_the_split_and_counted(tmp_path, capsys):
    # A file that holds a record twice (two files concatenated, say) had copies on both sides of
    # the --eval_fraction split: "held-out" metrics partly on training records, without a word.
    # The training records stay exactly those of the plain split (the demo's reward model is
    # trained this way), so only the evaluation changes.
    from prm.train import _split

    records = toy_records(40, 0)
    data = records + records[:20]
    train_path = write_jsonl(tmp_path / "train.jsonl", data)
    with pytest.warns(UserWarning, match=r"20 of the 60 records repeat an earlier record's prompt and steps"):
        run_dir = train(_config(tmp_path, (train_path, None), max_steps=1, eval_fraction=0.25))
    train_records, split_off = _split(data, 0.25, 0)
    keys = {json.dumps([r["prompt"], r["completions"]]) for r in train_records}
    fresh = [r for r in split_off if json.dumps([r["prompt"], r["completions"]]) not in keys]
    assert 0 < len(fresh) < len(split_off) == 15
    assert (f"{15 - len(fresh)} of 15 held-out records are also training records; left out of evaluation "
            f"({len(fresh)} kept)") in capsys.readouterr().out
    card = (run_dir / "README.md").read_text()
    assert f"- held-out records: {len(fresh)}\n" in card and "- training records: 45\n" in card


def test_records_that_label_the_same_steps_differently_are_counted(tmp_path):
    records = toy_records(40, 0)
    flipped = {**records[0], "labels": [not label for label in records[0]["labels"]]}
    train_path = write_jsonl(tmp_path / "train.jsonl", records + [flipped])
    with pytest.warns(UserWarning, match=r"1 of them gives different labels"):
        train(_config(tmp_path, (train_path, toy_data_eval(tmp_path)), max_steps=1))


def toy_data_eval(tmp_path):
    return write_jsonl(tmp_path / "eval.jsonl", toy_records(8, 5))


def test_config_is_the_command_line():
    from transformers import HfArgumentParser

    (config,) = HfArgumentParser(TrainConfig).parse_args_into_dataclasses(
        args=["--objective", "joint", "--lora_r", "4", "--mixed_precision", "bf16", "--resume", "latest"])
    assert (config.objective, config.lora_r, config.mixed_precision, config.resume) == ("joint", 4, "bf16", "latest")
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="dpo")


def test_right_padded_causal_batches_need_no_attention_mask():
    from prm.collate import collate_features
    from prm.modeling import RewardSettings
    from generation.tiny import build_tiny_causal_lm, train_tokenizer
    from prm.train import is_causal_decoder

    records = toy_records(6, 2)
    tokenizer = train_tokenizer([" ".join(r["completions"]) for r in records] * 3, vocab_size=280)
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer), RewardSettings()).eval()
    assert is_causal_decoder(model)
    features, _ = encode_records(tokenizer, records, model.settings, 512)
    batch = collate_features(features, tokenizer.pad_token_id)
    assert (batch["attention_mask"] == 0).any()
    with torch.no_grad():
        masked = model(batch["input_ids"], attention_mask=batch["attention_mask"]).step_logits
        unmasked = model(batch["input_ids"]).step_logits
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(unmasked[real], masked[real], rtol=1e-5, atol=1e-6)


def test_save_adapter_writes_the_lora_adapter_beside_the_merged_model(tmp_path, toy_data):
    out = train(_config(tmp_path / "lora", toy_data, max_steps=2, lora_r=4, save_adapter=True))
    assert (out / "model.safetensors").exists() and (out / "adapter" / "adapter_config.json").exists()
    with pytest.raises(ValueError, match="--save_adapter and --adapter_only need --lora_r"):
        TrainConfig(save_adapter=True)


def test_adapter_only_saves_no_backbone_and_reloads_with_the_same_scores(tmp_path, toy_data):
    from generation.tiny import build_tiny_causal_lm, train_tokenizer

    import prm

    texts = [json.dumps(record) for record in toy_records(40, 0)]
    tokenizer = train_tokenizer(texts, vocab_size=300)
    base = tmp_path / "base"
    build_tiny_causal_lm(tokenizer, seed=0).save_pretrained(base)
    tokenizer.save_pretrained(base)
    out = train(_config(tmp_path / "adapter", toy_data, model=str(base), max_steps=3, lora_r=4, adapter_only=True,
                        likelihood_features=True, lr=1e-2))
    assert not list(out.glob("model*.safetensors"))
    assert (out / "adapter" / "adapter_model.safetensors").exists() and (out / "reward_heads.safetensors").exists()
    merged = train(_config(tmp_path / "merged", toy_data, model=str(base), max_steps=3, lora_r=4,
                           likelihood_features=True, lr=1e-2))
    steps = ["3 + 4 = 7", "7 - 2 = 6", "The answer is 6"]
    assert prm.load(str(out)).score_steps("Question: 3 + 4 - 2?", steps) == pytest.approx(
        prm.load(str(merged)).score_steps("Question: 3 + 4 - 2?", steps), abs=1e-5)
    with pytest.raises(ValueError, match="tiny:<size>"):
        TrainConfig(lora_r=4, adapter_only=True)


def test_a_used_output_folder_is_refused_unless_overwritten(tmp_path, toy_data):
    first = train(_config(tmp_path, toy_data, max_steps=4, save_every=2))
    assert (first / "checkpoints" / "step-2").is_dir()
    with pytest.raises(ValueError, match="not empty; pass --overwrite_output_dir"):
        train(_config(tmp_path, toy_data, max_steps=6))
    again = train(_config(tmp_path, toy_data, max_steps=6, overwrite_output_dir=True))
    # The old run's checkpoints are gone, so `--resume latest` can never pick one of them up.
    assert not (again / "checkpoints").exists()
    assert _log(again, "loss") and len(_log(again, "loss")) == 6


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path, toy_data):
    run = train(_config(tmp_path, toy_data, max_steps=4, save_every=2))
    with pytest.raises(ValueError, match="different run.*max_steps: checkpoint 4, now 8"):
        train(_config(tmp_path, toy_data, max_steps=8, resume="latest"))
    other_data = write_jsonl(tmp_path / "other.jsonl", toy_records(160, 5))
    with pytest.raises(ValueError, match="data_sha256"):
        train(_config(tmp_path, (other_data, toy_data[1]), max_steps=4, resume="latest"))
    resumed = train(_config(tmp_path, toy_data, max_steps=4, resume="latest"))   # same run: continues
    assert resumed == run


def test_a_resume_in_the_same_folder_logs_each_step_once(tmp_path, toy_data):
    # The steps after the checkpoint are trained again; their earlier log lines must go.
    run = train(_config(tmp_path, toy_data, max_steps=6, save_every=3))
    train(_config(tmp_path, toy_data, max_steps=6, save_every=3, resume=str(run / "checkpoints" / "step-3")))
    steps = [row["step"] for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_truncated_first_error_is_left_out_of_processbench_and_warned(tmp_path):
    # Record 0's wrong last step is cut by max_length: its kept labels say "all correct", which
    # ProcessBench must not count as a correct solution.
    records = [{"prompt": "Problem 1: check", "completions": ["add two ok", "sum three ok", "take half no"],
                "labels": [True, True, False]}]
    train_path = write_jsonl(tmp_path / "train.jsonl", toy_records(40, 0))
    eval_path = write_jsonl(tmp_path / "eval.jsonl", records)
    config = _config(tmp_path, (train_path, eval_path), max_steps=1)
    model_dir = train(config)
    from transformers import AutoTokenizer

    model, tokenizer = RewardModel.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)
    full, _ = encode_records(tokenizer, records, model.settings, 512)
    cut, dropped = encode_records(tokenizer, records, model.settings, len(full[0]["input_ids"]) - 2)
    assert dropped == 1 and cut[0]["labels"] == [1.0, 1.0]
    metrics = evaluate(model, cut, "prm", tokenizer.pad_token_id)
    assert metrics["processbench_correct_accuracy"] != metrics["processbench_correct_accuracy"]  # nan: none judged
    with pytest.warns(UserWarning, match=r"held-out .* beyond --max_length"):
        train(_config(tmp_path / "again", (train_path, eval_path), max_steps=1, max_length=len(full[0]["input_ids"]) - 2))


class _WritesMarker:
    """Unpickling this creates the file `marker` (a harmless stand-in for code a crafted pickle runs)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_resume_never_unpickles_a_checkpoint_file(tmp_path, toy_data):
    # Checkpoints used to hold the LR scheduler as custom_checkpoint_0.pkl, which accelerate's
    # load_state reads with weights_only=False: a crafted one ran code on --resume. The schedule
    # is now rebuilt from the step; an old checkpoint that still holds the file resumes without
    # reading it, to the same result.
    straight = train(_config(tmp_path / "a", toy_data, max_steps=6, save_every=3))
    checkpoint = straight / "checkpoints" / "step-3"
    assert not list(checkpoint.glob("custom_checkpoint_*.pkl"))  # new checkpoints hold no scheduler pickle
    marker = tmp_path / "unpickled"
    torch.save(_WritesMarker(marker), checkpoint / "custom_checkpoint_0.pkl")
    resumed = train(_config(tmp_path / "b", toy_data, max_steps=6, resume=str(checkpoint)))
    assert not marker.exists()
    assert _log(resumed, "lr") == _log(straight, "lr")[3:]
    assert _log(resumed, "loss") == pytest.approx(_log(straight, "loss")[3:], rel=1e-5)
    first, second = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=1e-5, atol=1e-6)


def test_resume_needs_the_checkpoint_weights_in_safetensors(tmp_path, toy_data):
    run = train(_config(tmp_path, toy_data, max_steps=4, save_every=2))
    checkpoint = run / "checkpoints" / "step-2"
    torch.save(load_file(checkpoint / "model.safetensors"), checkpoint / "pytorch_model.bin")
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"step-2.*only safetensors weights are loaded"):
        train(_config(tmp_path, toy_data, max_steps=4, resume=str(checkpoint)))


def test_train_refuses_a_backbone_folder_with_pytorch_model_bin_only(tmp_path, toy_data):
    from generation.tiny import build_tiny_causal_lm, train_tokenizer

    tokenizer = train_tokenizer([json.dumps(record) for record in toy_records(40, 0)], vocab_size=300)
    base = tmp_path / "bin_base"
    backbone = build_tiny_causal_lm(tokenizer, seed=0)
    backbone.save_pretrained(base)
    tokenizer.save_pretrained(base)
    (base / "model.safetensors").unlink()
    torch.save(backbone.state_dict(), base / "pytorch_model.bin")  # transformers 5 writes safetensors only
    with pytest.raises(ValueError, match=r"bin_base.*only safetensors weights are loaded") as error:
        train(_config(tmp_path / "run", toy_data, model=str(base), max_steps=1))
    assert "\n" not in str(error.value)


def test_a_saved_config_repeats_the_run_without_its_permission_to_replace_one(tmp_path, toy_data, capsys):
    # train_config.json kept "overwrite_output_dir": true, so `prm train --config` on it wiped and
    # retrained the run folder without a word.
    from commands.cli import main

    run_dir = train(_config(tmp_path, toy_data, max_steps=1, overwrite_output_dir=True))
    saved = json.loads((run_dir / "train_config.json").read_text())
    assert saved["overwrite_output_dir"] is False and saved["resume"] is None
    before = (run_dir / "model.safetensors").read_bytes()
    assert main(["train", "--config", str(run_dir / "train_config.json")]) != 0
    assert (run_dir / "model.safetensors").read_bytes() == before


def test_the_logged_loss_is_the_weighted_loss_that_is_optimised(tmp_path, toy_data):
    # It was the plain sum of the terms: with --lm_coef 0.5 the LM term counted twice as much.
    run_dir = train(_config(tmp_path, toy_data, max_steps=2, objective="joint", lm_coef=0.5, outcome_weight=2.0))
    row = next(json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
               if '"loss_lm"' in line)
    assert row["loss"] == pytest.approx(row["loss_step"] + 2.0 * row["loss_outcome"] + 0.5 * row["loss_lm"], rel=1e-4)


def test_overwriting_a_run_removes_the_earlier_model_files(tmp_path, toy_data):
    # --overwrite_output_dir removed checkpoints and logs only: an earlier run's adapter/ (or its
    # weight shards) stayed beside the new model, to be loaded or uploaded as this run's.
    run_dir = train(_config(tmp_path, toy_data, max_steps=1))
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"stale")
    (run_dir / "model-00002-of-00002.safetensors").write_bytes(b"stale")
    (run_dir / "notes.txt").write_text("the user's own file")
    train(_config(tmp_path, toy_data, max_steps=1, overwrite_output_dir=True))
    assert not (run_dir / "adapter").exists() and not (run_dir / "model-00002-of-00002.safetensors").exists()
    assert (run_dir / "model.safetensors").is_file() and (run_dir / "notes.txt").read_text() == "the user's own file"


def test_held_out_records_of_training_prompts_are_counted_and_a_prompt_split_holds_out_whole_problems(tmp_path, capsys):
    # Several solutions per prompt: a record split put solutions of one problem on both sides
    # without a word (held-out metrics then measure new solutions to seen problems).
    from prm.train import _split

    records = toy_records(40, 0, solutions_per_prompt=4)
    train_path = write_jsonl(tmp_path / "train.jsonl", records)
    train(_config(tmp_path, (train_path, None), max_steps=1, eval_fraction=0.25))
    assert "held-out records share their prompt with training records" in capsys.readouterr().out
    train(_config(tmp_path, (train_path, None), max_steps=1, eval_fraction=0.25, split_by="prompt",
                  overwrite_output_dir=True))
    assert "share their prompt" not in capsys.readouterr().out
    kept, held_out = _split(records, 0.25, 0, by="prompt")
    assert {r["prompt"] for r in kept}.isdisjoint({r["prompt"] for r in held_out}) and len(held_out) == 12
    assert _split(records, 0.25, 0) == _split(records, 0.25, 0, by="record")  # the default is unchanged
    with pytest.raises(ValueError, match="split_by"):
        TrainConfig(split_by="problem")


def test_an_orm_trains_on_the_ids_it_scores_for_a_step_record_with_a_multi_line_step(tmp_path):
    # The outcome view of a step record joined its steps with the separator and the encoder split
    # the text again there: a step of two lines became two steps in training, while a list of
    # steps is scored with the step's inner separator read as a space (`prm.encoding.step_text`).
    from generation.tiny import build_tiny_causal_lm, train_tokenizer
    from prm.modeling import RewardSettings
    from prm.scoring import RewardScorer
    from prm.train import load_records

    prompt, steps = "What is 3 + 4 - 2?", ["3 + 4 = 7\n7 - 2 = 5", "The answer is 5"]
    path = write_jsonl(tmp_path / "steps.jsonl", [{"prompt": prompt, "completions": steps, "labels": [True, False]}])
    tokenizer = train_tokenizer([prompt, *steps] * 3, vocab_size=280)
    model = RewardModel.from_backbone(build_tiny_causal_lm(tokenizer), RewardSettings(objective="orm"))
    (feature,), _ = encode_records(tokenizer, load_records(path, "orm"), model.settings, 512)
    scored = RewardScorer(model, tokenizer).encoder.encode(prompt, steps)
    assert feature["input_ids"] == scored.input_ids
    assert feature["outcome_position"] == scored.step_ends[-1] and feature["outcome_label"] == 0.0
