"""Synthetic noise, one module per model.

- ``readshot``: read + shot noise added to sRGB pixels independently per pixel (the published benchmark's
  model, its four test levels, and the training sampler).
- ``camera``: camera-like noise: the picture is taken back to an approximate raw mosaic, gets Poisson-Gaussian
  sensor noise, and is developed again (demosaicking, colour, tone, optionally JPEG), so that its noise is
  spatially and cross-channel correlated as in a real photo.
"""

from .camera import CAMERA_LEVELS, CameraParams, add_camera_noise, sample_camera_params
from .readshot import (
    GAMMAS,
    LEVELS,
    TRAIN_LOG_READ,
    TRAIN_LOG_SHOT,
    add_level_noise,
    add_noise,
    from_linear,
    sample_training_sigmas,
    to_linear,
)

__all__ = [
    "CAMERA_LEVELS",
    "GAMMAS",
    "LEVELS",
    "TRAIN_LOG_READ",
    "TRAIN_LOG_SHOT",
    "CameraParams",
    "add_camera_noise",
    "add_level_noise",
    "add_noise",
    "from_linear",
    "sample_camera_params",
    "sample_training_sigmas",
    "to_linear",
]
