"""Entropy coding of the latents: hyperprior side information and the context-model coder."""

from .context import WavefrontCoder, padded_for_decoding, wavefront_schedule
from .determinism import exact_entropy_path

__all__ = ["WavefrontCoder", "exact_entropy_path", "padded_for_decoding", "wavefront_schedule"]
