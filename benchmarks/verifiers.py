"""Benchmark the verifiers side by side with math-verify, in one run.

Three tables:

1. answer equivalence on `benchmarks/data/answer_pairs.jsonl` (gold, pred, expected):
   accuracy and warm pairs/s for `verifiers.answers_equivalent` and for math-verify, both on
   raw strings and with every string wrapped in `$...$` (its best mode);
2. step checks on every line of GSM8K train reference solutions: checks/s, p50/p99 latency,
   how many calculator annotations check true / false / unparsed, and the false claims;
3. hostile inputs (code injection, exponent towers, factorial bombs, deep nesting, 1 MB
   strings, odd unicode, NaN/inf): time and outcome per input, each tool in a worker process
   with a timeout so a hang is reported instead of stalling the benchmark;
4. automatic step labels (`verifiers.labelling`, no policy) on corrupted synthetic
   solutions, against their known labels.

    pip install -e '.[bench]'
    python benchmarks/verifiers.py --json verifiers.json --false-claims false_claims.jsonl

Run from the repository root; `--gsm8k` defaults to `../shared/data/gsm8k/train.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tables import print_table  # noqa: E402

DEFAULT_PAIRS = REPO / "benchmarks" / "data" / "answer_pairs.jsonl"
DEFAULT_GSM8K = Path("../shared/data/gsm8k/train.jsonl")
ANNOTATION = re.compile(r"<<[^<>]*>>")


# ---------------------------------------------------------------------------------------
# helpers


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values by nearest rank; 0.0 for an empty list."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def load_pairs(path: Path) -> list[dict]:
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            for field in ("gold", "pred", "expected"):
                if field not in record:
                    raise SystemExit(f"{path}, line {number}: field {field!r} missing")
            pairs.append(record)
    return pairs


def math_verify_available() -> bool:
    try:
        import math_verify  # noqa: F401
    except ImportError:
        return False
    return True


def math_verify_equivalent(gold: str, pred: str, wrap: bool) -> bool:
    from math_verify import parse, verify

    if wrap:
        gold, pred = f"${gold}$", f"${pred}$"
    return bool(verify(parse(gold), parse(pred)))


# ---------------------------------------------------------------------------------------
# 1. answer equivalence


def time_judge(judge, pairs: list[dict], repeats: int) -> dict:
    """Accuracy and warm speed of judge(gold, pred) -> bool over the pairs.

    One untimed pass warms caches and imports; `repeats` timed passes follow. An
    exception counts as a wrong answer and is reported.
    """
    verdicts, errors = [], []
    for pair in pairs:
        try:
            verdicts.append(bool(judge(pair["gold"], pair["pred"])))
        except Exception as error:  # a crash on a pair is a finding, not a benchmark failure
            verdicts.append(None)
            errors.append({"gold": pair["gold"], "pred": pair["pred"], "error": repr(error)[:200]})
    latencies = []
    start = time.perf_counter()
    for _ in range(repeats):
        for pair in pairs:
            t0 = time.perf_counter()
            try:
                judge(pair["gold"], pair["pred"])
            except Exception:
                pass
            latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    wrong = [
        {**pair, "got": verdict}
        for pair, verdict in zip(pairs, verdicts)
        if verdict is None or verdict != pair["expected"]
    ]
    by_category: dict[str, list[int]] = {}
    for pair, verdict in zip(pairs, verdicts):
        right, total = by_category.setdefault(pair.get("category", "-"), [0, 0])
        by_category[pair.get("category", "-")] = [right + (verdict == pair["expected"]), total + 1]
    return {
        "accuracy": (len(pairs) - len(wrong)) / len(pairs),
        "pairs_per_s": len(latencies) / elapsed if elapsed else float("inf"),
        "p50_ms": 1000 * percentile(latencies, 0.5),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "wrong": wrong,
        "errors": errors,
        "by_category": {name: {"right": r, "total": t} for name, (r, t) in sorted(by_category.items())},
    }


def bench_answers(pairs: list[dict], repeats: int, with_math_verify: bool) -> dict:
    from verifiers import answers_equivalent

    results = {"ours": time_judge(answers_equivalent, pairs, repeats)}
    if with_math_verify:
        # math-verify is ~100x slower: one timed pass is enough for a stable rate.
        results["math-verify (raw)"] = time_judge(lambda g, p: math_verify_equivalent(g, p, False), pairs, 1)
        results["math-verify ($...$)"] = time_judge(lambda g, p: math_verify_equivalent(g, p, True), pairs, 1)
    rows = [
        [name, f"{100 * r['accuracy']:.1f} %", f"{len(pairs) - len(r['wrong'])}/{len(pairs)}",
         f"{r['pairs_per_s']:,.0f}", f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}", len(r["errors"])]
        for name, r in results.items()
    ]
    print_table(
        f"Answer equivalence on {len(pairs)} labelled pairs (warm)",
        ["judge", "accuracy", "right", "pairs/s", "p50 ms", "p99 ms", "exceptions"],
        rows,
    )
    categories = sorted(results["ours"]["by_category"])
    cat_rows = [
        [category] + [
            f"{r['by_category'][category]['right']}/{r['by_category'][category]['total']}" for r in results.values()
        ]
        for category in categories
    ]
    print_table("Answer equivalence by category", ["category"] + list(results), cat_rows)
    if results["ours"]["wrong"]:
        print("\nPairs ours gets wrong:")
        for pair in results["ours"]["wrong"]:
            print(f"  [{pair.get('category', '-')}] gold={pair['gold']!r} pred={pair['pred']!r} "
                  f"expected={pair['expected']} got={pair['got']}")
    return results


# ---------------------------------------------------------------------------------------
# 2. GSM8K step checks


def gsm8k_steps(path: Path) -> list[str]:
    """Every reasoning line of every reference solution (the '#### answer' line excluded)."""
    from tasks.math.steps import split_gsm8k

    lines = []
    with open(path, encoding="utf-8") as handle:
        for number, row in enumerate(handle, 1):
            if not row.strip():
                continue
            try:
                answer = json.loads(row)["answer"]
            except (json.JSONDecodeError, KeyError) as error:
                raise SystemExit(f"{path}, line {number}: field 'answer' unreadable ({error})")
            lines += split_gsm8k(answer)[0]
    return lines


def bench_steps(path: Path, false_claims_path: Path | None) -> dict | None:
    if not path.exists():
        print(f"\n## Step checks: skipped, {path} not found (pass --gsm8k PATH to the GSM8K train.jsonl)")
        return None
    from verifiers import check_step

    steps = gsm8k_steps(path)
    for step in steps[:200]:  # warm-up
        check_step(step)
    verdicts, latencies = [], []
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in steps:
        t0 = time.perf_counter()
        verdicts.append(check_step(step))
        latencies.append(time.perf_counter() - t0)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start

    annotation_counts = {"true": 0, "false": 0, "unparsed": 0}
    false_annotations = []
    for step in steps:
        for annotation in ANNOTATION.findall(step):
            verdict = check_step(annotation)
            key = {True: "true", False: "false", None: "unparsed"}[verdict]
            annotation_counts[key] += 1
            if verdict is not True:
                false_annotations.append({"annotation": annotation, "verdict": key, "step": step})
    false_steps = [step for step, verdict in zip(steps, verdicts) if verdict is False]
    step_counts = {
        "true": sum(v is True for v in verdicts),
        "false": len(false_steps),
        "none": sum(v is None for v in verdicts),
    }
    result = {
        "steps": len(steps),
        "checks_per_s": len(steps) / elapsed,
        # Wall-clock rates fall with the machine's load; CPU time is what this process used.
        "checks_per_cpu_s": len(steps) / cpu,
        "load_average_1min": os.getloadavg()[0],
        "p50_ms": 1000 * percentile(latencies, 0.5),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies),
        "step_verdicts": step_counts,
        "annotations": annotation_counts,
        "false_steps": false_steps,
        "annotations_not_true": false_annotations,
    }
    print_table(
        f"Step checks on {len(steps):,} GSM8K train solution lines",
        ["checks/s", "checks/CPU-s", "load avg", "p50 ms", "p99 ms", "max ms", "steps T/F/None",
         "annotations true/false/unparsed"],
        [[f"{result['checks_per_s']:,.0f}", f"{result['checks_per_cpu_s']:,.0f}",
          f"{result['load_average_1min']:.1f}", f"{result['p50_ms']:.3f}", f"{result['p99_ms']:.3f}",
          f"{result['max_ms']:.1f}", "/".join(str(step_counts[k]) for k in ("true", "false", "none")),
          "/".join(str(annotation_counts[k]) for k in ("true", "false", "unparsed"))]],
    )
    if false_claims_path:
        with open(false_claims_path, "w", encoding="utf-8") as handle:
            for step in false_steps:
                handle.write(json.dumps({"kind": "step", "verdict": "false", "text": step}) + "\n")
            for item in false_annotations:
                handle.write(json.dumps({"kind": "annotation", **item}) + "\n")
        print(f"\n{len(false_steps)} steps checked false, {len(false_annotations)} annotations not true: "
              f"listed in {false_claims_path}")
    else:
        print(f"\n{len(false_steps)} steps checked false (first 10; --false-claims PATH lists all):")
        for step in false_steps[:10]:
            print(f"  {step}")
    return result


# ---------------------------------------------------------------------------------------
# 3. hostile inputs


def hostile_inputs(marker_dir: str) -> list[tuple[str, str]]:
    """(name, text) pairs. Injection payloads would create a file in marker_dir if run."""
    mark = os.path.join(marker_dir, "pwned")
    deep = 10_000
    return [
        ("import os.system", f"__import__('os').system('touch {mark}1')"),
        ("exec call", f"exec(\"open('{mark}2','w').close()\")"),
        ("subclasses walk", "().__class__.__bases__[0].__subclasses__()"),
        ("lambda + open", f"(lambda: open('{mark}3', 'w'))()"),
        ("sympy Symbol injection", f"Symbol('x').__class__.__init__.__globals__['os'].system('touch {mark}4')"),
        ("latex injection", f"\\frac{{__import__('os').system('touch {mark}5')}}{{2}}"),
        ("annotation injection", f"<<__import__('os').system('touch {mark}6')=0>>"),
        ("tower 9**9**9**9", "9**9**9**9"),
        ("tower 2^{2^{2^{2^{2^{2}}}}}", "2^{2^{2^{2^{2^{2}}}}} = 1"),
        ("10^10^10 = 1", "10^10^10 = 1"),
        ("factorial 1000000!", "1000000! = 1"),
        ("factorial (10!)!", "(10!)!"),
        ("huge digits ** huge", "123456789**987654321 = 5"),
        (f"{deep:,} nested parens", "(" * deep + "1" + ")" * deep),
        ("5,000 nested \\frac", "\\frac{" * 5000 + "1" + "}{2}" * 5000),
        ("1 MB sum 1+1+...", "1+" * 500_000 + "1 = 500001"),
        ("1 MB digits", "9" * 1_000_000),
        ("1 MB letters", "a" * 1_000_000),
        ("1 MB annotation", "<<" + "2*" * 350_000 + "1=0>>"),
        ("100k-digit claim", "1" * 100_000 + " = 1"),
        ("fullwidth digits", "１２ + ３ = １５"),
        ("arabic-indic digits", "٣ + ٤ = ٧"),
        ("math bold digits", "𝟑 + 𝟒 = 𝟖"),
        ("RTL override", "3 + 4 \u202e= 8"),
        ("zero-width joiners", "1\u200b2 + 1 = 13"),
        ("combining marks", "3\u0301 + 4\u0308 = 7"),
        ("lone surrogate", "3 + 4 = \ud800"),
        ("NUL bytes", "3 + 4\x00 = 7"),
        ("nan", "nan"),
        ("NaN = NaN", "NaN = NaN"),
        ("inf = inf", "inf = inf"),
        ("1e309 = 1e309", "1e309 = 1e309"),
        ("0/0 = 0/0", "0/0 = 0/0"),
        ("1/0 = 2", "1/0 = 2"),
        ("1e999999999", "1e999999999 = 1"),
    ]


def _worker(tool: str, inbox, outbox) -> None:
    """Serve hostile cases for one tool: receive text, send (outcome, seconds, MB grown)."""
    import logging
    import resource

    # math-verify logs the whole offending input on a timeout (megabytes for these cases).
    logging.disable(logging.CRITICAL)
    sys.stdout = sys.stderr = open(os.devnull, "w")

    if tool == "ours":
        from verifiers import answers_equivalent, check_step, extract_answer

        def run(text):
            step = check_step(text)
            same = answers_equivalent(text, text)
            extract_answer(text)  # timed too; its value is not interesting here
            return f"check_step={step} eq={same}"
    else:
        from math_verify import parse, verify

        def run(text):
            parsed = parse(text)
            return f"parse={str(parsed)[:30]!r} eq={verify(parsed, parsed)}"

    while True:
        text = inbox.recv()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        try:
            outcome = run(text)
        except Exception as error:
            outcome = f"raised {type(error).__name__}"
        seconds = time.perf_counter() - t0
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        outbox.send((outcome, seconds, grown))


class HostileRunner:
    """One worker process per tool; a case that overruns the timeout kills and restarts it."""

    def __init__(self, tool: str, timeout: float):
        self.tool, self.timeout = tool, timeout
        self.context = multiprocessing.get_context("spawn")
        self.process = None
        self._start()

    def _start(self) -> None:
        inbox_reader, self.inbox = self.context.Pipe(duplex=False)
        self.outbox, outbox_writer = self.context.Pipe(duplex=False)
        self.process = self.context.Process(target=_worker, args=(self.tool, inbox_reader, outbox_writer), daemon=True)
        self.process.start()
        self.inbox.send("1 + 1 = 2")  # warm imports outside the timed cases
        if not self.outbox.poll(120):
            raise RuntimeError(f"{self.tool} worker did not start")
        self.outbox.recv()

    def run(self, text: str) -> tuple[str, float, float]:
        try:
            self.inbox.send(text)
        except (BrokenPipeError, OSError):
            self._start()
            self.inbox.send(text)
        if self.outbox.poll(self.timeout):
            try:
                return self.outbox.recv()
            except EOFError:
                pass
        crashed = not self.process.is_alive()
        self.process.kill()
        self.process.join()
        self._start()
        return ("worker crashed" if crashed else f"TIMEOUT (killed after {self.timeout:.0f} s)"), self.timeout, float("nan")

    def close(self) -> None:
        self.process.kill()
        self.process.join()


def bench_hostile(timeout: float, with_math_verify: bool) -> list[dict]:
    tools = ["ours"] + (["math-verify"] if with_math_verify else [])
    rows, results = [], []
    with tempfile.TemporaryDirectory() as marker_dir:
        runners = {tool: HostileRunner(tool, timeout) for tool in tools}
        for name, text in hostile_inputs(marker_dir):
            entry = {"input": name, "chars": len(text)}
            row = [name, f"{len(text):,}"]
            for tool, runner in runners.items():
                outcome, seconds, grown = runner.run(text)
                injected = sorted(os.listdir(marker_dir))
                if injected:
                    outcome += f" CODE RAN ({', '.join(injected)})"
                    for leftover in injected:
                        os.remove(os.path.join(marker_dir, leftover))
                entry[tool] = {"outcome": outcome, "seconds": seconds, "max_rss_growth_mb": grown}
                row += [f"{seconds * 1000:.1f}", outcome]
            results.append(entry)
            rows.append(row)
        for runner in runners.values():
            runner.close()
    header = ["input", "chars"]
    for tool in tools:
        header += [f"{tool} ms", f"{tool} outcome"]
    print_table(f"Hostile inputs (each tool in a worker process, timeout {timeout:.0f} s)", header, rows)
    return results


# ---------------------------------------------------------------------------------------
# 4. automatic labels on the synthetic task (ground truth known)


def bench_labels(n_problems: int) -> dict:
    """Label corrupted synthetic solutions without a policy and compare with the truth."""
    from collections import Counter

    from tasks.math.synthetic import PRESETS, generate_problems, step_labelled_records
    from verifiers.labelling import LabelStats, label_steps

    results, rows = {}, []
    for preset in PRESETS:
        records = step_labelled_records(generate_problems(n_problems, preset=preset, seed=0), corrupt_fraction=0.5, seed=0)
        stats, located, flagged_correct = LabelStats(), Counter(), 0
        start = time.perf_counter()
        for record in records:
            result = label_steps(record["prompt"], record["completions"], reference=record["reference"])
            stats.add(result, record["labels"])
            flagged_correct += all(record["labels"]) and not all(result.labels)
            if record.get("kind"):
                located[record["kind"]] += result.first_false_claim == record["first_wrong"]
        elapsed = time.perf_counter() - start
        kinds = Counter(record["kind"] for record in records if record.get("kind"))
        results[preset] = {
            **stats.as_dict(), "solutions_per_s": len(records) / elapsed,
            "correct_solutions_flagged": flagged_correct,
            "errors_located": {kind: f"{located[kind]}/{kinds[kind]}" for kind in sorted(kinds)},
        }
        rows.append([preset, len(records), f"{100 * stats.given_agreement:.1f} %", flagged_correct,
                     ", ".join(f"{kind} {located[kind]}/{kinds[kind]}" for kind in sorted(kinds)),
                     f"{len(records) / elapsed:,.0f}"])
    print_table(
        "Automatic labels (no policy) vs the synthetic task's true labels",
        ["preset", "solutions", "step agreement", "correct flagged", "errors located at their step", "solutions/s"],
        rows,
    )
    return results


# ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS, help="JSONL of {gold, pred, expected}")
    parser.add_argument("--gsm8k", type=Path, default=DEFAULT_GSM8K, help="GSM8K train.jsonl")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    parser.add_argument("--false-claims", type=Path, default=None, help="write GSM8K false claims here (JSONL)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the pairs for our judge")
    parser.add_argument("--hostile-timeout", type=float, default=10.0, help="seconds before a hostile case is killed")
    parser.add_argument("--no-math-verify", action="store_true", help="skip the math-verify columns")
    parser.add_argument("--label-problems", type=int, default=200, help="synthetic problems per preset for labels")
    parser.add_argument("--only", choices=["answers", "steps", "hostile", "labels"], action="append",
                        help="run only these sections (repeatable)")
    args = parser.parse_args(argv)
    sections = set(args.only or ["answers", "steps", "hostile", "labels"])
    with_math_verify = not args.no_math_verify and math_verify_available()
    if not args.no_math_verify and not with_math_verify:
        print("math-verify is not installed (pip install -e '.[bench]'): its columns are skipped")

    report: dict = {"python": sys.version.split()[0]}
    if with_math_verify:
        from importlib.metadata import version

        report["math_verify_version"] = version("math-verify")
    if "answers" in sections:
        report["answers"] = bench_answers(load_pairs(args.pairs), args.repeats, with_math_verify)
    if "steps" in sections:
        report["steps"] = bench_steps(args.gsm8k, args.false_claims)
    if "hostile" in sections:
        report["hostile"] = bench_hostile(args.hostile_timeout, with_math_verify)
    if "labels" in sections:
        report["labels"] = bench_labels(args.label_problems)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
