"""The standard upsamplers, registered through ``segbench_upsamplers``.

Every factory is called as ``factory(in_channels, out_channels, scale_factor, **params)``
and returns a module mapping (N, C_in, H, W) to (N, C_out, s*H, s*W), for any H and W.
Invalid parameters raise a ValueError naming the upsampler, the parameter and what is
valid. One module per family:

- ``interpolation``: nearest, nearest_exact, bilinear, bicubic (``F.interpolate``)
- ``transposed``: transposed convolution, optionally bilinear-initialised (FCN)
- ``upsample_conv``: interpolate then a 3x3 conv (Odena et al., 2016)
- ``pixel_shuffle``: sub-pixel convolution with ICNR init (Shi et al., 2016; Aitken et al., 2017)
- ``max_unpool``: max unpooling with the encoder's pool indices (SegNet)
- ``dysample``: learned point sampling (Liu et al., ICCV 2023)
- ``carafe``: content-aware reassembly (Wang et al., ICCV 2019)

``requires`` uses the capability vocabulary of ``segbench_plugins.capabilities``: the
interpolations need only an architecture that can interpolate in their mode; every
learned upsampler needs one that calls the module itself; max_unpool also needs the pool
indices.
"""

from __future__ import annotations

from segbench import hookimpl

from ..capabilities import MODULE, POOL_INDICES, interpolate
from .carafe import carafe
from .dysample import dysample
from .interpolation import Interpolate, bicubic, bilinear, nearest, nearest_exact
from .max_unpool import max_unpool
from .pixel_shuffle import pixel_shuffle
from .transposed import bilinear_kernel_1d, init_bilinear_, transposed, transposed_padding
from .upsample_conv import upsample_conv

__all__ = [
    "Interpolate",
    "bicubic",
    "bilinear",
    "bilinear_kernel_1d",
    "carafe",
    "dysample",
    "init_bilinear_",
    "max_unpool",
    "nearest",
    "nearest_exact",
    "pixel_shuffle",
    "segbench_upsamplers",
    "transposed",
    "transposed_padding",
    "upsample_conv",
]


@hookimpl
def segbench_upsamplers(register):
    # Descriptions are each factory's first docstring line.
    register.add_upsampler("nearest", nearest, requires=[interpolate("nearest")])
    register.add_upsampler("nearest_exact", nearest_exact, requires=[interpolate("nearest-exact")])
    register.add_upsampler("bilinear", bilinear, requires=[interpolate("bilinear")])
    register.add_upsampler("bicubic", bicubic, requires=[interpolate("bicubic")])
    register.add_upsampler("transposed", transposed, requires=[MODULE], id_neutral=["bias"])  # bias: added later
    register.add_upsampler("upsample_conv", upsample_conv, requires=[MODULE])
    register.add_upsampler("pixel_shuffle", pixel_shuffle, requires=[MODULE])
    register.add_upsampler("max_unpool", max_unpool, requires=[MODULE, POOL_INDICES])
    register.add_upsampler("dysample", dysample, requires=[MODULE])
    register.add_upsampler("carafe", carafe, requires=[MODULE])
