"""Entropy coding of the latents, in numpy (no torch): z's prior, h_s and the context-model coder."""

from .context import WavefrontCoder, padded_for_decoding, wavefront_schedule
from .path import PREFIXES, EntropyPath

__all__ = ["PREFIXES", "EntropyPath", "WavefrontCoder", "padded_for_decoding", "wavefront_schedule"]
