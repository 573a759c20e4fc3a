"""Ready-made architectures from segmentation_models_pytorch and torchvision, offered with
only the upsamplers they can honestly use."""


def register_ready(register):
    """Register the ready architectures (filled in below as they are added)."""
