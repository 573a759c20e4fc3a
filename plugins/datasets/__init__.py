"""Standard dataset plugins."""

from segbench import hookimpl

from . import coco_dataset, folder, shapes, voc


@hookimpl
def segbench_datasets(register):
    register.add_dataset(
        "shapes",
        shapes.build_shapes,
        description=(
            "Embedded synthetic shapes (disc, rectangle, triangle, thin line, ring, dot) on "
            "textured backgrounds; colour only narrows the class, shape decides. Cached as COCO"
        ),
    )
    register.add_dataset(
        "coco",
        coco_dataset.build_coco,
        description=(
            "MS COCO instances as semantic masks from ROOT or $SEGBENCH_COCO: presets voc20, "
            "person (binary), all, or a category list; crowd and overlap rules configurable; "
            "per-split selection (filtered, torchvision, all) and native-resolution val"
        ),
        id_neutral=("native_val", "train_selection", "val_selection"),
    )
    register.add_dataset(
        "voc",
        voc.build_voc,
        description=(
            "PASCAL VOC2012 segmentation (21 classes; boundary 255 ignored) from ROOT or $SEGBENCH_VOC; "
            "train_set trainaug adds SBD (10,582 ids); native-resolution val"
        ),
        id_neutral=("native_val", "train_set", "sbd_root"),
    )
    register.add_dataset(
        "folder",
        folder.build_folder,
        description="images/ with same-name index-mask PNGs in masks/ and a class list; split deterministically",
        id_neutral=("native_val",),
    )
