"""What a quantization-aware fine-tuning is told by default, and the one error QAT raises."""

from __future__ import annotations

DEFAULT_STEPS = 200
DEFAULT_LR = 1e-5
DEFAULT_BATCH = 4
TARGETS = ("distill", "ground-truth")
"""``--qat-targets``: fit the float model's outputs (default) or the data's ground truth."""


class QATError(ValueError):
    """A model or setting QAT cannot handle; the message names the layer or setting and the fix."""
