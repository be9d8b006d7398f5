"""Neural-network parts of jcd: Self-ONN layers, CBAM, the denoisers and the joint model."""

from .model import JointModel, ModelConfig

__all__ = ["JointModel", "ModelConfig"]
