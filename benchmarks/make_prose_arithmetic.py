"""Write the prose-arithmetic corpora used by `benchmarks/verifier_false_alarms.py`:

- `benchmarks/data/prose_arithmetic_true.jsonl`: TRUE steps that state arithmetic in words
  (twice / double / triple / half of, a third of, the sum / product / difference / average of,
  more / less / fewer than, p% of / more / less than, N times M, N times as many as), in
  GSM8K-like sentences with units, `$` and decimals: hand-written lines first, then lines from
  sentence frames with seeded random numbers, each value computed exactly with Fractions;
- `benchmarks/data/prose_arithmetic_false.jsonl`: FALSE steps, each with the mistake made
  (`5 less than 20 = 25`: the comparison read the wrong way round; `20% more than 50 = 70`:
  the percentage added as a number; plain wrong results).

    python benchmarks/make_prose_arithmetic.py    # rewrites both files (deterministic)

Every generated value is exact: a frame only uses numbers whose result is a whole number or
has at most two decimals, written as a person would (`$3.75`, `7.5 miles`, `18`).
"""

from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"

NAMES = ["Mia", "Tom", "Aisha", "Carlos", "Wendy", "Raj", "Lena", "Omar", "Jade", "Ben", "Sofia", "Kenji"]
ITEMS = ["apples", "stickers", "marbles", "cookies", "books", "pencils", "cards", "eggs", "shells", "cupcakes"]

HAND_WRITTEN_TRUE = [
    ("twice", "So, twice 7 = 14."),
    ("twice", "Ann has twice as many apples as Ben, so she has twice 7 = 14 apples."),
    ("double", "He spent double $12.50 = $25 on lunch."),
    ("double", "On Sunday she walked double 3.5 = 7 miles."),
    ("triple", "The recipe needs triple 2 cups = 6 cups of flour."),
    ("thrice", "The bus ran thrice 15 = 45 minutes late this week."),
    ("quadruple", "The new tank holds quadruple 12 = 48 gallons."),
    ("half", "Half of 36 students = 18 students went home."),
    ("half", "Half of the 36 students = 18 students went home."),
    ("half", "She paid half of $7.50 = $3.75 for the ticket."),
    ("fraction", "He ate a third of 12 = 4 slices."),
    ("fraction", "Two-thirds of 27 = 18 marbles are blue."),
    ("fraction", "Three quarters of $40 = $30 went to rent."),
    ("fraction", "One fifth of 45 = 9 of the cupcakes had sprinkles."),
    ("sum", "Together they paid the sum of $4.50 and $3.25 = $7.75."),
    ("sum", "The total of 3, 4 and 5 = 12 hours."),
    ("sum", "The sum of 12 kg and 8 kg = 20 kg."),
    ("sum", "In all they picked a total of 120 + 108 + 100 = 328 berries."),
    ("product", "The product of 12 and 3 = 36 eggs."),
    ("product", "The area is the product of 8 and 6 = 48 square feet."),
    ("difference", "The difference between 45 and 18 = 27 minutes."),
    ("difference", "The difference of $90 and $65 = $25."),
    ("average", "The average of 4 and 6 = 5 points."),
    ("average", "Her average is the average of 80, 90 and 100 = 90 points."),
    ("quotient", "The quotient of 48 and 6 = 8 boxes."),
    ("more_than", "Tom read 8 more than 13 = 21 pages."),
    ("more_than", "He earns $15 more than $120 = $135 per week."),
    ("more_than", "The bike is $15 more expensive than $120 = $135."),
    ("less_than", "She has 5 less than 20 = 15 stickers left."),
    ("less_than", "The second box weighs 2.5 pounds less than 10 pounds = 7.5 pounds."),
    ("fewer_than", "Raj has 4 fewer than 15 = 11 cards."),
    ("comparative", "Her brother is 3 years older than 9 = 12 years."),
    ("comparative", "The oak is 2.5 feet taller than 6 feet = 8.5 feet."),
    ("comparative", "The red pen is $0.25 cheaper than $1.50 = $1.25."),
    ("percent_more", "The new price is 15% more than $40 = $46."),
    ("percent_more", "Her rent went up to 10 percent more than $1,200 = $1,320."),
    ("percent_less", "After the sale it costs 30% less than $70 = $49."),
    ("percent_less", "It costs 25% less than 80 = 60 dollars."),
    ("percent_less", "The pen is 20% cheaper than $2.50 = $2."),
    ("percent_of", "She saves 10% of $250 = $25 each month."),
    ("percent_of", "20 percent of 50 = 10 of the seeds sprouted."),
    ("times", "three times 4 = 12 cookies"),
    ("times", "Jim has 4 times as many cards as Sue, so 4 times 9 = 36 cards."),
    ("times", "A pack costs 2.5 times $4 = $10."),
    ("times_as_many", "She ran 3 times as far as 2.5 miles = 7.5 miles."),
    ("times_as_many", "She reads 3 times as many pages as 12 = 36 pages."),
    ("times_as_many", "It is half as long as 14 inches = 7 inches."),
    ("times_as_many", "She is twice as old as 7 = 14 years."),
]

# Harder phrasings a person also writes, kept so the measurement is not only of phrases the checker
# was written for: possessives and pronouns between the words and the number, nested phrases,
# "+ 20%" meaning a 20% increase, number words, dozens, rounded thirds.
HAND_WRITTEN_TRUE_HARD = [
    ("twice", "twice as many apples as Ben's 7 = 14"),
    ("twice", "twice the 7 = 14 apples"),
    ("twice", "She has 7 apples and twice that, 14 = 14"),
    ("twice", "twice 7, or 2 x 7 = 14"),
    ("twice", "7 doubled = 14"),
    ("half", "half of his 36 cards = 18 cards"),
    ("half", "If 20% of the 50 students = 10 students are absent, 40 are present."),
    ("half", "a half of 10 = 5"),
    ("fraction", "one-half of 10 = 5"),
    ("fraction", "three-fourths of 20 = 15"),
    ("fraction", "a third of 10 = 3.33 liters"),
    ("fraction", "two-thirds of 10 = 6.67 cups"),
    ("nested", "5 less than twice 10 = 15"),
    ("nested", "3 more than half of 10 = 8"),
    ("nested", "2 less than 3 times 4 = 10"),
    ("nested", "twice 7 + 1 = 15"),
    ("percent_change", "10% off $50 = $45"),
    ("percent_change", "a 20% discount on $50 = $40"),
    ("percent_change", "$50 + 20% = $60"),
    ("percent_change", "$50 - 20% = $40"),
    ("percent_change", "He gets a 10% raise, so $2000 + 10% = $2200"),
    ("percent_change", "an increase of 20% on 50 = 60"),
    ("percent_change", "The price rose by 20% from $50 = $60"),
    ("percent_change", "Last year she earned $500, and this year 20% more than that = $600."),
    ("sum", "the sum of three and 4 = 7"),
    ("sum", "the total of her 3 and his 4 = 7"),
    ("sum", "The sum of the 3 numbers 4, 5 and 6 = 15"),
    ("sum", "the average of 3, 4 and 4 = 3.67 points"),
    ("more_than", "five more than 10 = 15"),
    ("more_than", "10 more apples than 5 = 15"),
    ("more_than", "He has 12 marbles, 5 more than 7 = 12."),
    ("times", "two times 6 = 12"),
    ("times", "5 dozen = 60 eggs"),
    ("times", "6 sets x every 2 hours = 12 hours"),
]

HAND_WRITTEN_FALSE = [
    ("twice", "twice 7 = 15", "twice 7 is 14"),
    ("twice", "So she has twice 8 = 18 apples.", "twice 8 is 16"),
    ("double", "double 6 = 13", "double 6 is 12"),
    ("triple", "He needs triple 4 cups = 7 cups of flour.", "added 3 instead of tripling"),
    ("half", "half of 8 = 5", "half of 8 is 4"),
    ("half", "Half of the 36 students = 16 students went home.", "half of 36 is 18"),
    ("fraction", "Two-thirds of 27 = 9 marbles are blue.", "took a third, not two-thirds"),
    ("fraction", "A quarter of $40 = $12.", "a quarter of 40 is 10"),
    ("sum", "the sum of 3 and 4 = 8", "3 + 4 is 7"),
    ("sum", "Together they paid the sum of $4.50 and $3.25 = $7.25.", "4.50 + 3.25 is 7.75"),
    ("product", "The product of 3 and 4 = 7.", "added instead of multiplying"),
    ("product", "The product of 6 and 7 = 48 eggs.", "6 x 7 is 42"),
    ("difference", "The difference between 45 and 18 = 37 minutes.", "45 - 18 is 27"),
    ("average", "The average of 4 and 8 = 12 points.", "the sum, not the average"),
    ("quotient", "The quotient of 48 and 6 = 6 boxes.", "48 / 6 is 8"),
    ("less_than", "5 less than 20 = 25", "added instead of subtracting"),
    ("less_than", "She has 5 less than 20 = 14 stickers left.", "20 - 5 is 15"),
    ("more_than", "3 more than 4 = 8", "3 + 4 is 7"),
    ("more_than", "He earns $15 more than $120 = $105 per week.", "subtracted instead of adding"),
    ("fewer_than", "Raj has 4 fewer than 15 = 19 cards.", "added instead of subtracting"),
    ("comparative", "Her brother is 3 years younger than 9 = 12 years.", "younger: 9 - 3 is 6"),
    ("comparative", "Her brother is 3 years older than 9 = 6 years.", "older: 9 + 3 is 12"),
    ("percent_more", "20% more than 50 = 70", "added 20 instead of 20%"),
    ("percent_more", "The new price is 15% more than $40 = $55.", "added $15 instead of 15%"),
    ("percent_less", "It costs 25% less than 80 = 55", "subtracted 25 instead of 25%"),
    ("percent_less", "After the sale it costs 30% less than $70 = $21.", "the discount, not the price"),
    ("percent_of", "10% of 50 = 500", "multiplied by 10 instead of taking 10%"),
    ("percent_of", "She saves 10% of $250 = $2,500 each month.", "multiplied by 10 instead of taking 10%"),
    ("percent_of", "20 percent of 50 = 1000", "multiplied by 20 instead of taking 20%"),
    ("times", "three times 4 = 7 cookies", "added instead of multiplying"),
    ("times_as_many", "She reads 3 times as many pages as 12 = 15 pages.", "added 3 instead of multiplying"),
    ("times_as_many", "She is twice as old as 7 = 9 years.", "added 2 instead of doubling"),
    ("division_by_zero", "6 / 0 = 0", "division by zero is undefined"),
    # harder ones (phrasings the checker may leave unchecked)
    ("twice", "twice the 7 = 15 apples", "twice 7 is 14"),
    ("half", "half of his 36 cards = 16 cards", "half of 36 is 18"),
    ("nested", "5 less than twice 10 = 25", "twice 10 less 5 is 15"),
    ("nested", "3 more than half of 10 = 13", "half of 10 plus 3 is 8"),
    ("percent_change", "$50 + 20% = $70", "a 20% increase on $50 is $60"),
    ("percent_change", "10% off $50 = $40", "10% off $50 is $45"),
    ("sum", "the sum of three and 4 = 8", "3 + 4 is 7"),
    ("more_than", "five more than 10 = 16", "10 + 5 is 15"),
    ("times", "5 dozen = 50 eggs", "5 dozen is 60"),
    ("percent_of", "If 20% of the 50 students = 20 students are absent", "20% of 50 is 10"),
]


def show(value: Fraction, money: bool = False) -> str:
    """A person's way to write an exact value: `18`, `7.5`, `3.75`, money `$12.50`."""
    if value.denominator == 1:
        return f"{value.numerator:,}" if value >= 10_000 else str(value.numerator)
    assert (value * 100).denominator == 1, value
    text = f"{float(value):.2f}"
    return text if money else text.rstrip("0")


def money(value: Fraction) -> str:
    return "$" + show(value, money=True)


def decimal_choice(rng: random.Random, low: int, high: int, halves: bool = True) -> Fraction:
    """A whole number, or (sometimes) one ending in .5 / .25 / .75."""
    whole = Fraction(rng.randint(low, high))
    if halves and rng.random() < 0.3:
        whole += rng.choice([Fraction(1, 2), Fraction(1, 4), Fraction(3, 4)])
    return whole


def generated_true(rng: random.Random) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for _ in range(12):
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        a = decimal_choice(rng, 2, 60)
        b = decimal_choice(rng, 2, 60)
        whole_a, whole_b = Fraction(rng.randint(2, 60)), Fraction(rng.randint(2, 60))
        halves = Fraction(rng.randint(3, 80), 2)  # 1.5, 2, 2.5, ...: half of it has two decimals at most
        n = rng.randint(2, 9)
        p = rng.choice([5, 10, 15, 20, 25, 30, 40, 50, 75])
        q = Fraction(rng.choice([20, 40, 60, 80, 100, 120, 200, 240, 300, 500, 1200]))
        even = Fraction(2 * rng.randint(3, 60))
        thirds = Fraction(3 * rng.randint(2, 30))
        fours = Fraction(4 * rng.randint(2, 30))
        word = rng.choice(["two", "three", "four", "five"])
        count = {"two": 2, "three": 3, "four": 4, "five": 5}[word]
        big, small = max(a, b), min(a, b)
        if big == small:
            big += 1
        out += [
            ("twice", f"{name} has twice {show(a)} = {show(2 * a)} {item}."),
            ("double", f"So {name} earns double {money(a)} = {money(2 * a)} on Saturday."),
            ("triple", f"The big jar holds triple {show(a)} = {show(3 * a)} {item}."),
            ("half", f"{name} gives away half of the {show(even)} {item} = {show(even / 2)} {item}."),
            ("half", f"Half of {money(halves)} = {money(halves / 2)}, so each of them pays that."),
            ("fraction", f"A third of {show(thirds)} = {show(thirds / 3)} {item} are broken."),
            ("fraction", f"Two-thirds of {show(thirds)} {item} = {show(2 * thirds / 3)} {item}."),
            ("fraction", f"Three quarters of {money(fours)} = {money(3 * fours / 4)} is spent on food."),
            ("sum", f"The sum of {show(a)} and {show(b)} = {show(a + b)} {item} in the box."),
            ("sum", f"Together they spend the sum of {money(a)} and {money(b)} = {money(a + b)}."),
            ("product", f"The product of {n} and {show(a)} = {show(n * a)} {item}."),
            ("difference", f"The difference between {show(big)} and {show(small)} = {show(big - small)} {item}."),
            ("average", f"The average of {show(whole_a)} and {show(whole_b)} = {show((whole_a + whole_b) / 2)} points per game."),
            ("more_than", f"{name} collected {n} more than {show(a)} = {show(a + n)} {item}."),
            ("less_than", f"The shirt costs {money(small)} less than {money(big)} = {money(big - small)}."),
            ("fewer_than", f"{name} has {n} fewer than {show(a + n)} = {show(a)} {item} now."),
            ("comparative", f"{name} is {n} years older than {int(a) + 1} = {int(a) + 1 + n} years old."),
            ("percent_of", f"{p}% of {money(q)} = {money(q * p / 100)} goes to savings."),
            ("percent_more", f"The new price is {p}% more than {money(q)} = {money(q * (100 + p) / 100)}."),
            ("percent_less", f"With the coupon it costs {p}% less than {money(q)} = {money(q * (100 - p) / 100)}."),
            ("times", f"{word.capitalize()} times {show(a)} = {show(count * a)} {item}."),
            ("times", f"{n} times {money(a)} = {money(n * a)} for all the tickets."),
            ("times_as_many", f"{name} baked {n} times as many {item} as {show(even)} = {show(n * even)} {item}."),
            ("times_as_many", f"The new tower is twice as tall as {show(a)} feet = {show(2 * a)} feet."),
        ]
    return out


def generated_false(rng: random.Random) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for _ in range(2):
        item = rng.choice(ITEMS)
        a, b = Fraction(rng.randint(11, 60)), Fraction(rng.randint(2, 10))
        p, q = rng.choice([10, 20, 25, 40]), Fraction(rng.choice([40, 80, 200]))
        out += [
            ("twice", f"twice {show(a)} = {show(a + 2)} {item}", "added 2 instead of doubling"),
            ("sum", f"The sum of {show(a)} and {show(b)} = {show(a * b)} {item}.", "multiplied instead of adding"),
            ("less_than", f"{show(b)} less than {show(a)} = {show(a + b)} {item}", "added instead of subtracting"),
            ("percent_more", f"{p}% more than {money(q)} = {money(q + p)}", "added the percentage as dollars"),
            ("half", f"Half of {show(2 * a)} {item} = {show(2 * a + 2)} {item}.", "wrong half"),
        ]
    return out


def main() -> int:
    rng = random.Random(2024)
    true_rows = HAND_WRITTEN_TRUE + HAND_WRITTEN_TRUE_HARD + generated_true(rng)
    false_rows = HAND_WRITTEN_FALSE + generated_false(rng)
    seen = set()
    with open(DATA / "prose_arithmetic_true.jsonl", "w", encoding="utf-8") as handle:
        for kind, text in true_rows:
            if text not in seen:
                seen.add(text)
                handle.write(json.dumps({"text": text, "kind": kind}) + "\n")
    written_true = len(seen)
    seen = set()
    with open(DATA / "prose_arithmetic_false.jsonl", "w", encoding="utf-8") as handle:
        for kind, text, mistake in false_rows:
            if text not in seen:
                seen.add(text)
                handle.write(json.dumps({"text": text, "kind": kind, "mistake": mistake}) + "\n")
    print(f"wrote {written_true} true and {len(seen)} false prose steps to {DATA}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
