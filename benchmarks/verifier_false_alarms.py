"""How often `verifiers.check_step` says False on a true step (issue #15), and how often it
catches a false one. Not timed: `benchmarks/verifiers.py --only steps` measures speed.

1. GSM8K train reference solutions (`--gsm8k`, loaded with `tasks.math.loaders.load_gsm8k`):
   every step line is checked; the lines called False are compared with the hand-labelled
   `benchmarks/data/gsm8k_false_steps.jsonl`, where each line ever flagged is marked
   `real_error` (a real mistake of the data set: `So it cost 192*100=$1920`) or `false_alarm`
   (true, misread: `100 stickers / 3 friends = 33 stickers for each friend, with 1 remaining`),
   with a reason. A flagged line missing from that file is listed as unlabelled: read it and
   add it.
2. Hand-written prose arithmetic (`benchmarks/make_prose_arithmetic.py` writes both files):
   `prose_arithmetic_true.jsonl` (every step true: the False rate should be 0, the True share
   is what the checker confirms) and `prose_arithmetic_false.jsonl` (every step false: the
   share called False is the recall; none may be called True).

    python benchmarks/verifier_false_alarms.py --gsm8k ../shared/data/gsm8k/train.jsonl

Writes `benchmarks/results/verifier_false_alarms.json` (or `--json PATH`). With `--strict`
the exit status is 1 when a false alarm remains, a flagged line is unlabelled, or a corpus
step gets the wrong verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tables import print_table  # noqa: E402
from tasks.math.loaders import iter_jsonl  # noqa: E402

DATA = REPO / "benchmarks" / "data"
DEFAULT_GSM8K = Path("../shared/data/gsm8k/train.jsonl")
DEFAULT_LABELS = DATA / "gsm8k_false_steps.jsonl"
DEFAULT_TRUE = DATA / "prose_arithmetic_true.jsonl"
DEFAULT_FALSE = DATA / "prose_arithmetic_false.jsonl"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "verifier_false_alarms.json"
VERDICTS = ("real_error", "false_alarm")


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    rows = []
    for number, row in iter_jsonl(path):
        missing = [key for key in required if key not in row]
        if missing:
            raise SystemExit(f"{path}, line {number}: field(s) {missing} missing")
        rows.append(row)
    return rows


def read_labels(path: Path) -> dict[str, dict]:
    labels = {}
    for row in read_jsonl(path, ("text", "verdict", "reason")):
        if row["verdict"] not in VERDICTS:
            raise SystemExit(f"{path}: verdict {row['verdict']!r} is not one of {VERDICTS}")
        if row["text"].strip() in labels:
            raise SystemExit(f"{path}: {row['text']!r} is labelled twice")
        labels[row["text"].strip()] = row
    return labels


def gsm8k_lines(path: Path) -> list[str]:
    from tasks.math.loaders import load_gsm8k

    data = load_gsm8k(path, with_answer_step=False)  # strict: a malformed record raises
    return [step for row in data for step in row["completions"]]


def measure_gsm8k(path: Path, labels: dict[str, dict]) -> dict | None:
    if not path.is_file():
        print(f"\n## GSM8K: skipped, {path} not found (pass --gsm8k PATH to the GSM8K train.jsonl)")
        return None
    from verifiers import check_step

    lines = gsm8k_lines(path)
    verdicts = [check_step(line) for line in lines]
    flagged = sorted({line.strip() for line, verdict in zip(lines, verdicts) if verdict is False})
    by_verdict = Counter(labels[text]["verdict"] if text in labels else "unlabelled" for text in flagged)
    flagged_set = set(flagged)
    no_longer = Counter(row["verdict"] for text, row in labels.items() if text not in flagged_set)
    labelled = Counter(row["verdict"] for row in labels.values())
    result = {
        "lines": len(lines),
        "true": sum(v is True for v in verdicts),
        "false": sum(v is False for v in verdicts),
        "none": sum(v is None for v in verdicts),
        "flagged_distinct": len(flagged),
        "flagged_real_errors": by_verdict["real_error"],
        "flagged_false_alarms": by_verdict["false_alarm"],
        "flagged_unlabelled": by_verdict["unlabelled"],
        "labelled": dict(labelled),
        "labelled_no_longer_flagged": dict(no_longer),
        "false_alarms_flagged": [text for text in flagged if labels.get(text, {}).get("verdict") == "false_alarm"],
        "unlabelled_flagged": [text for text in flagged if text not in labels],
        "real_errors_missed": [text for text, row in labels.items()
                               if row["verdict"] == "real_error" and text not in flagged_set],
    }
    precision = by_verdict["real_error"] / len(flagged) if flagged else 1.0
    result["precision_of_false"] = precision
    print_table(
        f"check_step False on {len(lines):,} GSM8K train step lines, against {len(labels)} hand-labelled lines",
        ["steps T/F/None", "flagged", "real errors", "false alarms", "unlabelled", "precision of False",
         "labelled: real errors / false alarms", "labelled, no longer flagged: real / false alarm"],
        [[f"{result['true']}/{result['false']}/{result['none']}", len(flagged), by_verdict["real_error"],
          by_verdict["false_alarm"], by_verdict["unlabelled"], f"{100 * precision:.1f} %",
          f"{labelled['real_error']} / {labelled['false_alarm']}",
          f"{no_longer['real_error']} / {no_longer['false_alarm']}"]],
    )
    for title, key in (("False alarms still flagged", "false_alarms_flagged"),
                       ("Flagged lines not in the labelled file (label them)", "unlabelled_flagged"),
                       ("Real errors no longer flagged (None: recall lost, never a wrong verdict)",
                        "real_errors_missed")):
        if result[key]:
            print(f"\n{title}:")
            for text in result[key]:
                print(f"  {text}")
    return result


def measure_corpus(path: Path, expected: bool) -> dict:
    from verifiers import check_step

    rows = read_jsonl(path, ("text", "kind"))
    counts: Counter = Counter()
    by_kind: dict[str, Counter] = {}
    wrong = []
    unchecked = []
    for row in rows:
        verdict = check_step(row["text"])
        key = {True: "true", False: "false", None: "none"}[verdict]
        counts[key] += 1
        by_kind.setdefault(row["kind"], Counter())[key] += 1
        if verdict is (not expected):
            wrong.append(row["text"])
        elif verdict is None:
            unchecked.append(row["text"])
    n = len(rows)
    return {
        "path": str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path),
        "steps": n,
        "true": counts["true"],
        "false": counts["false"],
        "none": counts["none"],
        "right_share": (counts["true" if expected else "false"] / n) if n else 0.0,
        "wrong_share": (counts["false" if expected else "true"] / n) if n else 0.0,
        "by_kind": {kind: dict(c) for kind, c in sorted(by_kind.items())},
        "wrong": wrong,
        "unchecked": unchecked,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gsm8k", type=Path, default=DEFAULT_GSM8K, help="GSM8K train.jsonl")
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="hand-labelled flagged GSM8K lines")
    parser.add_argument("--true-corpus", type=Path, default=DEFAULT_TRUE, help="JSONL of true prose steps")
    parser.add_argument("--false-corpus", type=Path, default=DEFAULT_FALSE, help="JSONL of false prose steps")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a false alarm or a wrong corpus verdict")
    args = parser.parse_args(argv)

    report: dict = {"python": sys.version.split()[0]}
    labels = read_labels(args.labels)
    report["gsm8k"] = measure_gsm8k(args.gsm8k, labels)
    true_corpus = measure_corpus(args.true_corpus, expected=True)
    false_corpus = measure_corpus(args.false_corpus, expected=False)
    report["prose_true"], report["prose_false"] = true_corpus, false_corpus
    print_table(
        "check_step on hand-written prose arithmetic",
        ["corpus", "steps", "True", "False", "None", "right verdict", "wrong verdict"],
        [["true steps", true_corpus["steps"], true_corpus["true"], true_corpus["false"], true_corpus["none"],
          f"{100 * true_corpus['right_share']:.1f} % confirmed True",
          f"{100 * true_corpus['wrong_share']:.1f} % called False"],
         ["false steps", false_corpus["steps"], false_corpus["true"], false_corpus["false"], false_corpus["none"],
          f"{100 * false_corpus['right_share']:.1f} % caught False (recall)",
          f"{100 * false_corpus['wrong_share']:.1f} % called True"]],
    )
    for title, rows in (("True prose steps called False", true_corpus["wrong"]),
                        ("False prose steps called True", false_corpus["wrong"]),
                        ("True prose steps left unchecked (None)", true_corpus["unchecked"]),
                        ("False prose steps left unchecked (None)", false_corpus["unchecked"])):
        if rows:
            print(f"\n{title}:")
            for text in rows:
                print(f"  {text}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"\nwrote {args.json}")
    gsm8k = report["gsm8k"] or {}
    failed = (gsm8k.get("flagged_false_alarms", 0) or gsm8k.get("flagged_unlabelled", 0)
              or true_corpus["wrong"] or false_corpus["wrong"])
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
