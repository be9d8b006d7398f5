"""Entropy coding of the latents: hyperprior side information and the context-model coder."""

from .context import WavefrontCoder, wavefront_schedule
from .determinism import exact_entropy_path

__all__ = ["WavefrontCoder", "wavefront_schedule", "exact_entropy_path"]
