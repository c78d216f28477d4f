#!/usr/bin/env python3
"""Writes the example dataset for the Large-Small-Large experiment:
arithmetic word problems with integer answers, from a fixed seed, split into
train, validation and test JSONL files (one {"id", "question", "answer"} per
line). Run it again and you get the same files.

    python3 examples/lsl/make_dataset.py
"""
import json
import pathlib
import random

TEMPLATES = [
    ("{name} has {a} apples and buys {b} more. How many apples does {name} have now?", lambda a, b: a + b),
    ("A shelf holds {a} books. {b} are taken away. How many books are left?", lambda a, b: a - b),
    ("Each box holds {a} pencils. How many pencils are in {b} boxes?", lambda a, b: a * b),
    ("{name} walks {a} km on Monday and {b} km on Tuesday. How many km in total?", lambda a, b: a + b),
    ("A class has {a} students; {b} are absent. How many are present?", lambda a, b: a - b),
    ("A ticket costs {a} dollars. What do {b} tickets cost, in dollars?", lambda a, b: a * b),
]
NAMES = ["Ada", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana"]


def problems(n, rng):
    out = []
    for i in range(n):
        template, solve = TEMPLATES[i % len(TEMPLATES)]
        a, b = rng.randint(12, 60), rng.randint(2, 11)
        question = template.format(name=rng.choice(NAMES), a=a, b=b)
        out.append({"question": question, "answer": str(solve(a, b))})
    rng.shuffle(out)
    return out


def main():
    rng = random.Random(20261122)
    items = problems(48, rng)
    splits = {"train": items[:24], "val": items[24:32], "test": items[32:48]}
    here = pathlib.Path(__file__).resolve().parent / "data"
    here.mkdir(exist_ok=True)
    for name, rows in splits.items():
        with open(here / f"{name}.jsonl", "w") as f:
            for i, row in enumerate(rows):
                f.write(json.dumps({"id": f"{name}-{i:03d}", **row}) + "\n")
        print(f"{name}: {len(rows)} examples")


if __name__ == "__main__":
    main()
