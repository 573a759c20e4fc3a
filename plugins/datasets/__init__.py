"""Standard dataset plugins."""

from segbench import hookimpl

from . import shapes


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
