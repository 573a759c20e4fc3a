"""Standard architectures. Each lives in its own package, ``<arch>/{model.py, decoder.py}``."""

from segbench import hookimpl

from .deeplabv3plus import DeepLabV3Plus, build_deeplabv3plus
from .fcn import FCN, build_fcn
from .fpn import FPN, build_fpn
from .ready import register_ready
from .segnet import SegNet, build_segnet
from .unet import UNet, build_unet

AUX = ("aux_head",)  # added with the reference recipes: leaves earlier suites' ids alone
FCN_AS_TRAINED = ("final_upsampling", "score_init")  # FCN as the paper trains it: also added after suites ran


@hookimpl
def segbench_architectures(register):
    register.add_architecture("unet", build_unet, provides=UNet.provides, id_neutral=AUX)
    register.add_architecture(
        "fcn",
        build_fcn,
        description="FCN-32s/16s/8s (Long et al., 2015): class scores fused across strides 32, 16 and 8",
        provides=FCN.provides,
        id_neutral=AUX + FCN_AS_TRAINED,
    )
    register.add_architecture(
        "fpn",
        build_fpn,
        description="FPN with panoptic FPN's semantic head (Lin et al., 2017; Kirillov et al., 2019)",
        provides=FPN.provides,
        id_neutral=AUX,
    )
    register.add_architecture(
        "deeplabv3plus",
        build_deeplabv3plus,
        description="DeepLabV3+ (Chen et al., 2018): ASPP on a dilated encoder, fused with the stride-4 feature",
        provides=DeepLabV3Plus.provides,
        id_neutral=AUX,
    )
    register.add_architecture(
        "segnet",
        build_segnet,
        description="SegNet (Badrinarayanan et al., 2017): mirrored decoder, max-unpooling with pool indices",
        provides=SegNet.provides,
    )
    register_ready(register)
