"""The command line as a user meets it: config-file values read as the flags would read them,
strict list options, option ranges refused before any work, a saved config that is the last
run's, and plots that survive NaN accuracies."""

import json
import math
from dataclasses import asdict
from pathlib import Path

import pytest

import commands.cli as cli
from commands.cli import main, parse_command
from commands.common import save_resolved_config
from commands.options import int_list

DEMO = Path(__file__).resolve().parents[1] / "prm" / "assets" / "demo"
CANDIDATES = {"prompt": "What is 3 + 4?", "reference": "7",
              "completions": ["3 + 4 = 7\nThe answer is 7", "3 + 4 = 8\nThe answer is 8"]}


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def candidates(tmp_path):
    path = tmp_path / "candidates.jsonl"
    path.write_text(json.dumps(CANDIDATES) + "\n")
    return path


def test_a_config_value_that_the_flag_would_refuse_is_one_line_naming_file_and_option(tmp_path, candidates, capsys):
    # --k 2.5 is refused on the command line; from a file it kept every completion of a prompt.
    config = tmp_path / "export.json"
    config.write_text(json.dumps({"input": str(candidates), "output": str(tmp_path / "sft.jsonl"), "k": 2.5}))
    assert main(["export-sft", "--config", str(config)]) == 1
    err = _one_line(capsys)
    assert str(config) in err and "k" in err
    assert not (tmp_path / "sft.jsonl").exists()


def test_a_config_null_for_an_option_that_needs_a_value_is_refused(tmp_path):
    config = tmp_path / "export.json"
    config.write_text(json.dumps({"input": None, "output": "sft.jsonl"}))
    with pytest.raises(ValueError, match="input"):
        parse_command("export-sft", ["--config", str(config)])


def test_a_yaml_number_for_a_text_option_reads_as_the_flag_would(tmp_path):
    config = tmp_path / "rerank.yaml"
    config.write_text("input: x.jsonl\nseeds: 0\nverifier_neutral: 1\nn_subsets: '4'\nprm: null\n")
    parsed = parse_command("rerank", ["--config", str(config)])
    assert parsed == parse_command("rerank", ["--input", "x.jsonl", "--seeds", "0", "--verifier_neutral", "1",
                                              "--n_subsets", "4"])


def test_a_second_run_in_one_folder_saves_its_own_config(tmp_path):
    from commands.demo import DemoConfig

    # prm demo writes into a used folder without --overwrite: the saved config must be this run's.
    save_resolved_config("demo", DemoConfig(output_dir=str(tmp_path), seed=0))
    path = save_resolved_config("demo", DemoConfig(output_dir=str(tmp_path), seed=1))
    assert json.loads(path.read_text())["seed"] == 1
    assert parse_command("demo", ["--config", str(path)]) == DemoConfig(output_dir=str(tmp_path), seed=1)


@pytest.mark.parametrize("text", ["1,,4", "0,0,1", "1,-2", "1,x"])
def test_a_list_option_refuses_empty_repeated_and_negative_items(text):
    with pytest.raises(ValueError, match="--seeds"):
        int_list(text, "seeds")


def test_a_list_option_reads_spaces_and_a_blank_list():
    assert int_list(" 1, 4 ,16", "ns") == [1, 4, 16]
    assert int_list(" , ", "seeds") == []
    with pytest.raises(ValueError, match="--ns"):
        int_list("0,4", "ns", minimum=1)


def test_a_repeated_seed_is_refused_before_the_input_is_read(tmp_path, capsys):
    # A seed given twice counted twice in the mean and shrank the spread over seeds.
    assert main(["rerank", "--input", str(tmp_path / "nope.jsonl"), "--output_dir", str(tmp_path / "out"),
                 "--seeds", "0,0,1"]) == 1
    assert "--seeds" in _one_line(capsys) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["0", "-3"])
def test_score_refuses_a_batch_size_below_one_before_writing(tmp_path, candidates, capsys, value):
    target = tmp_path / "scores.jsonl"
    assert main(["score", "--model", str(DEMO / "reward"), "--input", str(candidates), "--output", str(target),
                 "--batch_size", value]) == 1
    assert "--batch_size" in _one_line(capsys) and not target.exists()


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_export_sft_refuses_a_min_score_that_is_not_a_number(tmp_path, candidates, capsys, value):
    # NaN compares false with every score: the export was silently empty.
    target = tmp_path / "sft.jsonl"
    assert main(["export-sft", "--input", str(candidates), "--output", str(target), "--min_score", value]) == 1
    assert "--min_score" in _one_line(capsys) and not target.exists()


@pytest.mark.parametrize("device", ["foo", "cuda:99", "cuda:x"])
def test_a_bad_or_absent_device_is_one_line(tmp_path, candidates, capsys, device):
    target = tmp_path / "scores.jsonl"
    assert main(["score", "--model", str(DEMO / "reward"), "--input", str(candidates), "--output", str(target),
                 "--device", device]) == 1
    assert "--device" in _one_line(capsys) and not target.exists()


def test_cuda_on_a_machine_without_it_is_one_line(tmp_path, candidates, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["export-sft", "--input", str(candidates), "--output", str(tmp_path / "sft.jsonl"),
                 "--scorer", str(DEMO / "reward"), "--device", "cuda"]) == 1
    assert "--device" in _one_line(capsys)


def test_ctrl_c_while_the_command_loads_is_one_line(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "score", (interrupted, "scores"))
    assert main(["score", "--help"]) == 130
    assert "interrupted" in _one_line(capsys)


def test_plots_draw_a_single_n_whose_accuracies_are_all_nan(tmp_path):
    from search.plots import plot_accuracy_vs_n, plot_accuracy_vs_tokens
    from search.rerank import CurvePoint

    nan = math.nan
    points = [CurvePoint("prm-min", 4, nan, nan, [nan], 12.0), CurvePoint("majority", 4, nan, nan, [nan], 12.0)]
    assert plot_accuracy_vs_n(points, tmp_path / "n.png").stat().st_size > 0
    assert plot_accuracy_vs_tokens(points, tmp_path / "t.png").stat().st_size > 0
    # A token count that is not a number places no point, as an unknown one.
    unknown = [CurvePoint(**{**asdict(point), "tokens_mean": nan}) for point in points]
    assert plot_accuracy_vs_tokens(unknown, tmp_path / "u.png") is None


def test_export_sft_refuses_an_outcome_score_from_the_verifier_before_writing(tmp_path, candidates, capsys):
    target = tmp_path / "sft.jsonl"
    assert main(["export-sft", "--input", str(candidates), "--output", str(target), "--aggregation", "outcome"]) == 1
    assert "--aggregation" in _one_line(capsys) and not target.exists()


@pytest.mark.parametrize("config_class, required", [
    ("commands.rerank:RerankConfig", {"input": "candidates.jsonl"}),
    ("commands.eval_search:EvalSearchConfig", {"policy": "policy", "problems": "synthetic:tiny"}),
])
@pytest.mark.parametrize("options, message", [({"ns": "0,4"}, "--ns takes integers >= 1"),
                                              ({"ns": "4,x"}, "--ns must be comma-separated"),
                                              ({"n_subsets": 0}, "--n_subsets must be >= 1")])
def test_curve_options_are_refused_before_any_model_runs(config_class, required, options, message):
    # --ns was read only after scoring or sampling: "--ns 0" failed minutes in, leaving files.
    import importlib

    module, _, name = config_class.partition(":")
    with pytest.raises(ValueError, match=message):
        getattr(importlib.import_module(module), name)(**required, **options)


@pytest.mark.parametrize("options, message", [({"tree_widths": "4,,x"}, "--tree_widths"),
                                              ({"tree_widths": "0,4"}, "--tree_widths takes integers >= 1"),
                                              ({"n_samples": 0}, "--n_samples must be >= 1")])
def test_demo_options_are_refused_before_the_run_starts(options, message):
    # They were read only after the models loaded ("invalid literal for int()", "k must be >= 1").
    from commands.demo import DemoConfig

    with pytest.raises(ValueError, match=message):
        DemoConfig(**options)
