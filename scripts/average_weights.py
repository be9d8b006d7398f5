"""Interpolate two exports of the same network: (1 - alpha) * A + alpha * B, exported with fresh tables.

Why: a fine-tune trades one kind of noise for another (session 16: a leg that passed the anchors on real
camera noise lost 0.24 dB on the strongest synthetic noise), and averaging the weights before and after it
is the cheapest way to see whether a point between them keeps both. Only learned parameters are averaged;
the entropy tables are rebuilt from the result by the normal export, so the file codes like any other.

    .venv/bin/python scripts/average_weights.py A.safetensors B.safetensors 0.5 OUT.safetensors

The result keeps A's metadata (name, steps, history): record what was averaged in the manifest's note.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from jcdcodec.errors import JcdError
from jcdcodec.weights import load_model_file, save_weights


def average(a: Path, b: Path, alpha: float, out: Path, synthesis: bool = True) -> str:
    """Write (1 - alpha) * a + alpha * b to ``out``; returns its sha256."""
    if not 0.0 <= alpha <= 1.0:
        raise JcdError(f"alpha must lie in [0, 1], not {alpha}")
    model_a, meta = load_model_file(a)
    model_b, _ = load_model_file(b)
    if model_a.config != model_b.config:
        raise JcdError(f"{a} and {b} are different networks (their configs differ)")
    params_b = dict(model_b.named_parameters())
    with torch.no_grad():
        for name, p in model_a.named_parameters():
            p.lerp_(params_b[name].to(p.dtype), alpha)
    return save_weights(model_a, out, meta, synthesis=synthesis)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="weights at alpha 0")
    parser.add_argument("b", type=Path, help="weights at alpha 1")
    parser.add_argument("alpha", type=float, help="weight of B, 0..1")
    parser.add_argument("out", type=Path, help="output .safetensors (and its .synthesis.onnx beside it)")
    args = parser.parse_args()
    try:
        print(average(args.a, args.b, args.alpha, args.out))
    except JcdError as e:
        raise SystemExit(f"average_weights: {e}") from None


if __name__ == "__main__":
    main()
