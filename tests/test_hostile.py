"""Hostile inputs: no code runs, every call returns within 1 s, memory stays bounded, threads work."""

import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pytest

from verifiers import (
    LimitError,
    ParseError,
    answers_equivalent,
    check_step,
    check_transition,
    extract_answer,
    parse_expression,
    verify_solution,
)


# Warm up once (sympy's first import is slow) so timings measure the calls themselves.
parse_expression("x + 1")


def _payloads(marker):
    path = str(marker)
    return [
        f"__import__('os').system('touch {path}')",
        f"__import__('pathlib').Path('{path}').touch()",
        f"(lambda: __import__('os').system('touch {path}'))()",
        f"().__class__.__base__.__subclasses__()",
        f"exec(\"open('{path}', 'w').close()\")",
        f"eval(\"open('{path}', 'w').close()\")",
        f"open('{path}', 'w').write('x') = 1",
        f"x.__globals__['os'].system('touch {path}') = 2",
        f"1 + 1 = 2 <<__import__('os').system('touch {path}')=0>>",
        f"Symbol('x'); open('{path}','w')",
    ]


BOMBS = [
    "9**9**9**9",
    "9^9^9^9 = 1",
    "2^(2^(2^(2^(2^10))))",
    "10^10^10",
    "(10**1000)**(10**1000)",
    "1000000000!",
    "(10!)!",
    "((((((((((((9!)!)!)!)!)!)!)!)!)!)!)!)",
    "(" * 10_000 + "1" + ")" * 10_000,
    "-" * 10_000 + "1",
    "2^" * 5_000 + "2",
    "1+" * 200_000 + "1",
    "9" * 100_000 + " = 1",
    "x" * 1_000_000,
    "1 = 1 " * 200_000,
    "\\frac{" * 5_000 + "1" + "}{2}" * 5_000,
    "\\sqrt{" * 5_000 + "2" + "}" * 5_000,
    "\\boxed{" * 50_000,
    "{" * 100_000,
    "nan = nan",
    "inf = inf",
    "1e999999 = 1",
    "1/0 = 1",
    "0^0 = 1",
    "0^-1 = 1",
    "\u202e1 + 1 = 2\u202c",
    "\u0661 + \u0662 = \u0663",
    "１＋１＝２",
    "\x00\x01\x02 = \ud800",
    "𝟐 + 𝟐 = 𝟒",
    "ℵ₀ = ∞",
    "\\begin{pmatrix}" + "1 & " * 10_000 + "\\end{pmatrix}",
    "<<" * 50_000 + ">>" * 50_000,
]

FUNCTIONS = [
    ("parse_expression", lambda s: _safe_parse(s)),
    ("check_step", check_step),
    ("check_transition", lambda s: check_transition(s, s)),
    ("extract_answer", extract_answer),
    ("answers_equivalent", lambda s: answers_equivalent(s, s[::-1])),
    ("answers_equivalent_same", lambda s: answers_equivalent("18", s)),
    ("verify_solution", lambda s: verify_solution("q", [s, s], reference="1")),
]


def _safe_parse(text):
    try:
        return parse_expression(text)
    except ParseError:  # LimitError included: a clear refusal is the expected outcome
        return None


def _timed(fn, arg):
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


def test_no_code_runs(tmp_path):
    marker = tmp_path / "pwned"
    for text in _payloads(marker):
        for name, fn in FUNCTIONS:
            fn(text)
            assert not marker.exists(), (name, text)


@pytest.mark.parametrize("text", BOMBS, ids=range(len(BOMBS)))
def test_bombs_return_quickly(text):
    for name, fn in FUNCTIONS:
        elapsed = _timed(fn, text)
        assert elapsed < 1.0, (name, text[:40], elapsed)


def test_refusals_are_limit_errors():
    for text in ("9**9**9**9", "1000000000!", "(" * 10_000 + "1" + ")" * 10_000):
        with pytest.raises(LimitError):
            parse_expression(text)


def test_public_functions_never_raise_on_odd_types():
    for value in (None, 0, 1.5, float("nan"), b"1=1", [], {}, object()):
        assert check_step(value) is None
        assert check_transition(value, value) is None
        assert extract_answer(value) is None
        assert answers_equivalent(value, "1") is False
        verify_solution(value, [value])


def test_memory_growth_is_bounded():
    tracemalloc.start()
    try:
        for text in BOMBS:
            for _, fn in FUNCTIONS:
                fn(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20


def test_calls_work_from_threads():
    texts = BOMBS[:12] + ["48/2 = 24", "1/4 = 15"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(check_step, texts))
    assert results[-2:] == [True, False]
    # The time budget is a deadline, not a signal: it also bounds calls off the main thread.
    elapsed = []
    worker = threading.Thread(target=lambda: elapsed.append(_timed(_safe_parse, "9**9**9**9")))
    worker.start()
    worker.join(timeout=5)
    assert elapsed and elapsed[0] < 1.0
