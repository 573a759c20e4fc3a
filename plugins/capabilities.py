"""Capability names shared by the standard upsamplers and architectures.

The core only checks ``upsampler.requires <= architecture.provides``; these strings are
the standard plugins' vocabulary (third-party plugins may use them too):

- ``interpolate:<mode>``: the architecture can upsample by ``F.interpolate`` in that mode.
  An upsampler that requires only this capability returns, when ``in_channels ==
  out_channels``, a module with ``mode`` and ``align_corners`` attributes, so that ready
  architectures which take an interpolation mode (segmentation_models_pytorch's
  ``decoder_interpolation``) can honour it.
- ``module``: the architecture calls the upsampler module itself, wherever its decoder
  increases resolution, so any learned upsampler fits.
- ``pool_indices``: the architecture records 2x2 max-pool indices and calls
  ``upsampler(x, indices)`` when the module has ``takes_pool_indices = True``.
"""

INTERPOLATION_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic")
MODULE = "module"
POOL_INDICES = "pool_indices"


def interpolate(mode: str) -> str:
    return f"interpolate:{mode}"


ANY_INTERPOLATION = frozenset(interpolate(mode) for mode in INTERPOLATION_MODES)
# What an architecture provides when it calls its upsampler module at every stage.
PLUGGABLE = ANY_INTERPOLATION | {MODULE}
