"""`prm export-sft`: the rejection-sampling export from the command line; its output trains with
`prm sft`."""

import json

from commands.cli import main


def _candidates(path):
    rows = [{"prompt": "Tom has 2 apples and buys 3 more. How many apples does he have?",
             "completions": ["2 + 3 = 6\nThe answer is 6", "He buys 3: 2 + 3 = 5\nThe answer is 5",
                             "2 + 3 = 5\nThe answer is 5"], "reference": "5"},
            {"prompt": "Tom has 4 apples and buys 1 more. How many apples does he have?",
             "completions": ["4 + 1 = 5\nThe answer is 5"], "reference": "5"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_export_sft_keeps_the_top_correct_completions_and_trains_with_sft(tmp_path, capsys):
    source = _candidates(tmp_path / "candidates.jsonl")
    output = tmp_path / "sft.jsonl"
    assert main(["export-sft", "--input", source, "--scorer", "verifier", "--k", "1", "--require_correct",
                 "--output", str(output)]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["completion"] for row in rows] == ["He buys 3: 2 + 3 = 5\nThe answer is 5", "4 + 1 = 5\nThe answer is 5"]
    assert "prm export-sft: wrote" in capsys.readouterr().out
    assert main(["export-sft", "--input", source, "--scorer", "verifier", "--output", str(output)]) != 0  # no overwrite
    assert main(["sft", "--data", str(output), "--model", "tiny:tiny", "--vocab_size", "300", "--max_steps", "2",
                 "--batch_size", "2", "--n_eval", "0", "--output_dir", str(tmp_path / "policy")]) == 0
    assert (tmp_path / "policy" / "model.safetensors").exists()


def test_export_sft_needs_references_for_require_correct(tmp_path):
    source = tmp_path / "c.jsonl"
    source.write_text(json.dumps({"prompt": "q", "completions": ["The answer is 1"]}) + "\n")
    assert main(["export-sft", "--input", str(source), "--scorer", "verifier", "--require_correct",
                 "--output", str(tmp_path / "o.jsonl")]) == 1
    assert not (tmp_path / "o.jsonl").exists()


def test_export_sft_keeps_k_per_prompt_across_lines_and_counts_distinct_prompts(tmp_path, capsys):
    # Each line was its own pool: the same prompt on three lines (three sampling passes
    # concatenated) gave the same completion three times with --k 1, and the summary counted
    # lines as prompts. A whitespace-only difference kept the same steps twice.
    prompt = "Tom has 2 apples and buys 3 more. How many apples does he have?"
    rows = [{"prompt": prompt, "completions": ["2 + 3 = 5\nThe answer is 5"], "reference": "5"}] * 3
    rows.append({"prompt": "Tom has 4 apples and buys 1 more. How many apples does he have?",
                 "completions": ["4 + 1 = 5\nThe answer is 5\n", "4 + 1 = 5\n\nThe answer is 5"], "reference": "5"})
    source = tmp_path / "c.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "sft.jsonl"
    assert main(["export-sft", "--input", str(source), "--scorer", "verifier", "--k", "3", "--require_correct",
                 "--output", str(output)]) == 0
    kept = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["prompt"] for row in kept] == [prompt, rows[-1]["prompt"]]
    assert "kept 2 completions of 5 for 2 of 2 prompts (4 lines)" in capsys.readouterr().out


def test_export_sft_refuses_one_prompt_with_two_references(tmp_path):
    rows = [{"prompt": "q", "completions": ["The answer is 1"], "reference": "1"},
            {"prompt": "q", "completions": ["The answer is 2"], "reference": "2"}]
    source = tmp_path / "c.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["export-sft", "--input", str(source), "--scorer", "verifier", "--output", str(tmp_path / "o.jsonl")]) == 1
    assert not (tmp_path / "o.jsonl").exists()
