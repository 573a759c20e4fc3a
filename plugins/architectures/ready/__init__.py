"""Ready-made architectures from segmentation_models_pytorch (``smp_*``) and torchvision
(``tv_*``), offered with only the upsamplers they can honestly use (see each module)."""

from .smp import register_smp
from .tv import register_torchvision


def register_ready(register):
    """Register the ready architectures."""
    register_smp(register)
    register_torchvision(register)
