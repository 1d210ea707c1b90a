"""The built-in demo: a clearly fake service identity and a small procedural generator."""

from .identity import demo_policy
from .images import generate_image

__all__ = ["demo_policy", "generate_image"]
