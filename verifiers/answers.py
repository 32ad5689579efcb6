"""Final-answer extraction and equivalence, for plain text and LaTeX.

`extract_answer` finds the final answer in a solution; `answers_equivalent` decides whether
two answers mean the same thing. Both accept any input, never raise and never run the text:
values come from our own parser (`verifiers.parser`), compared exactly as rationals, or
numerically (complex floats at seeded random points when there are variables).

Equivalence policy (what counts as "the same answer"):

- numbers in any format: `1,000` = `1000` = `1000.0` = `$1,000` = `1000 dollars`,
  `\\frac{1}{2}` = `1/2` = `0.5`, mixed `2\\frac{1}{2}` = `2 1/2` = `2-1/2` (recipe style) = `2.5`,
  `1.5e3` = `1.5 \\times 10^3` = `1500`; radicals and pi by value (`\\sqrt{8}` = `2\\sqrt{2}`).
- a decimal with >= 4 shown decimals equals a value that is not a short decimal itself when it
  is that value rounded or truncated (`1/3` = `0.3333`, `\\pi` = `3.1416`); shorter
  approximations are different answers (`\\pi` != `3.14`, `1/3` != `0.33`, `0.5` != `0.54`).
- repeating decimals: `0.\\overline{3}` (also `\\bar`, `\\dot`) is exactly 1/3; a decimal cut short
  with `...` / `\\ldots` / `…` is the repeating decimal when its digits end in a repeated block
  (`0.333...` = `0.3333...` = 1/3, `0.1666...` = 1/6), and otherwise stands for a non-terminating
  value rounded or truncated to the shown digits (`3.14159...` = `\\pi`, `0.667...` = 2/3). It is
  never a terminating decimal: `0.333...` != `0.333`, `0.5...` != `0.5`.
- percent: `50%` equals both `50` and `0.5` (answers are written both ways); `50` != `0.5`.
- degrees: `30^\\circ` equals `30` and `\\pi/6`.
- units and currency are dropped: `5 \\text{ cm}^2` = `5`, `5` = `5 cents`; but when both answers
  name a currency they must agree: `\\$5` != `5 cents` (cents are hundredths: `\\$0.05` = `5 cents`),
  `\\$5` != `€5`.
- undefined values (`0/0`, `1/0`, `\\infty - \\infty`) equal nothing, not even the same text.
- a whole answer in English number words is that number: `nine` = `9`, `twenty-one` = `21`.
- `x = 3` = `3`; `x = 3, y = 4` = `(3, 4)`.
- `\\{1, 2\\}` = `\\{2, 1\\}` and bare lists `1, 2` = `2, 1` (order-insensitive); tuples and
  intervals keep order and bracket kind: `(1, 2]` != `[1, 2]`; unions of intervals compare as
  sets; `\\pm` expands to both values; matrices (`pmatrix`, `bmatrix`, ...) compare entry-wise.
- expressions with variables are equal when equal as functions (`x^2 - 1` = `(x-1)(x+1)`).
- anything else compares as normalised text (case, spaces, `\\text{}`, punctuation ignored).
"""

from __future__ import annotations

import math
import re
import unicodedata
from fractions import Fraction

from verifiers.limits import DEFAULT_LIMITS, Deadline, LimitError, Limits, ParseError
from verifiers.parser import (NotExact, Node, evaluate_complex, evaluate_exact, free_symbols, functions_equal, parse_tree,
                              space_hyphen_mixed_numbers)

MAX_ANSWER_CHARS = 2_000
_SCAN_TAIL = 20_000

# -- extraction ------------------------------------------------------------------------------

_HASHES = re.compile(r"####[ \t]*([^\n]*)")
# "The answer is", "Final Answer:", markdown "**Answer:**" / "**Final Answer**:".
_ANSWER_IS = re.compile(
    r"\b(?:final\s+answer|the\s+answer|answer)(?:\*\*|__)?\s*(?:is|:|=|would\s+be|will\s+be)\s*:?(?:\*\*|__)?"
    r"[ \t]*([^\n]*)", re.IGNORECASE
)
# What the MATH prompt format repeats inside "Final Answer: The final answer is $12$."
_ANSWER_LEAD = re.compile(
    r"^(?:\*\*|__)?(?:the\s+)?(?:final\s+)?answer(?:\*\*|__)?\s*(?:is|:|=)\s*:?(?:\*\*|__)?\s*", re.IGNORECASE
)
# Words that start an explanation after the answer: "12 because 3 * 4 = 12", "12, since ...".
_CLAUSE = re.compile(
    r",?\s+(?:because|since|as|which|where|so|thus|hence|therefore|given\s+that|due\s+to)\b", re.IGNORECASE
)
# A decimal cut short with an ellipsis: "0.333...", "0.333\ldots", "0.333…" (a repeating or truncated value).
_ELLIPSIS = r"(?:\.\.\.|…|\\[lc]?dots(?![A-Za-z]))"
_CUT_DECIMAL_END = re.compile(r"\d\.\d+\s*" + _ELLIPSIS + r"$")
_ELLIPSIS_AFTER_DECIMAL = re.compile(r"(\d\.\d+)\s*" + _ELLIPSIS)
# Words around the number of an answer sentence: "about 42", "a total of 18 apples", "18 in all".
_HEDGE = re.compile(r"^(?:(?:about|approximately|around|roughly|exactly|only|just|a\s+total\s+of|in\s+total)\s+)+(?=[-+$\d.])",
                    re.IGNORECASE)
_IN_TOTAL = re.compile(r"(?<=\S)\s+(?:in\s+total|in\s+all|altogether|total)$", re.IGNORECASE)
# Arithmetic then its result: "12 + 6 = 18" (an assignment such as "x = 5" is read elsewhere).
_COMPUTED = re.compile(r"\$?[\d.,]+(?:\s*[-+*/×x÷]\s*\$?[\d.,]+)+\s*=\s*(\$?-?[\d.,]*\d)")
_A_COLON = re.compile(r"(?:^|\n)[ \t]*A[ \t]*:[ \t]*([^\n]*)")
# The last number of a text, whole: "\frac{45}{4}", "2 \frac{1}{2}" and "9 3/4" are not 4, 2 and 3/4.
# LaTeX's braced separators stay inside a number: "4{,}698.69", "3{.}5".
_LAST_NUMBER = re.compile(r"-?(?:\d[\d,]*\s*)?\\[dt]?frac\{\d+\}\{\d+\}|-?\d[\d,]*[ \t]+\d+\s*/\s*\d+"
                          r"|-?\d(?:[\d,]|\{,\}(?=\d))*(?:(?:\.|\{\.\})\d+)?(?:\s*/\s*\d+)?|-?\.\d+")


def _balanced(text: str, open_at: int) -> str | None:
    """Content of the brace group opening at text[open_at] == '{' (nested braces kept)."""
    depth = 0
    for i in range(open_at, min(len(text), open_at + MAX_ANSWER_CHARS * 5)):
        ch = text[i]
        if ch == "{" and text[i - 1] != "\\":
            depth += 1
        elif ch == "}" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    return None


def _boxed(text: str) -> str | None:
    for command in ("\\boxed", "\\fbox"):
        at = text.rfind(command)
        tries = 0
        while at != -1 and tries < 8:  # a few unclosed boxes at the end are skipped, not thousands
            tries += 1
            i = at + len(command)
            while i < len(text) and text[i] == " ":
                i += 1
            if i < len(text) and text[i] == "{":
                content = _balanced(text, i)
                if content is not None:
                    return content.strip() or None  # an empty box holds no answer
            elif i < len(text):
                m = re.match(r"[^\s$]+", text[i : i + 200])
                if m:
                    return m.group()
            at = text.rfind(command, 0, at)
    return None


def _closing_dollar(text: str, at: int) -> int:
    """Index of the `$` (or `$$`) closing the math span opened at text[at], or -1 (a currency sign)."""
    delimiter = "$$" if text.startswith("$$", at) else "$"
    i = at + len(delimiter)
    while True:
        j = text.find(delimiter, i)
        if j == -1:
            return -1
        if text[j - 1] != "\\":
            return j + len(delimiter) - 1
        i = j + 1


def _after_decimal(text: str, i: int) -> bool:
    """Does text[:i] end in a decimal literal with digits after its point ("0.333")?"""
    j = i
    while j > 0 and text[j - 1].isdigit():
        j -= 1
    return j < i and j >= 2 and text[j - 1] == "." and text[j - 2].isdigit()


def _first_sentence(answer: str) -> str:
    """The answer up to the end of its sentence or the start of an explanation: "12. Next
    question: ..." -> "12", "12 because 3 * 4 = 12" -> "12". Math spans ($...$) and brackets are
    read whole, decimal points and the ellipsis of "0.333..." do not end a sentence."""
    depth = 0
    i, n = 0, len(answer)
    while i < n:
        ch = answer[i]
        if ch == "$" and (i == 0 or answer[i - 1] != "\\"):
            close = _closing_dollar(answer, i)
            if close != -1:
                i = close + 1
                continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0:
            if ch in ".…" and i > 0 and answer[i - 1].isdigit():
                m = re.match(_ELLIPSIS, answer[i:])
                if m and _after_decimal(answer, i):  # "0.333...": part of the number
                    end = i + m.end()
                    if re.match(r"\s+[A-Z]", answer[end:]):
                        return answer[:end]
                    i = end
                    continue
            if ch in ".!?。" and (i + 1 == n or answer[i + 1].isspace()):
                return answer[:i]
            if ch in ", " and i > 0 and not answer[i - 1].isspace():  # once per run of spaces
                m = _CLAUSE.match(answer, i)
                if m:
                    return answer[:i]
        i += 1
    return answer


def _strip_bold(answer: str) -> str:
    """Markdown bold around an answer: "** 12", "12**" -> "12"."""
    answer = answer.strip()
    for mark in ("**", "__"):
        if answer.startswith(mark):
            answer = answer[len(mark) :].strip()
        if answer.endswith(mark):
            answer = answer[: -len(mark)].strip()
    return answer


def _clean_sentence(answer: str) -> str:
    answer = answer.strip()
    for _ in range(3):  # "Final Answer: The final answer is $12$."
        lead = _ANSWER_LEAD.match(answer)
        if not lead or not lead.end():
            break
        answer = answer[lead.end() :]
    boxed = _boxed(answer)
    if boxed is not None:
        return boxed
    answer = _strip_bold(answer)
    if answer.startswith(("...", "…")):  # "The answer is... 12"
        answer = answer.lstrip(".…").strip()
    answer = _first_sentence(answer).strip()
    if not _CUT_DECIMAL_END.search(answer):
        answer = answer.rstrip().rstrip(".。").strip()
    answer = _strip_bold(answer)
    if len(answer) >= 2 and answer[0] == "$" and answer[-1] == "$" and answer.count("$") == 2:
        answer = answer[1:-1].strip()
    answer = _HEDGE.sub("", answer)
    answer = _IN_TOTAL.sub("", answer)
    computed = _COMPUTED.fullmatch(answer)
    if computed:  # "12 + 6 = 18": the answer is the result
        answer = computed.group(1)
    return _words_to_digits(answer)


# -- number words ----------------------------------------------------------------------------

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}
_NUMBER_WORD = r"(?:" + "|".join(sorted([*_UNITS, *_TENS, "hundred", *_SCALES], key=len, reverse=True)) + r")"
_NUMBER_PHRASE = re.compile(
    r"[-+]?" + _NUMBER_WORD + r"(?:(?:\s+and\s+|[\s-]+)" + _NUMBER_WORD + r")*", re.IGNORECASE)
# After a number word, one word that is a unit ("twelve apples"), not the start of prose ("one of ...").
_NOT_UNITS = frozenset("of or and than more less times way other another thing things is are was were".split())


def number_words_value(phrase: str) -> int | None:
    """The integer a phrase of English number words names ("twenty-one" -> 21, "three hundred and
    six" -> 306, "two thousand five hundred" -> 2500), or None when it is not exactly such a phrase
    (words out of order, "one two", or anything else)."""
    words = [w for w in re.split(r"[\s-]+", phrase.strip().lower()) if w]
    sign = 1
    if words and words[0][0] in "+-":  # "-seven" is rare; "- seven" splits off the sign
        sign, words[0] = (-1 if words[0][0] == "-" else 1), words[0][1:]
        words = [w for w in words if w]
    if not words or len(words) > 20:
        return None
    total, group, last, scale_cap = 0, 0, None, None
    for k, w in enumerate(words):
        if w == "and":
            if last not in ("hundred", "scale") or k == len(words) - 1:
                return None
            continue
        if w in _UNITS:
            value = _UNITS[w]
            if value == 0 and len(words) > 1:
                return None
            if last not in (None, "hundred", "scale", "tens") or (last == "tens" and value >= 10):
                return None
            group += value
            last = "unit" if value < 10 else "teen"
        elif w in _TENS:
            if last not in (None, "hundred", "scale"):
                return None
            group += _TENS[w]
            last = "tens"
        elif w == "hundred":
            if last not in ("unit", "teen") or group >= 100:
                return None
            group *= 100
            last = "hundred"
        elif w in _SCALES:
            scale = _SCALES[w]
            if group == 0 or (scale_cap is not None and scale >= scale_cap):
                return None
            total += group * scale
            group, last, scale_cap = 0, "scale", scale
        else:
            return None
    return sign * (total + group)


def _words_to_digits(answer: str) -> str:
    """An extracted answer in number words as digits: "nine" -> "9", "twelve apples" -> "12 apples",
    "7 (seven)" / "seven (7)" -> "7". Anything else (prose) is returned unchanged."""
    if len(answer) > 200:  # number words are short; long answers are left alone
        return answer
    m = re.fullmatch(r"(\S.*?)\s*\(([^()]*)\)", answer)
    if m:  # a number restated in the other form: "7 (seven)", "seven (7)"
        first, second = m.group(1).strip(), m.group(2).strip()
        for digits, words in ((first, second), (second, first)):
            if re.fullmatch(r"[-+]?\d+", digits) and number_words_value(words) == int(digits):
                return digits
    m = _NUMBER_PHRASE.match(answer)
    if not m:
        return answer
    rest = answer[m.end() :]
    if rest and not re.fullmatch(r"\s+[A-Za-z]+", rest):
        return answer
    if rest and (rest.strip().lower() in _NOT_UNITS or not re.match(r"\s", rest)):
        return answer
    value = number_words_value(m.group())
    if value is None:
        return answer
    return str(value) + rest


def extract_answer(text: str, *, fallback_last_number: bool = True) -> str | None:
    """The final answer in a solution, or None.

    Looks for, in order: the last `\\boxed{...}` (nested braces allowed), `#### 18`,
    "The (final) answer is ...", `Answer: ...` (also markdown `**Answer:**`, and the MATH prompt's
    "Final Answer: The final answer is $12$. I hope it is correct."), `A: ...`; then, if
    `fallback_last_number`, the last number in the text. The answer ends with its sentence
    ("12. Next question: ..." -> "12") or where an explanation starts ("12 because ...",
    "12, since ..."); decimal points, math spans and the ellipsis of "0.333..." are kept. An answer
    in number words is given in digits: "nine" -> "9", "twelve apples" -> "12 apples",
    "7 (seven)" -> "7"; other prose is returned as written. Never raises.

    >>> extract_answer("so $x = \\\\boxed{\\\\frac{1}{2}}$.")
    '\\\\frac{1}{2}'
    >>> extract_answer("48 + 24 = 72\\n#### 72")
    '72'
    """
    if not isinstance(text, str) or not text:
        return None
    try:
        boxed = _boxed(text)
        if boxed is not None:
            return boxed
        tail = text[-_SCAN_TAIL:]
        for pattern in (_HASHES, _ANSWER_IS, _A_COLON):
            last = None
            for last in pattern.finditer(tail):
                pass
            if last is not None:
                answer = _clean_sentence(last.group(1))
                if answer:
                    return answer[:MAX_ANSWER_CHARS]
        if fallback_last_number:
            last = None
            for last in _LAST_NUMBER.finditer(tail[-2000:]):
                pass
            if last is not None:
                return re.sub(r"\s*/\s*", "/", " ".join(last.group().split())).rstrip(",")
    except Exception:  # extraction must never crash the caller
        return None
    return None


# -- normalisation ---------------------------------------------------------------------------

_SUPERSCRIPTS = str.maketrans({"⁰": "^0", "¹": "^1", "²": "^2", "³": "^3", "⁴": "^4", "⁵": "^5",
                               "⁶": "^6", "⁷": "^7", "⁸": "^8", "⁹": "^9", "⁻": "^-"})
_LAYOUT = re.compile(r"(?<!\\)\\[,!;: ]|\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])|\\displaystyle|\\limits|~")
_TEXT_CMD = re.compile(
    r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|rm|operatorname)\s*\{([^{}]*)\}(\s*\^\s*\{?\d\}?)?"
)
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree|\bdegrees?\b")
_PERCENT = re.compile(r"\\?%|\bpercent\b")
_ASSIGNMENT = re.compile(r"^\s*\\?[A-Za-z]\w*(?:_\{?\w+\}?)?\s*(?:=|\\in)\s*")
_UNIT_WORDS = re.compile(
    r"(?<=[\d}\s])\s*(?:square\s+|cubic\s+)?(?:units?|dollars?|cents?|cm|mm|km|m|meters?|metres?|inches|inch|in|"
    r"feet|foot|ft|yards?|miles?|mph|hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|years?|"
    r"grams?|g|kg|pounds?|lbs?|ounces?|oz|liters?|litres?|ml|gallons?|degrees?)\b(?:\s*\^\s*\{?\d\}?)?\.?"
)
# "7 km/h", "12 widgets": a word (or rate) after the final number.
_TRAILING_UNIT = re.compile(r"(?<=[\d}])\s+(?:[A-Za-z]{2,}(?:/[A-Za-z]+)?|[A-Za-z]/[A-Za-z]+)(?:\^\d)?\s*$")
_MATRIX = re.compile(r"\\begin\{([pbBvV]?matrix|array)\}(?:\{[^{}]*\})?(.*?)\\end\{\1\}", re.DOTALL)


_DIGIT_THEN_VULGAR = re.compile(r"(\d)([\u00bc-\u00be\u2150-\u215e])")
# "1.5 million" -> "1500000": a number and a scale word.
_SCALED = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)\s+(thousand|million|billion)\b", re.IGNORECASE)
# Letters only ("yes", "Bob", "ab"): equal when they are the same word, case aside; the words of
# yes/no/true/false answers compare only as words ("no" != "on"); any other short string of
# letters stays algebra ("ab" = "ba", a product).
_WORD_ANSWER = re.compile(r"[A-Za-z]+(?:\s+[A-Za-z]+)*")
_ANSWER_WORDS = frozenset("yes no true false none neither both all".split())


def _scaled_value(m: re.Match) -> str:
    value = Fraction(m.group(1).replace(",", "")) * _SCALES[m.group(2).lower()]
    return str(value.numerator) if value.denominator == 1 else f"({value.numerator}/{value.denominator})"


# A currency code before the value: "USD 865", "EUR 1,200.50".
_CODE_FIRST = re.compile(r"(USD|EUR|GBP|JPY|INR)\s*(?=[-+]?\$?[\d.])", re.IGNORECASE)
# A remark in parentheses after the answer ("45 (3 packs of 15)", "12 (eggs)"): words, no math.
_REMARK = re.compile(r"(?<=\S)\s+\((?=[^()\\]*[A-Za-z]{2})[^()\\]*\)$")


def _normalise(text: str) -> str:
    text = text.translate(_SUPERSCRIPTS)
    # "2½" is the mixed number 2 1/2; NFKC alone makes it "21⁄2".
    text = _DIGIT_THEN_VULGAR.sub(r"\1 \2", text)
    text = unicodedata.normalize("NFKC", text).replace("⁄", "/")
    text = _SCALED.sub(_scaled_value, text)
    text = text.strip()
    boxed = _boxed(text)
    if boxed is not None:
        text = boxed
    # Math delimiters around the whole answer.
    for left, right in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            text = text[len(left) : len(text) - len(right)].strip()
    text = _LAYOUT.sub(" ", text)
    text = re.sub(r"\\(?:emptyset|varnothing)|\\\{\s*\\\}", "∅", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\$", "$")
    text = _BRACED_SEPARATOR.sub(r"\1", text)  # LaTeX's spacing-free 1{,}200.50 and 3{.}14
    if "." in text or "dots" in text:  # "0.333...": kept apart from a full stop
        text = _ELLIPSIS_AFTER_DECIMAL.sub(r"\1…", text)
    text = re.sub(r"[.\s]+$", "", text).strip()
    text = _REMARK.sub("", text)
    code = _CODE_FIRST.match(text)
    if code:  # "USD 865" is "865 USD", which names its currency after the value
        text = f"{text[code.end():]} {code.group(1)}"
    if "-" in text and "/" in text:  # a final answer "2-1/2" is a value, the mixed number 2 1/2
        text = space_hyphen_mixed_numbers(text)
    if text[:1].isalpha() or text[:1] in "+-":
        value = number_words_value(text) if _NUMBER_PHRASE.fullmatch(text) else None
        if value is not None:
            return str(value)
    return text


# -- values ----------------------------------------------------------------------------------

Value = Fraction | complex | Node  # exact, numeric, or a tree with variables


class _Cut:
    """A decimal cut short with an ellipsis and no repeating block ("3.14159...", "0.667..."):
    some non-terminating value whose rounding or truncation at `decimals` places is `shown`."""

    __slots__ = ("shown", "decimals")

    def __init__(self, shown: Fraction, decimals: int):
        self.shown = shown
        self.decimals = decimals

    def scaled(self, factor: Fraction, extra_decimals: int) -> "_Cut":
        return _Cut(self.shown * factor, self.decimals + extra_decimals)


class _Undefined:
    """An answer whose value is undefined (`0/0`, `1/0`): it equals nothing, not even itself."""


_UNDEFINED = _Undefined()

# "0.\overline{3}", "0.1\overline{6}", "0.\bar{3}", "0.\dot{3}": a repeating decimal, exactly.
_OVERLINE = re.compile(r"(\d[\d,]*)?\.(\d*)\s*\\(?:overline|bar|dot)\s*(?:\{\s*(\d+)\s*\}|(\d))")
_CUT_DECIMAL = re.compile(r"([-+]?)\s*(\d[\d,]*)?\.(\d+)\s*…")
_CURRENCIES = (
    ("cent", re.compile(r"¢|\bcents?\b", re.IGNORECASE)),
    ("USD", re.compile(r"\bdollars?\b|\busd\b|\bus\$", re.IGNORECASE)),
    ("EUR", re.compile(r"€|\beuros?\b|\beur\b", re.IGNORECASE)),
    ("GBP", re.compile(r"£|\bgbp\b|\bpounds?\s+sterling\b", re.IGNORECASE)),
    ("JPY", re.compile(r"¥|\byen\b|\bjpy\b", re.IGNORECASE)),
    ("INR", re.compile(r"₹|\brupees?\b|\binr\b", re.IGNORECASE)),
)


_ANY_CURRENCY = re.compile(r"[$¢€£¥₹]|cent|dollar|usd|eur|gbp|pound|yen|jpy|rupee|inr", re.IGNORECASE)


def _repeating_value(whole: str, fixed: str, block: str) -> Fraction:
    """whole.fixed(block)(block)... exactly: ("0", "1", "6") -> 1/6."""
    head = Fraction(int(whole or "0"))
    k, n = len(block), len(fixed)
    return head + Fraction(int(fixed + block) - int(fixed or "0"), 10**n * (10**k - 1))


def _overline_text(m: re.Match) -> str:
    value = _repeating_value((m.group(1) or "").replace(",", ""), m.group(2), m.group(3) or m.group(4))
    return f"({value.numerator}/{value.denominator})"


def _cut_readings(sign: str, whole: str, digits: str) -> list:
    """Readings of "0.333...": the repeating decimal when the digits end in a repeated block
    ("0.333..." = 1/3, "0.1666..." = 1/6, "0.142857142857..." = 1/7), and the cut-short value."""
    whole = (whole or "0").replace(",", "")
    negative = sign == "-"
    readings: list = []
    for k in range(1, len(digits) // 2 + 1):
        block = digits[-k:]
        if digits[-2 * k : -k] == block:
            fixed = digits
            while fixed.endswith(block):
                fixed = fixed[:-k]
            value = _repeating_value(whole, fixed, block)
            readings.append(-value if negative else value)
            break
    shown = Fraction(int(whole)) + Fraction(int(digits), 10 ** len(digits))
    readings.append(_Cut(-shown if negative else shown, len(digits)))
    return readings


def _currency(text: str) -> str | None:
    """The currency an answer names ("USD", "cent", "EUR", ...), or None (none, or several)."""
    if not _ANY_CURRENCY.search(text):
        return None
    found = {name for name, pattern in _CURRENCIES if pattern.search(text)}
    if text.count("$") % 2 == 1:  # "$5", "\\$5"; an even count is math delimiters ("$5$ cents")
        found.add("USD")
    return found.pop() if len(found) == 1 else None


def _terminates(value: Fraction) -> bool:
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def _rounds_or_truncates_to(value: Fraction, cut: _Cut) -> bool:
    ulp = Fraction(1, 10**cut.decimals)
    diff = abs(value - cut.shown)
    return diff <= ulp / 2 or (diff < ulp and abs(value) > abs(cut.shown))


def _cut_equal(cut: _Cut, other) -> bool:
    """A cut-short decimal against another reading: the other is a non-terminating value that
    rounds or truncates to the shown digits ("3.14159..." = pi; "0.5..." != 0.5)."""
    if isinstance(other, _Cut):
        long, short = (cut, other) if cut.decimals >= other.decimals else (other, cut)
        return _rounds_or_truncates_to(long.shown, short)
    if isinstance(other, Fraction):
        return not _terminates(other) and _rounds_or_truncates_to(other, cut)
    if isinstance(other, complex):
        if not (math.isfinite(other.real) and math.isfinite(other.imag)):
            return False
        if abs(other.imag) > 1e-12 * max(1.0, abs(other)):
            return False
        return _rounds_or_truncates_to(Fraction(other.real), cut)
    return False


def _short_decimal(value: Fraction, decimals: int) -> bool:
    return (value * 10**decimals).denominator == 1


def _decimals_shown(text: str) -> int:
    m = re.fullmatch(r"\s*[-+]?\$?\s*\d[\d,]*\.(\d+)\s*", text)
    return len(m.group(1)) if m else 0


class _Scalar:
    """One answer value with the readings it allows (50% -> 0.5 or 50; 30° -> 30 or pi/6)."""

    __slots__ = ("readings", "decimals", "text", "currency")

    def __init__(self, readings: list, decimals: int, text: str, currency: str | None = None):
        self.readings = readings
        self.decimals = decimals
        self.text = text
        self.currency = currency


def _scalar(text: str, limits: Limits, deadline: Deadline) -> _Scalar | _Undefined | None:
    currency = _currency(text)
    percent = bool(_PERCENT.search(text))
    degrees = bool(_DEGREES.search(text))
    body = _PERCENT.sub(" ", text)
    body = _DEGREES.sub(" ", body)
    body = _TEXT_CMD.sub(lambda m: " " + m.group(1) + " " if re.search(r"\d", m.group(1)) else " ", body)
    if re.search(r"\d", body):
        body = _TRAILING_UNIT.sub("", body)
        body = _UNIT_WORDS.sub(" ", body)
    body = re.sub(r"[$¢]", " ", body).strip()
    body = _ASSIGNMENT.sub("", body) if re.match(r"^\s*\\?[A-Za-z]", body) and "=" in body else body
    if not body:
        return None
    cut = _CUT_DECIMAL.fullmatch(body)
    if cut:
        readings = _cut_readings(cut.group(1), cut.group(2), cut.group(3))
    else:
        if "\\" in body:
            body = _OVERLINE.sub(_overline_text, body)
        try:
            node = parse_tree(body, limits, deadline, relation=False)
        except (ParseError, IndexError, RecursionError):
            return None
        value = _evaluate(node, limits, deadline)
        if value is None or value is _UNDEFINED:
            return value
        readings = [value]
    for value in list(readings):
        if percent and isinstance(value, _Cut):
            readings.append(value.scaled(Fraction(1, 100), 2))
        elif percent and not isinstance(value, tuple):
            readings.append(value / 100 if isinstance(value, Fraction) else value / 100)
    if degrees:
        readings += [complex(v) * math.pi / 180 for v in list(readings) if isinstance(v, (Fraction, complex))]
    return _Scalar(readings, _decimals_shown(body), body, currency)


def _evaluate(node: Node, limits: Limits, deadline: Deadline) -> Value | None:
    if free_symbols(node):
        return node
    try:
        return evaluate_exact(node, limits, deadline)
    except NotExact:
        pass
    except ZeroDivisionError:  # 0/0, 1/0, 0^{-1}: undefined, equal to nothing
        return _UNDEFINED
    except (LimitError, ArithmeticError, ValueError):
        return None
    try:
        value = evaluate_complex(node, None, limits, deadline)
    except ZeroDivisionError:
        return _UNDEFINED
    except (NotExact, ArithmeticError, ValueError, KeyError, TypeError):
        return None
    if value != value:  # NaN (inf - inf) never equals anything
        return _UNDEFINED
    return value


def _values_equal(a: Value, b: Value, a_decimals: int, b_decimals: int, limits: Limits, deadline: Deadline) -> bool:
    if isinstance(a, _Cut):
        return _cut_equal(a, b)
    if isinstance(b, _Cut):
        return _cut_equal(b, a)
    a_tree, b_tree = isinstance(a, tuple), isinstance(b, tuple)
    if a_tree or b_tree:
        return bool(functions_equal(a if a_tree else ("num", a), b if b_tree else ("num", b), limits, deadline))
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        if a == b:
            return True
    else:
        ca, cb = complex(a), complex(b)
        if ca == cb:
            return True
        if math.isinf(abs(ca)) or math.isinf(abs(cb)):
            return False
        if abs(ca - cb) <= 1e-9 * max(abs(ca), abs(cb)):
            return True
    # A rounded decimal against a value that is not itself a short decimal.
    for shown, other, decimals in ((a, b, a_decimals), (b, a, b_decimals)):
        if decimals >= 4 and isinstance(shown, Fraction):
            if isinstance(other, Fraction) and _short_decimal(other, decimals):
                continue
            if isinstance(other, complex) and other.imag != 0:
                continue
            real = other if isinstance(other, Fraction) else other.real
            ulp = 10.0**-decimals
            if abs(float(real) - float(shown)) <= ulp / 2 + 1e-12 or (
                    abs(float(real) - float(shown)) < ulp and abs(float(real)) > abs(float(shown))):
                return True
    return False


def _in_major_units(readings: list) -> list:
    """Readings in cents as readings in dollars (or euros, ...): value / 100."""
    out = []
    for r in readings:
        if isinstance(r, _Cut):
            out.append(r.scaled(Fraction(1, 100), 2))
        elif isinstance(r, (Fraction, complex)):
            out.append(r / 100)
    return out


def _scalars_equal(a: _Scalar, b: _Scalar, limits: Limits, deadline: Deadline) -> bool:
    a_readings, b_readings, a_decimals, b_decimals = a.readings, b.readings, a.decimals, b.decimals
    if a.currency and b.currency and a.currency != b.currency:
        # $5 != 5 cents; $0.05 = 5 cents; $5 != €5.
        if a.currency == "cent":
            a_readings, a_decimals = _in_major_units(a_readings), a_decimals + 2
        elif b.currency == "cent":
            b_readings, b_decimals = _in_major_units(b_readings), b_decimals + 2
        else:
            return False
    for ra in a_readings:
        for rb in b_readings:
            if _values_equal(ra, rb, a_decimals, b_decimals, limits, deadline):
                return True
    return False


# -- structure -------------------------------------------------------------------------------


def _split_top(text: str, separator: str) -> list[str]:
    """Split at separators outside brackets; commas of thousands (`1,000`) are not separators."""
    parts, depth, start = [], 0, 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(separator, i):
            if separator == "," and i > 0 and text[i - 1].isdigit() and re.match(r",\d{3}(?!\d)", text[i : i + 5]):
                i += 1
                continue
            parts.append(text[start:i])
            start = i + len(separator)
            i = start
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


class _Structure:
    """kind: "scalar" | "tuple" | "set" | "list" | "interval" | "union" | "matrix" | "text"."""

    __slots__ = ("kind", "items", "brackets", "raw")

    def __init__(self, kind: str, items: list, brackets: str = "", raw: str = ""):
        self.kind = kind
        self.items = items
        self.brackets = brackets
        self.raw = raw


def _structure(text: str, limits: Limits, deadline: Deadline, depth: int = 0) -> _Structure:
    deadline.check()
    if depth > 6:
        raise LimitError("answer nested too deeply")
    m = _MATRIX.search(text)
    if m and m.start() < 3:
        rows = [r for r in re.split(r"\\\\", m.group(2)) if r.strip()]
        cells = [[_structure(c.strip(), limits, deadline, depth + 1) for c in r.split("&")] for r in rows]
        return _Structure("matrix", cells)
    if "\\cup" in text or "∪" in text:
        parts = [p.strip() for p in re.split(r"\\cup|∪", text)]
        return _Structure("union", [_structure(p, limits, deadline, depth + 1) for p in parts])
    if "\\pm" in text or "±" in text:
        plus = re.sub(r"\\pm|±", "+", text, count=1)
        minus = re.sub(r"\\pm|±", "-", text, count=1)
        return _Structure("set", [_structure(plus, limits, deadline, depth + 1),
                                  _structure(minus, limits, deadline, depth + 1)])
    stripped = text
    brackets = ""
    if text.startswith("\\{") and text.endswith("\\}"):
        stripped, brackets = text[2:-2], "{}"
    elif len(text) >= 2 and text[0] in "([" and text[-1] in ")]" and _split_top(text[1:-1], ",")[0] != text[1:-1]:
        stripped, brackets = text[1:-1], text[0] + text[-1]
    parts = _split_top(stripped, ",")
    if len(parts) == 1 and not brackets:
        parts = _split_top(stripped, ";") if ";" in stripped else parts
    if len(parts) > 1 or brackets == "{}":
        items = [_structure(_ASSIGNMENT.sub("", p) if "=" in p else p, limits, deadline, depth + 1)
                 for p in parts if p or brackets]
        if brackets == "{}":
            return _Structure("set", items, brackets)
        if not brackets:
            return _Structure("list", items)
        if brackets in ("[)", "(]") or (len(items) == 2 and any(
                i.kind == "scalar" and any(isinstance(r, complex) and abs(r) == float("inf") for r in i.items[0].readings)
                for i in items)):
            return _Structure("interval", items, brackets)
        return _Structure("tuple", items, brackets)
    scalar = _scalar(text, limits, deadline)
    if scalar is _UNDEFINED:
        return _Structure("undefined", [], raw=text)
    if scalar is not None:
        return _Structure("scalar", [scalar], raw=text)
    return _Structure("text", [_text_key(text)], raw=text)


_BRACED_SEPARATOR = re.compile(r"(?<=\d)\{([,.])\}(?=\d)")


def _text_key(text: str) -> str:
    """What a text answer says once markup, case and punctuation are gone ("\\text{(C)}" -> "c").
    Between digits the punctuation stays: 3:2, 2:30 and 1.2.3 are not the numbers 32, 230, 123."""
    text = _TEXT_CMD.sub(lambda m: m.group(1), text)
    text = re.sub(r"\\[a-zA-Z]+", lambda m: m.group()[1:], text)
    text = text.lower()
    text = re.sub(r"^(?:the\s+)?(?:answer\s+is\s*:?)", "", text)
    text = re.sub(r"(?<=\d)\s*([.,:;])\s*(?=\d)", r"\1", text)
    return re.sub(r"[\s{}()$!?'\"`*_\\]+|[.,:;](?!(?<=\d.)\d)", "", text)


def _equal(a: _Structure, b: _Structure, limits: Limits, deadline: Deadline) -> bool:
    deadline.check()
    if a.kind == "undefined" or b.kind == "undefined":
        return False
    if a.kind == "scalar" and b.kind == "scalar":
        return _scalars_equal(a.items[0], b.items[0], limits, deadline)
    if a.kind == "text" or b.kind == "text":
        # "\\text{(C)}" vs "C", "\\text{yes}" vs "yes": the other side may have parsed as letters.
        key_a = a.items[0] if a.kind == "text" else (_text_key(a.raw) if a.kind == "scalar" else None)
        key_b = b.items[0] if b.kind == "text" else (_text_key(b.raw) if b.kind == "scalar" else None)
        return bool(key_a) and key_a == key_b
    if a.kind == "matrix" or b.kind == "matrix":
        if a.kind != b.kind or len(a.items) != len(b.items):
            return False
        return all(len(ra) == len(rb) and all(_equal(x, y, limits, deadline) for x, y in zip(ra, rb))
                   for ra, rb in zip(a.items, b.items))
    if a.kind == "scalar" or b.kind == "scalar":
        return False
    if len(a.items) != len(b.items):
        return False
    ordered = {"tuple", "interval"}
    if a.kind in ordered and b.kind in ordered:
        if a.brackets != b.brackets:
            return False
        return all(_equal(x, y, limits, deadline) for x, y in zip(a.items, b.items))
    if (a.kind in ordered) != (b.kind in ordered) and "list" not in (a.kind, b.kind):
        return False
    if a.kind in ordered or b.kind in ordered:
        # A bare list against a tuple: same order required.
        return all(_equal(x, y, limits, deadline) for x, y in zip(a.items, b.items))
    # sets, bare lists, unions: order-insensitive matching.
    unused = list(b.items)
    for x in a.items:
        for j, y in enumerate(unused):
            if _equal(x, y, limits, deadline):
                del unused[j]
                break
        else:
            return False
    return True


# Where an answer may be undefined (a division, a power, infinity): identical text is checked.
_MAY_BE_UNDEFINED = re.compile(r"[/÷^]|\\(?:frac|div|over)")


def _has_undefined(structure: _Structure) -> bool:
    if structure.kind == "undefined":
        return True
    if structure.kind == "matrix":
        return any(_has_undefined(cell) for row in structure.items for cell in row)
    if structure.kind in ("scalar", "text"):
        return False
    return any(_has_undefined(item) for item in structure.items)


def _undefined(text: str, limits: Limits) -> bool:
    """Is an answer (written the same on both sides) undefined somewhere (`0/0`, `(1, 1/0)`)?"""
    if not (("0" in text and _MAY_BE_UNDEFINED.search(text)) or "infty" in text or "∞" in text):
        return False
    try:
        normal = _normalise(text)
        if not normal or len(normal) > MAX_ANSWER_CHARS:
            return False
        return _has_undefined(_structure(normal, limits, Deadline(limits.time_budget)))
    except Exception:  # refusals keep the identical-text verdict
        return False


def answers_equivalent(gold: str, pred: str, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Do two final answers mean the same thing? See the module docstring for the policy.

    >>> answers_equivalent("\\\\frac{1}{2}", "0.5")
    True
    >>> answers_equivalent("\\\\{1, 2\\\\}", "\\\\{2, 1\\\\}")
    True

    Any input returns a bool within the time budget; never raises.
    """
    try:
        if not isinstance(gold, str) or not isinstance(pred, str):
            return False
        if gold.strip() == pred.strip():
            return bool(gold.strip()) and not _undefined(gold.strip(), limits)
        if len(gold) > MAX_ANSWER_CHARS * 5 or len(pred) > MAX_ANSWER_CHARS * 5:
            return False
        a, b = _normalise(gold), _normalise(pred)
        if not a or not b:
            return False
        if a == b:
            return not _undefined(a, limits)
        if _WORD_ANSWER.fullmatch(a) and _WORD_ANSWER.fullmatch(b):
            words_a, words_b = " ".join(a.lower().split()), " ".join(b.lower().split())
            if words_a == words_b and len(words_a) > 1:
                return True
            if words_a in _ANSWER_WORDS or words_b in _ANSWER_WORDS:
                return False
        if len(a) > MAX_ANSWER_CHARS or len(b) > MAX_ANSWER_CHARS:
            return False
        deadline = Deadline(limits.time_budget)
        return _equal(_structure(a, limits, deadline), _structure(b, limits, deadline), limits, deadline)
    except Exception:  # any input gets an answer; refusals and oddities are "not equivalent"
        return False


def is_correct(reference: str, text: str, limits: Limits = DEFAULT_LIMITS, *, stated: bool = False) -> bool:
    """Does the solution `text` reach the `reference` answer? The one outcome check of the
    toolkit (labels, rollouts, rewards, accuracy): its extracted final answer is equivalent.
    With `stated`, only an answer the text states counts (`extract_answer` without its
    last-number fallback): RL rewards use it, so that a response cut off after a computation
    whose result happens to be the reference is not paid for it.

    >>> is_correct("12", "3 * 4 = 12\\nThe answer is 12.")
    True
    >>> is_correct("12", "no answer here")
    False
    """
    predicted = extract_answer(text, fallback_last_number=not stated)
    return predicted is not None and answers_equivalent(reference, predicted, limits)
