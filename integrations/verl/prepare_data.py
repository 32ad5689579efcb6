"""Write verl's RL parquet from GSM8K or MATH files read by the toolkit's loaders.

    python -m integrations.verl.prepare_data --task gsm8k --input gsm8k_train.jsonl --out train.parquet
    python -m integrations.verl.prepare_data --task math --input math_test.jsonl --out test.parquet --qwen

Each row has what verl's RLHFDataset and the "prm_dense" manager read: `prompt` (chat messages),
`data_source`, `reward_model` {"style": "rule", "ground_truth": reference}, `extra_info`
{"question", "index", "id"}. `--qwen` uses the Qwen2.5-Math chat instruction ("Please reason step
by step, and put your final answer within \\boxed{}."); the default is the toolkit's own system
prompt (one step a line, "The answer is N").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tasks.math.loaders import load_gsm8k, load_math
from tasks.math.prompts import chat_messages

QWEN_MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def rows(task: str, path: str, split: str = "train", qwen: bool = False) -> list[dict]:
    dataset = load_gsm8k(path, split=split) if task == "gsm8k" else load_math(path, split=split)
    out = []
    for index, record in enumerate(dataset):
        question = record["prompt"]
        if qwen:
            messages = [{"role": "system", "content": QWEN_MATH_INSTRUCTION}, {"role": "user", "content": question}]
        else:
            messages = chat_messages(question)
        out.append({
            "data_source": f"toolkit/{task}",
            "prompt": messages,
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": record["reference"]},
            "extra_info": {"question": question, "index": index, "id": record["id"], "split": split},
        })
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("gsm8k", "math"), required=True)
    parser.add_argument("--input", required=True, help="a local JSONL file (or a dataset id the loaders accept)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", required=True, help="the parquet file to write")
    parser.add_argument("--qwen", action="store_true", help="Qwen2.5-Math's boxed-answer instruction")
    args = parser.parse_args(argv)
    import pandas as pd

    table = pd.DataFrame(rows(args.task, args.input, args.split, args.qwen))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(args.out, index=False)
    print(f"wrote {len(table)} rows to {args.out}")


if __name__ == "__main__":
    main()
