"""A safe parser for arithmetic and algebra written as plain text or a LaTeX subset.

Text never runs as code: a regex tokenizer feeds a recursive-descent parser that builds a
small tree of tuples, and that tree is evaluated by our own code (exact rationals with
`fractions.Fraction`, complex floats for irrational values) or turned into sympy objects
through constructors (`sympy.Integer`, `sympy.Add`, ...), never from strings.

Grammar (loosest binding first)::

    relation := sum (("=" | "<" | ">" | "<=" | ">=" | "!=") sum)?
    sum      := product (("+" | "-" | "plus" | "minus") product)*
    product  := unary (("*" | "/" | "//" | "x" | "times" | "of" | implicit) unary)*
    unary    := ("-" | "+" | currency) unary | power
    power    := postfix ("^" unary)?
    postfix  := primary ("!" | "%" | unit word)*
    primary  := number | mixed number | variable | constant | function primary
              | "(" sum ")" | "[" sum "]" | "{" sum "}" | "|" sum "|"
              | \\frac{..}{..} | \\sqrt[..]{..}

Conventions: `x` between two numbers is multiplication (`12 x 5`), elsewhere a variable;
`2 1/2` and `2\\frac{1}{2}` are mixed numbers; a word after a quantity (`24 clips`,
`$10/hour`) is a unit and does not change the value; `50%` is `1/2`; `e` is Euler's number,
`i` the imaginary unit, `pi`/`\\pi`/`π` is pi.

Refusals (ParseError, or LimitError for limits) carry a message; see `verifiers.limits`.
"""

from __future__ import annotations

import cmath
import math
import random
import re
from fractions import Fraction
from typing import Any

from verifiers.limits import DEFAULT_LIMITS, Deadline, LimitError, Limits, ParseError

Token = tuple  # (kind, value, space_before): kind in num|op|word|fn|const|cur|other
Node = tuple  # ("num", Fraction) | ("sym", name) | ("const", name) | ("add", [(sign, node)])
#               | ("mul", [(is_multiply, node)]) | ("fdiv", a, b) | ("pow", a, b) | ("neg", a)
#               | ("fact", a) | ("fn", name, a) | ("root", index, a) | ("rel", op, a, b)

# A number as written in prose: thousands commas, decimals (`1,000.5`, `.5`); scientific
# notation is added where the full tokenizer reads numbers.
PLAIN_NUMBER = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"

# Whitespace is read with the token after it (possessively: it never becomes an `other`
# token), so each token costs one match (`op` before `word`: π is a letter).
_TOKEN_RE = re.compile(
    r"""
     (?P<ws>\s*+)
     (?:(?P<num>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:[eE][+-]?\d+(?![A-Za-z\d]))?|\.\d+)
    |(?P<op>\*\*|//|\.\.\.|<=|>=|!=|[-+*/^()\[\]{}!%=<>|,×·⋅∙÷−–√π≈≤≥≠∞°])
    |(?P<word>[^\W\d_]+_(?:\{[^{}]{1,24}\}|[^\W_]+)|log\d+(?!\d)|[^\W\d_]+)
    |(?P<cur>[$€£¥₹])
    |(?P<text>\\(?:text|textbf|textit|mathrm|mathit|mathbf|mbox|rm|operatorname)\s*\{(?P<textbody>[^{}]*)\})
    |(?P<cmd>\\[A-Za-z]+(?:_(?:\{[^{}]{1,24}\}|[^\W_]))?|\\.)
    |(?P<other>.))
    """,
    re.VERBOSE | re.DOTALL,
)

_OP_ALIASES = {
    "**": "^", "×": "*", "·": "*", "⋅": "*", "∙": "*", "÷": "/", "−": "-", "–": "-",
    "≤": "<=", "≥": ">=", "≠": "!=",
}
FUNCTIONS = frozenset(
    "sqrt sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln exp abs".split()
)
_CONSTANTS = {"pi": "pi", "infty": "oo", "infinity": "oo", "inf": "oo"}
GREEK_WORDS = frozenset(
    "alpha beta gamma delta epsilon theta lambda mu sigma tau phi omega rho".split()
)
_COMMANDS: dict[str, Token] = {
    "frac": ("op", "frac", False), "dfrac": ("op", "frac", False), "tfrac": ("op", "frac", False),
    "cfrac": ("op", "frac", False), "cdot": ("op", "*", False), "times": ("op", "*", False),
    "ast": ("op", "*", False), "div": ("op", "/", False), "pi": ("const", "pi", False),
    "infty": ("const", "oo", False), "le": ("op", "<=", False), "leq": ("op", "<=", False),
    "ge": ("op", ">=", False), "geq": ("op", ">=", False), "ne": ("op", "!=", False),
    "neq": ("op", "!=", False), "lt": ("op", "<", False), "gt": ("op", ">", False),
    "approx": ("op", "≈", False), "{": ("op", "{", False), "}": ("op", "}", False),
    "$": ("cur", "$", False), "%": ("op", "%", False), "circ": ("op", "°", False),
    "degree": ("op", "°", False), "cdots": ("op", "...", False), "ldots": ("op", "...", False),
    "dots": ("op", "...", False), "lvert": ("op", "|", False), "rvert": ("op", "|", False),
    "vert": ("op", "|", False),
}
# Layout-only commands: sizing of brackets and spacing.
_IGNORED_COMMANDS = frozenset(
    "left right big Big bigg Bigg bigl bigr Bigl Bigr displaystyle textstyle quad qquad , ! ; : >".split()
    + [" "]
)
_RELATIONS = frozenset(["=", "<", ">", "<=", ">=", "!=", "≈"])
_OPEN = {"(": ")", "[": "]", "{": "}"}
# Words that act as operators between two quantities in prose ("3 times 4", "1/2 of 30").
_WORD_TIMES = frozenset(["x", "X", "times", "of"])
# Prose words that never name a unit: a quantity's units end before them.
STOP_WORDS = frozenset(
    """a an and or but so then thus hence therefore because since is are was were be been being
    which that this these those the to for from in on at with as than it he she they we you i his
    her their its our has have had will would can could should if when there here what who whom
    total altogether makes make gives give means mean equals equal leaves left remaining more less
    after before into out over under up down all both each every""".split()
) - {"each", "left", "remaining"}

# Words after a quantity that change its value ("5 squared"): never a unit, so a claim that
# ends in one is not read as the bare number.
POWER_WORDS = frozenset(["squared", "cubed"])


_SIMPLE_OPS = {op: _OP_ALIASES.get(op, op) for op in
               ["**", "//", "...", "<=", ">=", "!=", *"-+*/^()[]{}!%=<>|,×·⋅∙÷−–≈≤≥≠°"]}


# Zero-width characters that only affect layout (soft hyphen, zero-width space / (non-)joiner,
# word joiner, byte-order mark): "1\u200b2" is the number 12 as displayed. Direction overrides
# (U+202A..U+202E) stay: they change what a reader sees, so such text is not checked.
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")


def strip_invisible(text: str) -> str:
    """Text without zero-width layout characters (see `_INVISIBLE`)."""
    return _INVISIBLE.sub("", text) if not text.isascii() else text


# Recipe style "2-1/2": a whole number, a hyphen and a proper fraction, no spaces, is the mixed
# number 2 1/2 as often as the subtraction 2 - 1/2.
_HYPHEN_MIXED = re.compile(r"(?<![\d./])(\d+)-([1-9]\d?)/([1-9]\d?)(?![\d/.])")


def space_hyphen_mixed_numbers(text: str) -> str:
    """`text` with every recipe-style `2-1/2` (proper fraction) written as the mixed number `2 1/2`."""
    return _HYPHEN_MIXED.sub(lambda m: f"{m[1]} {m[2]}/{m[3]}" if int(m[2]) < int(m[3]) else m[0], text)


# A logarithm with its base written in (`log_2`, `\log_{10}`, `log10`): read as one name,
# not as log of the base times the argument; no evaluator knows it, so its claims are None.
# A letter or word with a subscript (`x_1`, `a_{10}`, `S_n`) is one name too, never the bare
# subscript number ("x_1 = 3" was the false claim "1 = 3").
_BASED_LOG = re.compile(r"^(?:log|ln|lg)(?:_|\d)")


def tokenize(text: str) -> list[Token]:
    """Split text into tokens `(kind, value, space_before)`; never fails.

    kinds: num (literal text, commas kept), op (normalised operator), word (letters),
    fn (function name), const (pi | oo), cur (currency sign), other (anything else).
    Zero-width layout characters are dropped first (`strip_invisible`).
    """
    text = strip_invisible(text)
    tokens: list[Token] = []
    append = tokens.append
    simple_ops = _SIMPLE_OPS
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        space = m.end(1) > m.start()
        if kind == "word":
            value = m.group(kind)
            if value in FUNCTIONS:
                append(("fn", value, space))
            elif _BASED_LOG.match(value):
                append(("fn", value, space))  # a function no evaluator knows: never a claim's value
            elif value in _CONSTANTS:
                append(("const", _CONSTANTS[value], space))
            else:
                append(("word", value, space))
        elif kind == "num" or kind == "cur" or kind == "other":
            append((kind, m.group(kind), space))
        elif kind == "op":
            value = m.group(kind)
            if value in simple_ops:
                append(("op", simple_ops[value], space))
            elif value == "√":
                append(("fn", "sqrt", space))
            elif value == "π":
                append(("const", "pi", space))
            else:  # ∞
                append(("const", "oo", space))
        elif kind == "cmd":
            value = m.group(kind)
            name = value[1:]
            if name in _COMMANDS:
                k, v, _ = _COMMANDS[name]
                append((k, v, space))
            elif name in _IGNORED_COMMANDS:
                pass
            elif name in FUNCTIONS or _BASED_LOG.match(name):
                append(("fn", name, space))
            elif name in GREEK_WORDS:
                append(("word", name, space))
            else:
                append(("other", value, space))
        elif kind == "text":
            for word in m.group("textbody").split():
                append(("word", word, True))
        # kind None: only whitespace was left
    return tokens


def number_value(literal: str, limits: Limits = DEFAULT_LIMITS) -> Fraction:
    """Exact value of a number token's text (`1,000.5`, `.5`, `1.5e3`)."""
    if len(literal) > limits.max_digits:
        raise LimitError(f"number literal longer than {limits.max_digits} digits")
    if literal.isdigit():
        return int(literal)  # type: ignore[return-value]  -- ints are exact and much faster
    literal = literal.replace(",", "")
    if "e" in literal or "E" in literal:
        mantissa, _, exponent = literal.replace("E", "e").partition("e")
        if abs(int(exponent)) > limits.max_digits:
            raise LimitError("scientific-notation exponent too large")
        return Fraction(mantissa) * Fraction(10) ** int(exponent)
    whole, _, frac = literal.partition(".")
    return Fraction(int((whole or "0") + frac), 10 ** len(frac))


class _Parser:
    def __init__(self, tokens: list[Token], limits: Limits, deadline: Deadline, partial: bool = False,
                 slash_fractions: bool = True):
        self.toks = tokens
        self.partial = partial
        self.slash_fractions = slash_fractions
        self.pos = 0
        self.depth = 0
        self.limits = limits
        self.deadline = deadline

    # -- helpers -------------------------------------------------------------------------
    def peek(self, offset: int = 0) -> Token | None:
        i = self.pos + offset
        return self.toks[i] if i < len(self.toks) else None

    def is_op(self, value: str, offset: int = 0) -> bool:
        t = self.peek(offset)
        return t is not None and t[0] == "op" and t[1] == value

    def expect(self, value: str) -> None:
        if not self.is_op(value):
            t = self.peek()
            raise ParseError(f"expected {value!r} but found {t[1] if t else 'end of text'!r}")
        self.pos += 1

    def starts_operand(self, offset: int = 0) -> bool:
        t = self.peek(offset)
        if t is None:
            return False
        kind, value = t[0], t[1]
        if kind in ("num", "fn", "const", "cur"):
            return True
        if kind == "op":
            return value in _OPEN or value in ("frac", "|")
        return False

    def is_unit_word(self, t: Token | None) -> bool:
        # A word after a quantity that names what is counted ("24 clips", "5 hours").
        return (
            t is not None and t[0] == "word" and len(t[1]) > 1 and t[1] not in GREEK_WORDS
            and t[1].lower() not in STOP_WORDS
            and not (t[1] in _WORD_TIMES and self.word_times(t[1]))
            and t[1] not in ("plus", "minus") and t[1].lower() not in POWER_WORDS
            and not (t[1] in ("divided", "multiplied") and self.peek(1) is not None and self.peek(1)[1] == "by")
        )

    # -- grammar -------------------------------------------------------------------------
    def word_times(self, word: str) -> bool:
        """Is the word at the current position a multiplication ("12 x 5", "3 times 4", "50% of 8")?"""
        if not self.starts_operand(1):
            return False
        if word in ("x", "X"):
            return True
        if self.partial:
            # Right-hand sides of prose claims stop at word operators: "= 360 divided by 5 is".
            return False
        prev = self.toks[self.pos - 1] if self.pos > 0 else None
        if word == "of":
            return prev is not None and (prev[0] == "num" or (prev[0] == "op" and prev[1] in ("%", ")", "}")))
        return True

    def is_unit_here(self, t: Token | None) -> bool:
        # "2 apples", "2apples" are units; "2xy" (attached, short) is a product of variables.
        return self.is_unit_word(t) and (t[2] or len(t[1]) > 3)

    def is_variable_word(self, t: Token) -> bool:
        word = t[1]
        if not t[2] and len(word) == 1:
            return True  # "5A", "2x": attached to what precedes it
        if word.lower() in STOP_WORDS and (len(word) > 1 or word in ("a", "A", "I")):
            return False
        return len(word) == 1 or word in GREEK_WORDS or (not t[2] and len(word) <= 3)

    def parse_relation(self) -> Node:
        left = self.parse_sum()
        t = self.peek()
        if t is not None and t[0] == "op" and t[1] in _RELATIONS:
            self.pos += 1
            right = self.parse_sum()
            left = ("rel", t[1], left, right)
        return left

    def parse_sum(self) -> Node:
        terms = [(1, self.parse_product())]
        toks = self.toks
        while True:
            t = toks[self.pos] if self.pos < len(toks) else None
            if t is None:
                break
            if t[0] == "op" and t[1] in ("+", "-"):
                sign = 1 if t[1] == "+" else -1
            elif t[0] == "word" and t[1] in ("plus", "minus"):
                sign = 1 if t[1] == "plus" else -1
            else:
                break
            self.pos += 1
            terms.append((sign, self.parse_product()))
        return terms[0][1] if len(terms) == 1 else ("add", terms)

    def parse_product(self) -> Node:
        factors: list[tuple[bool, Node]] = [(True, self.parse_unary())]
        toks = self.toks
        while True:
            t = toks[self.pos] if self.pos < len(toks) else None
            if t is None:
                break
            kind, value = t[0], t[1]
            if kind == "op" and value == "*":
                self.pos += 1
                factors.append((True, self.parse_unary()))
            elif kind == "op" and value == "/":
                self.pos += 1
                t1, t2, t3 = self.peek(), self.peek(1), self.peek(2)
                if (self.slash_fractions and t1 and t2 and t3 and t1[0] == "num" and t1[2] and t1[1].isdigit() and t2[0] == "op"
                        and t2[1] == "/" and not t2[2] and t3[0] == "num" and not t3[2] and t3[1].isdigit()
                        and int(t3[1]) != 0):
                    # Prose "25 / 1/3": division by the fraction 1/3, not (25/1)/3.
                    self.pos += 3
                    factors.append((False, ("num", Fraction(int(t1[1]), int(t3[1])))))
                    continue
                if self.is_unit_word(self.peek()):
                    # "$10/hour": a rate's unit, not a division by a variable.
                    while self.is_unit_word(self.peek()):
                        self.pos += 1
                    continue
                factors.append((False, self.parse_unary()))
            elif kind == "op" and value == "//":
                self.pos += 1
                left = factors[0][1] if len(factors) == 1 else ("mul", factors)
                factors = [(True, ("fdiv", left, self.parse_unary()))]
            elif kind == "word" and value in _WORD_TIMES and self.word_times(value):
                self.pos += 1
                factors.append((True, self.parse_unary()))
            elif (kind == "word" and value in ("divided", "multiplied") and not self.partial
                  and self.peek(1) and self.peek(1)[1] == "by"):
                self.pos += 2
                factors.append((value == "multiplied", self.parse_unary()))
            elif self.starts_operand() or (kind == "word" and self.is_variable_word(t)):
                prev = self.toks[self.pos - 1]
                if prev[0] == "word" and self.is_unit_word(prev):
                    # "80% there because (8/10)": no implicit product across prose words.
                    if self.partial:
                        break
                    raise ParseError(f"unexpected {value!r} after the word {prev[1]!r}")
                if kind in ("num", "cur"):
                    if self.partial:
                        break
                    raise ParseError("two numbers side by side without an operator")
                factors.append((True, self.parse_unary()))
            else:
                break
        return factors[0][1] if len(factors) == 1 else ("mul", factors)

    def parse_unary(self) -> Node:
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise LimitError(f"nesting deeper than {self.limits.max_depth}")
        if (self.pos & 63) == 0:
            self.deadline.check()
        t = self.toks[self.pos] if self.pos < len(self.toks) else None
        if t is not None and t[0] == "op" and t[1] == "-":
            self.pos += 1
            node = ("neg", self.parse_unary())
        elif t is not None and ((t[0] == "op" and t[1] == "+") or t[0] == "cur"):
            self.pos += 1
            node = self.parse_unary()
        else:
            node = self.parse_power()
        self.depth -= 1
        return node

    def parse_power(self) -> Node:
        base = self.parse_postfix()
        t = self.toks[self.pos] if self.pos < len(self.toks) else None
        if t is not None and t[1] == "^" and t[0] == "op":
            self.pos += 1
            # Degrees: 30^\circ or 30^{\circ} are a unit, not a power.
            if self.is_op("°"):
                self.pos += 1
                return base
            if self.is_op("{") and self.is_op("°", 1) and self.is_op("}", 2):
                self.pos += 3
                return base
            return ("pow", base, self.parse_unary())
        return base

    def parse_postfix(self) -> Node:
        node = self.parse_primary()
        toks = self.toks
        while True:
            t = toks[self.pos] if self.pos < len(toks) else None
            if t is None:
                break
            if t[0] == "op" and t[1] == "!":
                self.pos += 1
                node = ("fact", node)
            elif t[0] == "op" and t[1] == "%":
                self.pos += 1
                node = ("mul", [(True, node), (False, ("num", 100))])
            elif t[0] == "op" and t[1] in ("°", "..."):
                self.pos += 1
            elif self.is_unit_here(t):
                self.pos += 1
                if self.is_op("^") and self.peek(1) and self.peek(1)[0] == "num":
                    self.pos += 2  # "5 cm^2": the unit's power
            else:
                break
        return node

    def parse_group(self) -> Node:
        """A LaTeX argument: `{...}`, or one token (`\\frac12` reads its digits one by one)."""
        t = self.peek()
        if t is None:
            raise ParseError("missing argument")
        if t[0] == "op" and t[1] == "{":
            self.pos += 1
            node = self.parse_sum()
            self.expect("}")
            return node
        if t[0] == "num" and len(t[1]) > 1 and t[1].isdigit():
            # \frac12 is 1/2: take one digit, leave the rest for the next argument.
            self.toks = self.toks[: self.pos] + [("num", t[1][0], t[2]), ("num", t[1][1:], False)] + self.toks[self.pos + 1 :]
        self.depth += 1
        node = self.parse_primary()
        self.depth -= 1
        return node

    def _mixed_number(self, whole: Fraction) -> Node | None:
        # "2 1/2" (spaced integer then integer/integer) or "2\frac{1}{2}" ("2 \frac{1}{2}" too:
        # LaTeX ignores the space, so it shows the same mixed number).
        p = self.peek
        t0 = p()
        if t0 is None or not ((t0[0] == "num" and t0[2]) or (t0[0] == "word" and t0[1] == "and")
                              or (t0[0] == "op" and t0[1] == "frac")):
            return None  # none of the three shapes below can start here
        # Prose "1 and 1/4", "5 and 2/3", "16 and (2/3)", "$3 and $1/3".
        t0 = p()
        if t0 and t0[0] == "word" and t0[1] == "and":
            k = 1
            if p(k) and p(k)[0] == "cur":
                k += 1
            paren = int(self.is_op("(", k))
            k += paren
            a, slash, b = p(k), p(k + 1), p(k + 2)
            if (a and slash and b and a[0] == "num" and a[1].isdigit() and slash[0] == "op" and slash[1] == "/"
                    and b[0] == "num" and b[1].isdigit() and (not paren or self.is_op(")", k + 3))
                    and 0 < int(a[1]) < int(b[1])):
                self.pos += k + 3 + paren
                return ("num", whole + Fraction(int(a[1]), int(b[1])))
        t1, t2, t3 = p(), p(1), p(2)
        if (t1 and t2 and t3 and t1[0] == "num" and t1[2] and t1[1].isdigit()
                and t2[0] == "op" and t2[1] == "/" and t3[0] == "num" and t3[1].isdigit()
                and not (p(3) and p(3)[0] == "op" and p(3)[1] in ("^", "!"))):
            num, den = int(t1[1]), int(t3[1])
            if 0 < num < den:
                self.pos += 3
                return ("num", whole + Fraction(num, den))
        if (t1 and t1[0] == "op" and t1[1] == "frac" and self.is_op("{", 1)
                and p(2) and p(2)[0] == "num" and p(2)[1].isdigit() and self.is_op("}", 3)
                and self.is_op("{", 4) and p(5) and p(5)[0] == "num" and p(5)[1].isdigit()
                and self.is_op("}", 6)):
            num, den = int(p(2)[1]), int(p(5)[1])
            if 0 < num < den:
                self.pos += 7
                return ("num", whole + Fraction(num, den))
        return None

    def parse_primary(self) -> Node:
        t = self.toks[self.pos] if self.pos < len(self.toks) else None
        if t is None:
            raise ParseError("expression ends too early")
        kind, value = t[0], t[1]
        self.pos += 1
        if kind == "num":
            whole = number_value(value, self.limits)
            if value.isdigit():
                mixed = self._mixed_number(whole)
                if mixed is not None:
                    return mixed
            return ("num", whole)
        if kind == "const":
            return ("const", value)
        if kind == "cur":
            return self.parse_primary()
        if kind == "word":
            return self._word(value, t[2])
        if kind == "fn":
            self.depth += 1
            if self.depth > self.limits.max_depth:
                raise LimitError(f"nesting deeper than {self.limits.max_depth}")
            if value == "sqrt" and self.is_op("["):
                self.pos += 1
                index = self.parse_sum()
                self.expect("]")
                node = ("root", index, self.parse_group() if self.is_op("{") else self.parse_power())
            elif self.is_op("{"):
                node = ("fn", value, self.parse_group())
            else:
                node = ("fn", value, self.parse_power())
            self.depth -= 1
            return node
        if kind == "op":
            if value in _OPEN:
                self.depth += 1
                if self.depth > self.limits.max_depth:
                    raise LimitError(f"nesting deeper than {self.limits.max_depth}")
                node = self.parse_sum()
                self.expect(_OPEN[value])
                self.depth -= 1
                return node
            if value == "|":
                self.depth += 1
                if self.depth > self.limits.max_depth:
                    raise LimitError(f"nesting deeper than {self.limits.max_depth}")
                node = ("fn", "abs", self.parse_sum())
                self.expect("|")
                self.depth -= 1
                return node
            if value == "frac":
                num = self.parse_group()
                den = self.parse_group()
                return ("mul", [(True, num), (False, den)])
        raise ParseError(f"unexpected {value!r}")

    def _word(self, word: str, space_before: bool) -> Node:
        if word == "e":
            return ("const", "E")
        if word == "i":
            return ("const", "I")
        if len(word) == 1 or word in GREEK_WORDS:
            return ("sym", word)
        if len(word) <= 3 and word.isascii() and word.isalpha():
            # "xy" or "2ab": a product of one-letter variables.
            return ("mul", [(True, self._word(ch, False)) for ch in word])
        raise ParseError(f"unknown word {word!r}")


def parse_tokens(tokens: list[Token], limits: Limits = DEFAULT_LIMITS, deadline: Deadline | None = None,
                 *, relation: bool = False, slash_fractions: bool = True) -> Node:
    """Parse a whole token list into a tree; ParseError/LimitError if it is not one expression.

    slash_fractions: read prose `25 / 1/3` as 25 divided by the fraction 1/3 (the default);
    False gives the left-to-right reading (25/1)/3.
    """
    if not tokens:
        raise ParseError("empty expression")
    parser = _Parser(tokens, limits, deadline or Deadline(limits.time_budget), slash_fractions=slash_fractions)
    node = parser.parse_relation() if relation else parser.parse_sum()
    if parser.pos != len(parser.toks):
        raise ParseError(f"unexpected {parser.toks[parser.pos][1]!r}")
    return node


def parse_prefix(tokens: list[Token], start: int, limits: Limits = DEFAULT_LIMITS,
                 deadline: Deadline | None = None) -> tuple[Node, int]:
    """Parse the longest expression starting at `tokens[start]`; returns (tree, end index).

    Used on prose: "= 24 clips in May" reads `24` (units skipped) and stops before the next
    thing that cannot continue the expression.
    """
    parser = _Parser(tokens, limits, deadline or Deadline(limits.time_budget), partial=True)
    parser.pos = start
    node = parser.parse_sum()
    return node, parser.pos


def parse_tree(text: str, limits: Limits = DEFAULT_LIMITS, deadline: Deadline | None = None,
               *, relation: bool = True) -> Node:
    """Text -> expression tree (see module docstring), with every limit applied."""
    if not isinstance(text, str):
        raise ParseError(f"expected a string, got {type(text).__name__}")
    if len(text) > limits.max_chars:
        raise LimitError(f"text longer than {limits.max_chars} characters")
    return parse_tokens(tokenize(text), limits, deadline, relation=relation)


# -- plain arithmetic: the fast path ----------------------------------------------------------

_ARITHMETIC_OPS = "+-−*/×÷xX()"
_ARITHMETIC_TEXT = re.compile(rf"(?:\s*(?:\$?(?:{PLAIN_NUMBER})|[{_ARITHMETIC_OPS}]))*\s*")
_ARITHMETIC_TOKEN = re.compile(rf"\$?({PLAIN_NUMBER})|([{_ARITHMETIC_OPS}])")
_LONE_NUMBER = re.compile(rf"\s*\$?({PLAIN_NUMBER})\s*")
_ADD_OPS = {"+": 1, "-": -1, "−": -1}
_MULTIPLY_OPS = {"*": True, "×": True, "x": True, "X": True, "/": False, "÷": False}


def evaluate_arithmetic(text: str, limits: Limits = DEFAULT_LIMITS) -> Fraction | int | None:
    """Exact value of plain arithmetic, or None when the text is anything else.

    Plain arithmetic is numbers (`1,000.5`, `$12`), `+ - * / x × ÷`, unary minus and
    parentheses, read with the usual precedence, left to right; it is the overwhelmingly
    common shape of calculator annotations and prose equations, and this reads it without
    building a tree. Anything beyond it (mixed numbers, `25 / 1/3`, `%`, words, powers) gives
    None and is left to the full grammar, as do refusals: digit and size limits apply here too.
    """
    if len(text) > limits.max_chars:
        return None
    number = _LONE_NUMBER.fullmatch(text)
    if number is not None:  # the usual right-hand side
        try:
            return number_value(number.group(1), limits)
        except LimitError:
            return None
    if not _ARITHMETIC_TEXT.fullmatch(text):
        return None
    try:
        return _evaluate_arithmetic_tokens(_ARITHMETIC_TOKEN.findall(text), limits)
    except (ParseError, ZeroDivisionError):
        return None


def evaluate_plain_chain(text: str, limits: Limits = DEFAULT_LIMITS) -> Fraction | int | None:
    """`evaluate_arithmetic` for text already known to be numbers joined by `+ - * / x × ÷`
    (no signs or parentheses; a prose claim's left side): the same value, without checking
    the shape again. None on refusals (digit and size limits) and division by zero."""
    if len(text) > limits.max_chars:
        return None
    try:
        return _evaluate_arithmetic_tokens(_ARITHMETIC_TOKEN.findall(text), limits)
    except (ParseError, ZeroDivisionError):
        return None


def _evaluate_arithmetic_tokens(tokens: list[tuple[str, str]], limits: Limits) -> Fraction | int:
    """One left-to-right pass: `total` sums finished terms, `term` multiplies the current one;
    an opening parenthesis pushes both (and the pending operators) on a stack."""
    stack: list[tuple] = []
    total, add_sign = 0, 1  # the sum so far and the sign of the term being built
    term, multiply = None, True  # the product so far and how the next factor joins it
    negate = tokens_after_x = False
    expect_operand = True
    for literal, op in tokens:
        if expect_operand:
            if literal:
                if len(literal) > limits.max_digits:
                    raise LimitError(f"number literal longer than {limits.max_digits} digits")
                value = int(literal) if literal.isdigit() else number_value(literal, limits)
            elif op in ("-", "−"):
                if multiply and tokens_after_x:
                    raise ParseError("'x' before a sign")  # the full grammar reads a variable x
                negate = not negate
                continue
            elif op == "(":
                if len(stack) >= limits.max_depth:
                    raise LimitError(f"nesting deeper than {limits.max_depth}")
                stack.append((total, add_sign, term, multiply, negate))
                total, add_sign, term, multiply, negate = 0, 1, None, True, False
                continue
            else:
                raise ParseError(f"unexpected {op!r}")
        elif op == ")":
            if not stack:
                raise ParseError("unbalanced parentheses")
            value = total + term if add_sign > 0 else total - term
            total, add_sign, term, multiply, negate = stack.pop()
        else:
            if op in _ADD_OPS:
                total = _check_size(total + term if add_sign > 0 else total - term, limits)
                add_sign, term = _ADD_OPS[op], None
            elif op in _MULTIPLY_OPS:
                multiply = _MULTIPLY_OPS[op]
            else:
                raise ParseError("two quantities without an operator")
            tokens_after_x = op in ("x", "X")
            expect_operand = True
            continue
        # an operand (a number or a closed parenthesis) joins the current term
        if negate:
            value, negate = -value, False
        if term is None:
            term = value
        elif multiply:
            term = _check_size(term * value, limits)
        elif type(term) is int and type(value) is int:
            quotient, remainder = divmod(term, value)
            term = quotient if remainder == 0 else Fraction(term, value)
        else:
            term = _check_size(Fraction(term) / value, limits)
        expect_operand = False
    if expect_operand or stack:
        raise ParseError("incomplete expression")
    return total + term if add_sign > 0 else total - term


# -- exact evaluation ------------------------------------------------------------------------


class NotExact(Exception):
    """The value is not a rational number (or contains variables)."""


def _check_size(value: Fraction, limits: Limits) -> Fraction:
    bits = limits.max_bits
    if value.numerator.bit_length() > bits or value.denominator.bit_length() > bits:
        raise LimitError(f"intermediate result longer than {limits.max_digits} digits")
    return value


def _exact_root(value: Fraction, n: int) -> Fraction:
    if n <= 0 or (value < 0 and n % 2 == 0):
        raise NotExact("no rational root")
    sign = -1 if value < 0 else 1
    out = []
    for part in (abs(value.numerator), value.denominator):
        r = round(part ** (1.0 / n)) if part < 2**1000 else None
        if r is None:
            raise NotExact("root too large to check")
        for cand in (r - 1, r, r + 1):
            if cand >= 0 and cand**n == part:
                out.append(cand)
                break
        else:
            raise NotExact("no rational root")
    return Fraction(sign * out[0], out[1])


def evaluate_exact(node: Node, limits: Limits = DEFAULT_LIMITS, deadline: Deadline | None = None) -> Fraction:
    """Exact rational value of a tree without variables.

    Raises NotExact (irrational, variables, infinity), ZeroDivisionError, LimitError.
    """
    deadline = deadline or Deadline(limits.time_budget)
    value = _exact(node, limits, deadline)
    return value if type(value) is Fraction else Fraction(value)


def _exact(node: Node, limits: Limits, deadline: Deadline) -> Fraction:
    tag = node[0]
    if tag == "num":
        return node[1]
    if tag == "add":
        deadline.check()
        total = 0
        for sign, term in node[1]:
            value = _exact(term, limits, deadline)
            total = total + value if sign > 0 else total - value
        return _check_size(total, limits)
    if tag == "mul":
        deadline.check()
        total = 1
        for is_mul, factor in node[1]:
            value = _exact(factor, limits, deadline)
            if is_mul:
                total = total * value
            elif type(total) is int and type(value) is int:
                if value == 0:
                    raise ZeroDivisionError("division by zero")
                quotient, remainder = divmod(total, value)
                total = quotient if remainder == 0 else Fraction(total, value)
            else:
                total = total / value
            _check_size(total, limits)
        return total
    if tag == "neg":
        return -_exact(node[1], limits, deadline)
    if tag == "pow":
        base = _exact(node[1], limits, deadline)
        exponent = _exact(node[2], limits, deadline)
        return _exact_pow(base, exponent, limits)
    if tag == "fdiv":
        a, b = _exact(node[1], limits, deadline), _exact(node[2], limits, deadline)
        return int(a // b)
    if tag == "fact":
        n = _exact(node[1], limits, deadline)
        if n.denominator != 1 or n < 0:
            raise NotExact("factorial of a non-natural number")
        if n > limits.max_factorial:
            raise LimitError(f"factorial of more than {limits.max_factorial}")
        return math.factorial(int(n))
    if tag == "fn":
        if node[1] == "sqrt":
            return _exact_root(_exact(node[2], limits, deadline), 2)
        if node[1] == "abs":
            return abs(_exact(node[2], limits, deadline))
        raise NotExact(f"{node[1]} is not evaluated exactly")
    if tag == "root":
        index = _exact(node[1], limits, deadline)
        if index.denominator != 1 or not 1 <= index <= 64:
            raise NotExact("unsupported root index")
        return _exact_root(_exact(node[2], limits, deadline), int(index))
    raise NotExact(f"{tag} has no rational value")


def _exact_pow(base: Fraction, exponent: Fraction, limits: Limits) -> Fraction:
    base, exponent = Fraction(base), Fraction(exponent)
    if base in (0, 1) and exponent > 0:
        return base
    if base == -1 and exponent.denominator == 1:
        return Fraction(1 if exponent.numerator % 2 == 0 else -1)
    if base == 0 and exponent <= 0:
        raise ZeroDivisionError("0 to a non-positive power")
    if abs(exponent) > limits.max_exponent:
        raise LimitError(f"exponent larger than {limits.max_exponent}")
    size = max(abs(base.numerator).bit_length(), base.denominator.bit_length())
    if size * abs(exponent) > limits.max_bits:
        raise LimitError(f"power result longer than {limits.max_digits} digits")
    if exponent.denominator == 1:
        return base ** int(exponent)
    root = _exact_root(base, exponent.denominator)
    return root ** exponent.numerator


# -- approximate (complex) evaluation ---------------------------------------------------------

_CONST_VALUES = {"pi": math.pi, "E": math.e, "I": 1j, "oo": math.inf}
_COMPLEX_FUNCS = {
    "sqrt": cmath.sqrt, "sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan,
    "cot": lambda z: 1 / cmath.tan(z), "sec": lambda z: 1 / cmath.cos(z), "csc": lambda z: 1 / cmath.sin(z),
    "arcsin": cmath.asin, "arccos": cmath.acos, "arctan": cmath.atan, "sinh": cmath.sinh,
    "cosh": cmath.cosh, "tanh": cmath.tanh, "log": cmath.log, "ln": cmath.log, "exp": cmath.exp,
    "abs": abs,
}


def evaluate_complex(node: Node, env: dict[str, complex] | None = None, limits: Limits = DEFAULT_LIMITS,
                     deadline: Deadline | None = None) -> complex:
    """Floating-point value of a tree, variables taken from `env`.

    Raises NotExact for an unknown variable, ArithmeticError/ValueError on overflow or a
    pole, LimitError on limits.
    """
    return complex(_approx(node, env or {}, limits, deadline or Deadline(limits.time_budget)))


def functions_equal(a: Node, b: Node, limits: Limits = DEFAULT_LIMITS, deadline: Deadline | None = None,
                    points: int = 5) -> bool | None:
    """Are two trees equal as functions of their variables? Compared at `points` seeded random
    complex points (the same points every call): False at the first point where they differ, True
    when at least 3 points (or all, if fewer) agree, None when too few points could be evaluated
    (poles, overflow, a variable with no value). The one expression comparer of answer
    equivalence and step transitions."""
    deadline = deadline or Deadline(limits.time_budget)
    names = sorted(free_symbols(a) | free_symbols(b))
    rng = random.Random(7)
    agreed = 0
    for _ in range(points):
        env = {name: complex(rng.uniform(0.3, 2.0), rng.uniform(-1.0, 1.0)) for name in names}
        try:
            va = evaluate_complex(a, env, limits, deadline)
            vb = evaluate_complex(b, env, limits, deadline)
        except (NotExact, ArithmeticError, ValueError, KeyError, TypeError):
            continue
        if va != va or vb != vb:  # NaN
            continue
        if abs(va - vb) > 1e-8 * max(1.0, abs(va), abs(vb)):
            return False
        agreed += 1
    return True if agreed >= min(3, points) else None


def _approx(node: Node, env: dict, limits: Limits, deadline: Deadline) -> complex:
    tag = node[0]
    if tag == "num":
        return complex(float(node[1]))
    if tag == "sym":
        if node[1] not in env:
            raise NotExact(f"free variable {node[1]}")
        return env[node[1]]
    if tag == "const":
        return _CONST_VALUES[node[1]]
    if tag == "add":
        deadline.check()
        total = 0j
        for sign, term in node[1]:
            value = _approx(term, env, limits, deadline)
            total = total + value if sign > 0 else total - value
        return total
    if tag == "mul":
        deadline.check()
        total = 1 + 0j
        for is_mul, factor in node[1]:
            value = _approx(factor, env, limits, deadline)
            total = total * value if is_mul else total / value
        return total
    if tag == "neg":
        return -_approx(node[1], env, limits, deadline)
    if tag == "pow":
        base = _approx(node[1], env, limits, deadline)
        exponent = _approx(node[2], env, limits, deadline)
        if abs(exponent) > limits.max_exponent and abs(base) not in (0.0, 1.0):
            raise LimitError(f"exponent larger than {limits.max_exponent}")
        if exponent.imag == 0 and exponent.real == int(exponent.real) and base.imag == 0:
            return complex(base.real ** int(exponent.real))
        if base.imag == 0 and base.real > 0 and exponent.imag == 0:
            return complex(base.real**exponent.real)
        return base**exponent
    if tag == "fdiv":
        a, b = _approx(node[1], env, limits, deadline), _approx(node[2], env, limits, deadline)
        return complex(math.floor(a.real / b.real))
    if tag == "fact":
        n = _approx(node[1], env, limits, deadline)
        if n.imag != 0 or n.real < 0 or n.real > limits.max_factorial:
            raise LimitError("factorial out of range")
        return complex(math.gamma(n.real + 1))
    if tag == "fn":
        return complex(_COMPLEX_FUNCS[node[1]](_approx(node[2], env, limits, deadline)))
    if tag == "root":
        index = _approx(node[1], env, limits, deadline)
        value = _approx(node[2], env, limits, deadline)
        if value.imag == 0 and value.real < 0 and index.real % 2 == 1:
            return complex(-((-value.real) ** (1 / index.real)))
        return value ** (1 / index)
    raise NotExact(f"{tag} has no numeric value")


def free_symbols(node: Node) -> set[str]:
    """Names of the variables in a tree."""
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        tag = n[0]
        if tag == "sym":
            out.add(n[1])
        elif tag in ("add", "mul"):
            stack.extend(child for _, child in n[1])
        elif tag in ("neg", "fact"):
            stack.append(n[1])
        elif tag in ("pow", "fdiv", "root"):
            stack.extend((n[1], n[2]))
        elif tag == "fn":
            stack.append(n[2])
        elif tag == "rel":
            stack.extend((n[2], n[3]))
    return out


# -- sympy objects ---------------------------------------------------------------------------


def to_sympy(node: Node, limits: Limits = DEFAULT_LIMITS, deadline: Deadline | None = None) -> Any:
    """Build the sympy object for a tree with sympy constructors (never from a string)."""
    import sympy

    deadline = deadline or Deadline(limits.time_budget)
    return _to_sympy(node, sympy, limits, deadline)


def _to_sympy(node: Node, sp: Any, limits: Limits, deadline: Deadline) -> Any:
    tag = node[0]
    deadline.check()
    if tag != "rel" and not free_symbols(node):
        try:
            value = _exact(node, limits, deadline)
            return sp.Rational(value.numerator, value.denominator)
        except NotExact:
            pass
        except ZeroDivisionError:
            return sp.zoo
    if tag == "num":
        return sp.Rational(node[1].numerator, node[1].denominator)
    if tag == "sym":
        return sp.Symbol(node[1])
    if tag == "const":
        return {"pi": sp.pi, "E": sp.E, "I": sp.I, "oo": sp.oo}[node[1]]
    if tag == "add":
        return sp.Add(*[_to_sympy(t, sp, limits, deadline) * (1 if s > 0 else -1) for s, t in node[1]])
    if tag == "mul":
        return sp.Mul(*[
            _to_sympy(f, sp, limits, deadline) if m else sp.Pow(_to_sympy(f, sp, limits, deadline), -1)
            for m, f in node[1]
        ])
    if tag == "neg":
        return -_to_sympy(node[1], sp, limits, deadline)
    if tag == "pow":
        base = _to_sympy(node[1], sp, limits, deadline)
        exponent = _to_sympy(node[2], sp, limits, deadline)
        if exponent.is_number and base.is_number and base not in (0, 1, -1):
            try:
                too_big = abs(complex(exponent.evalf(15))) > limits.max_exponent
            except (TypeError, ValueError):
                too_big = True
            if too_big:
                raise LimitError(f"exponent larger than {limits.max_exponent}")
        return sp.Pow(base, exponent)
    if tag == "fdiv":
        return sp.floor(_to_sympy(node[1], sp, limits, deadline) / _to_sympy(node[2], sp, limits, deadline))
    if tag == "fact":
        arg = _to_sympy(node[1], sp, limits, deadline)
        if arg.is_number:
            raise LimitError("factorial of this number is refused")
        return sp.factorial(arg)
    if tag == "fn":
        arg = _to_sympy(node[2], sp, limits, deadline)
        name = {"ln": "log", "arcsin": "asin", "arccos": "acos", "arctan": "atan", "abs": "Abs"}.get(node[1], node[1])
        return getattr(sp, name)(arg)
    if tag == "root":
        return sp.root(_to_sympy(node[2], sp, limits, deadline), _to_sympy(node[1], sp, limits, deadline))
    if tag == "rel":
        left = _to_sympy(node[2], sp, limits, deadline)
        right = _to_sympy(node[3], sp, limits, deadline)
        cls = {"=": sp.Eq, "≈": sp.Eq, "<": sp.Lt, ">": sp.Gt, "<=": sp.Le, ">=": sp.Ge, "!=": sp.Ne}[node[1]]
        return cls(left, right, evaluate=False)
    raise ParseError(f"cannot convert {tag}")


def parse_expression(text: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Text (plain or LaTeX subset) -> sympy expression, or a relation for `a = b`, `a < b`.

    >>> parse_expression("\\\\frac{1}{2} + 2 1/2")
    3
    Raises ParseError (or its subclass LimitError) with a message when refused.
    """
    import sympy  # noqa: F401  -- imported before the clock starts: the first import is slow

    deadline = Deadline(limits.time_budget)
    return to_sympy(parse_tree(text, limits, deadline), limits, deadline)
