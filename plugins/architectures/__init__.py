"""Standard architectures. Each lives in its own package, ``<arch>/{model.py, decoder.py}``."""

from segbench.hookspecs import hookimpl

from .ready import register_ready
from .unet import UNet, build_unet


@hookimpl
def segbench_architectures(register):
    register.add_architecture("unet", build_unet, provides=UNet.provides)
    register_ready(register)
