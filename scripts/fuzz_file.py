"""Read mutated copies of one image file with jcd's reader and tally what happened.

    .venv/bin/python scripts/fuzz_file.py tests/data/heif/deep.heic --copies 300 --seed 7

Each copy has 1 to 16 random bytes changed, and one in five is also truncated; each is read by
``jcdcodec.imageio.load_image``. A copy must either read or fail with one JcdError line: anything else (another
exception) is printed with the copy's number and ends the script with status 1. HEIC is read in a child process by
jcd itself, so a decoder crash there is a JcdError; a crash of an in-process decoder (every other format) ends this
script: the last "copy N" line it printed (with --verbose) names the copy, and the seed remakes it.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import warnings
from pathlib import Path


def mutate(base: bytes, rng: random.Random) -> bytes:
    data = bytearray(base)
    for _ in range(rng.randint(1, 16)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.2:
        data = data[: rng.randrange(len(data))]
    return bytes(data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--copies", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--verbose", action="store_true", help="print each copy's number before reading it")
    args = ap.parse_args()
    from jcdcodec.errors import JcdError
    from jcdcodec.imageio import load_image

    warnings.simplefilter("ignore")
    base, rng, tally = args.file.read_bytes(), random.Random(args.seed), collections.Counter()
    for i in range(args.copies):
        data = mutate(base, rng)
        if args.verbose:
            print(f"copy {i}", flush=True)
        try:
            p = load_image(data, name=args.file.name)
            tally[f"read at {p.depth} bits"] += 1
        except JcdError as e:
            why = str(e).removeprefix(f"{args.file.name}: ")
            tally["error: " + why[:70]] += 1
        except Exception as e:  # noqa: BLE001  what this script is for: anything but a JcdError is a finding
            print(f"copy {i} (seed {args.seed}): {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    for what, n in tally.most_common():
        print(f"{n:6d}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
