"""The embedded synthetic ``shapes`` dataset, stored and read back as standard COCO.

Each 96 px image shows 11-23 small objects on a greyish textured background (gradient,
smooth stripes, blotches, pixel noise): discs, axis-aligned rectangles, triangles with a
horizontal base, ``line`` strokes 1.2-3 px wide, ``ring`` annuli 1.8-3 px thick and tiny
``dot`` discs (radius 2-3.5 px). Objects are vivid, so finding them is easy; naming them
is not: a colour's hue only narrows the class to two neighbours in class order (see
``HUE_BAND_DEGREES``) whose difference is geometric (disc|rectangle, line|ring, dot|disc...).
The thin and tiny classes are where upsampling quality shows.

Every object is a polygon, rasterised once with pycocotools; the image is painted with
that very mask, so the COCO file describes exactly what was drawn. Polygons are whole
(amodal): where objects overlap, the later annotation is on top (painter's order), so the
files must be read with ``overlap="last"`` to recover the drawn label maps. Placement keeps
at least ``MIN_VISIBLE_FRACTION`` of every object visible.

The set depends only on the parameters: image ``i`` of a split comes from its own numpy
Generator seeded with ``(generator_seed, split, i)``, so the first images of a split do
not change when ``num_train`` or ``num_val`` grows. Image ``i`` always contains class
``1 + i % 6``, so every class occurs in a split of at least 6 images. Shape sizes scale
with ``image_size / 96``; line widths, ring thickness and dot sizes stay in pixels.

A generated folder holds ``SHA256SUMS`` (``sha256sum -c`` reads it), checked before the
folder is read: a damaged or incomplete folder is generated again, with a warning.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as coco_mask

from segbench import SegbenchError, SegmentationData, TensorPairs, cached_dataset, track

from . import coco

# Bump whenever the drawing changes, so that old caches are not reused.
GENERATOR_VERSION = 1
CLASSES = ("background", "disc", "rectangle", "triangle", "line", "ring", "dot")
CATEGORY_IDS = {name: index for index, name in enumerate(CLASSES) if index}
IGNORE_INDEX = 255
SPLITS = ("train", "val")
MANIFEST = "SHA256SUMS"
MIN_VISIBLE_FRACTION = 0.4
MIN_CONTRAST = 100.0  # RGB distance between an object and what lies under it
PLACEMENT_TRIES = 20
# Width of each class's hue band. Bands are centred 60 degrees apart in class order, so a
# colour narrows the class to two neighbours (disc|rectangle, rectangle|triangle,
# triangle|line, line|ring, ring|dot, dot|disc) and only shape tells which.
HUE_BAND_DEGREES = 120.0


@dataclass(frozen=True)
class DrawnObject:
    """One painted object: its category and the polygon stored in the COCO file."""

    category_id: int
    polygon: list  # flat [x1, y1, x2, y2, ...] in pixel units, pixel (r, c) spans [c, c+1) x [r, r+1)


@dataclass
class Scene:
    """One generated image, its drawn label map and its objects in painting order."""

    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) uint8, class index = category id
    objects: list


def build_shapes(
    cache_dir,
    *,
    image_size: int = 96,
    num_train: int = 320,
    num_val: int = 96,
    generator_seed: int = 0,
    foreground: str | None = None,
    hue_band: float = HUE_BAND_DEGREES,
) -> SegmentationData:
    """Synthetic shapes (disc, rectangle, triangle, thin line, ring, dot) on textured backgrounds.

    ``foreground`` (one class name) turns it into a binary task: that class against all else.
    ``hue_band`` (degrees, 0 to 120) is how wide each class's hue band is: at 120 a colour
    narrows the class to two neighbours and shape decides; at 60 or less a colour names the
    class, and the task is finding objects and drawing their outlines (where thin lines
    and rings test upsampling), which small CPU models learn in a few minutes.

    Generated once into ``cache_dir/shapes/<hash>`` as a standard COCO dataset (PNG images,
    polygon annotations) and read back through pycocotools; the decoded samples then go
    to the shared sample cache, so later builds read them from there.
    """
    params = _checked_params(image_size, num_train, num_val, generator_seed, hue_band)
    _check_foreground(foreground)
    key = {"dataset": "shapes", "generator_version": GENERATOR_VERSION, **params}
    data = cached_dataset(cache_dir, key, lambda: _generate_and_read(cache_dir, params))
    return binary_view(data, foreground) if foreground else data


def _check_foreground(foreground):
    if foreground is not None and foreground not in CLASSES[1:]:
        raise SegbenchError(f"shapes: foreground must be one of {', '.join(CLASSES[1:])}, got {foreground!r}")


def binary_view(data: SegmentationData, foreground: str) -> SegmentationData:
    """The binary task "``foreground`` or not": that class is 1, every other shape is
    background (a rare, thin class for ``line``, ``ring`` or ``dot``)."""
    index = CLASSES.index(foreground)

    def view(pairs):
        masks = torch.where(pairs.masks == IGNORE_INDEX, pairs.masks, (pairs.masks == index).to(pairs.masks.dtype))
        return TensorPairs(pairs.images, masks)

    return SegmentationData(["background", foreground], view(data.train), view(data.val), IGNORE_INDEX, "binary")


def _generate_and_read(cache_dir, params: dict) -> SegmentationData:
    root = ensure_generated(dataset_dir(cache_dir, params), params)
    try:
        return _read_generated(root)
    except (OSError, ValueError, SegbenchError) as error:  # a folder that passed its checksums: not expected
        raise SegbenchError(
            f"shapes: cannot read the generated set in {root} ({type(error).__name__}: {error}); "
            f"delete that folder and run again to generate it anew"
        ) from None


def _read_generated(root: Path) -> SegmentationData:
    category_to_class = {category: category for category in CATEGORY_IDS.values()}
    splits = {
        split: TensorPairs(*coco.load_coco_split(
            root / "annotations" / f"instances_{split}.json",
            root / "images" / split,
            category_to_class,
            ignore_index=IGNORE_INDEX,
            overlap="last",
        ))
        for split in SPLITS
    }
    return SegmentationData(list(CLASSES), splits["train"], splits["val"], IGNORE_INDEX, "multiclass")


def _checked_params(image_size, num_train, num_val, generator_seed, hue_band=HUE_BAND_DEGREES) -> dict:
    params = {"image_size": image_size, "num_train": num_train, "num_val": num_val, "generator_seed": generator_seed}
    lowest = {"image_size": 32, "num_train": 1, "num_val": 1, "generator_seed": 0}
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest[name]:
            raise SegbenchError(f"shapes: {name} must be an integer >= {lowest[name]}, got {value!r}")
    if image_size > 1024:
        raise SegbenchError(f"shapes: image_size must be at most 1024, got {image_size}")
    _check_fits_in_memory(image_size, num_train + num_val)
    if isinstance(hue_band, bool) or not isinstance(hue_band, (int, float)) or not 0 < hue_band <= HUE_BAND_DEGREES:
        raise SegbenchError(f"shapes: hue_band must be a number of degrees above 0 and at most {HUE_BAND_DEGREES:g}, got {hue_band!r}")
    if hue_band != HUE_BAND_DEGREES:  # the default keeps the cache keys of sets made before the parameter
        params["hue_band"] = float(hue_band)
    return params


def _check_fits_in_memory(image_size, images):
    """The set is generated, then held in memory: a size past the machine's memory would
    only hang while memory grows, so it is refused before anything is generated."""
    needed = images * image_size * image_size * 4  # RGB + mask, one byte each
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available // 2:
        raise SegbenchError(f"shapes: num_train + num_val = {images} images of {image_size} px need about {needed / 2**30:.1f} GiB, "
                            f"more than half of this machine's {available / 2**30:.0f} GiB; lower num_train, num_val or image_size")


def dataset_dir(cache_dir, params: dict) -> Path:
    """Where the set for ``params`` is cached: keyed by the params and the generator version."""
    key = json.dumps({"generator_version": GENERATOR_VERSION, **params}, sort_keys=True)
    return Path(cache_dir) / "shapes" / hashlib.sha256(key.encode()).hexdigest()[:16]


def ensure_generated(target: Path, params: dict) -> Path:
    """Generate the set into ``target`` unless a sound copy is there; safe when processes race.

    The set is written into a temporary folder beside ``target`` and renamed into place, so
    ``target`` is either absent or complete. A process that loses the race drops its copy
    and uses the winner's, which is identical. A ``target`` whose files no longer match its
    ``SHA256SUMS`` (or that has none) is removed and generated again.
    """
    if target.is_dir():
        damage = folder_damage(target)
        if damage is None:
            return target
        print(f"segbench: warning: shapes: the generated set {target} {damage}; generating it again", file=sys.stderr)
        _discard(target, damage)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write_coco_dataset(scratch, params)
        write_manifest(scratch)
        os.chmod(scratch, 0o755)  # mkdtemp makes it private; a cache is ordinary files
        try:
            os.rename(scratch, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def write_manifest(root: Path) -> None:
    """``SHA256SUMS``: the digest of every file under ``root``, in ``sha256sum`` format."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    lines = [f"{_sha256(path)}  {path.relative_to(root).as_posix()}\n" for path in files]
    (root / MANIFEST).write_text("".join(lines))


def folder_damage(root: Path) -> str | None:
    """What is wrong with a generated folder (missing or changed files), or None."""
    try:
        listed = [line.split("  ", 1) for line in (root / MANIFEST).read_text().splitlines()]
    except (OSError, UnicodeDecodeError):
        return f"has no readable {MANIFEST} (made by an older segbench, or damaged)"
    if not listed or any(len(entry) != 2 for entry in listed):
        return f"has a damaged {MANIFEST}"
    bad = [f"{name} ({problem})" for digest, name in listed if (problem := _file_problem(root / name, digest))]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        return f"is damaged: {bad[0]}{more}"
    return None


def _file_problem(path: Path, digest: str) -> str | None:
    try:
        return None if _sha256(path) == digest else "changed"
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return f"unreadable: {error.strerror or error}"


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _discard(target: Path, damage: str) -> None:
    """Move a damaged folder out of the way (atomically, so no reader sees half of it), then delete it."""
    try:
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}-damaged-", dir=target.parent))
        os.rename(target, aside / target.name)
    except OSError as error:
        raise SegbenchError(
            f"shapes: the generated set {target} {damage}, and it could not be removed ({error.strerror or error}); "
            f"delete that folder and run again to generate it anew"
        ) from None
    shutil.rmtree(aside, ignore_errors=True)


def write_coco_dataset(root: Path, params: dict) -> None:
    """Write ``images/{train,val}/*.png`` and ``annotations/instances_{train,val}.json``."""
    counts = {"train": params["num_train"], "val": params["num_val"]}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        image_dir = root / "images" / split
        image_dir.mkdir(parents=True)
        indices = track(range(counts[split]), counts[split], f"shapes: drawing {split}")
        scenes = [split_scene(params, split, index) for index in indices]
        for index, scene in enumerate(scenes):
            Image.fromarray(scene.image).save(image_dir / _file_name(index))
        document = coco_document(scenes, params)
        text = json.dumps(document, separators=(",", ":"))
        (root / "annotations" / f"instances_{split}.json").write_text(text)


def _file_name(index: int) -> str:
    return f"{index:06d}.png"


def split_scene(params: dict, split: str, index: int) -> Scene:
    """Image ``index`` of ``split``: a pure function of the params."""
    rng = np.random.default_rng([params["generator_seed"], SPLITS.index(split), index])
    required = 1 + index % len(CATEGORY_IDS)
    return render_scene(rng, params["image_size"], required, params.get("hue_band", HUE_BAND_DEGREES))


def coco_document(scenes: list, params: dict) -> dict:
    """The COCO instances document for ``scenes``; image ids are 1-based positions."""
    images, annotations = [], []
    for position, scene in enumerate(scenes):
        height, width = scene.labels.shape
        image_id = position + 1
        images.append({"id": image_id, "file_name": _file_name(position), "width": width, "height": height})
        for drawn in scene.objects:
            rle = coco_mask.merge(coco_mask.frPyObjects([drawn.polygon], height, width))
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": drawn.category_id,
                "segmentation": [drawn.polygon],
                "area": float(coco_mask.area(rle)),
                "bbox": [float(v) for v in coco_mask.toBbox(rle)],
                "iscrowd": 0,
            })
    categories = [{"id": i, "name": name, "supercategory": "shape"} for name, i in CATEGORY_IDS.items()]
    info = {"description": "segbench synthetic shapes", "version": str(GENERATOR_VERSION), "params": params}
    return {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": categories}


# --- drawing -------------------------------------------------------------------------


def render_scene(rng: np.random.Generator, size: int, required_category: int, hue_band: float = HUE_BAND_DEGREES) -> Scene:
    """Draw one image: a textured background, then objects in painter's order."""
    canvas = background_texture(rng, size)
    labels = np.zeros((size, size), dtype=np.uint8)
    owner = np.full((size, size), -1, dtype=np.int32)  # which object is visible where
    full_areas, objects = [], []
    for category in _scene_categories(rng, required_category):
        placed = _place_object(rng, category, size, owner, full_areas)
        if placed is None:
            continue  # no spot that keeps the others visible enough
        polygon, covered = placed
        canvas[covered] = _object_colours(rng, category, canvas, covered, hue_band)
        labels[covered] = category
        owner[covered] = len(objects)
        full_areas.append(int(covered.sum()))
        objects.append(DrawnObject(category, polygon))
    noise = rng.normal(0.0, rng.uniform(2.0, 6.0), canvas.shape)
    image = np.clip(canvas + noise, 0, 255).round().astype(np.uint8)
    return Scene(image, labels, objects)


def _scene_categories(rng, required_category):
    """Categories to draw, in order; the required one first so it is never dropped."""
    ids = CATEGORY_IDS
    bodies = [ids["disc"], ids["rectangle"], ids["triangle"], ids["ring"]]
    chosen = list(rng.choice(bodies, size=rng.integers(5, 11)))
    chosen += [ids["line"]] * int(rng.integers(2, 5)) + [ids["dot"]] * int(rng.integers(3, 9))
    order = [int(chosen[i]) for i in rng.permutation(len(chosen))]
    return [required_category] + order


def _place_object(rng, category, size, owner, full_areas):
    """A polygon for ``category`` and its mask, placed so no earlier object is mostly hidden."""
    for _ in range(PLACEMENT_TRIES):
        polygon = _polygon_in_image(rng, category, size)
        covered = rasterise(polygon, size)
        if covered.any() and _keeps_others_visible(covered, owner, full_areas):
            return polygon, covered
    return None


def _keeps_others_visible(covered, owner, full_areas):
    if not full_areas:
        return True
    visible = np.bincount(owner[owner >= 0], minlength=len(full_areas))
    hidden = np.bincount(owner[covered & (owner >= 0)], minlength=len(full_areas))
    return bool(np.all(visible - hidden >= MIN_VISIBLE_FRACTION * np.asarray(full_areas)))


def rasterise(polygon: list, size: int) -> np.ndarray:
    """The (size, size) bool mask pycocotools decodes for a flat polygon."""
    rle = coco_mask.frPyObjects([polygon], size, size)
    return coco_mask.decode(rle)[:, :, 0].astype(bool)


def _polygon_in_image(rng, category, size):
    """A random polygon of ``category`` moved to a random spot fully inside the image."""
    points = SHAPE_MAKERS[CLASSES[category]](rng, size / 96.0)
    low, high = points.min(axis=0), points.max(axis=0)
    margin = 0.5
    offset = rng.uniform(margin - low, np.maximum(size - margin - high, margin - low))
    placed = np.clip(points + offset, 0.0, size)
    return [float(v) for v in np.round(placed, 2).ravel()]


def _disc(rng, scale):
    return _circle(max(rng.uniform(4.5, 10.0) * scale, 4.0), 32)  # never as small as a dot


def _dot(rng, scale):
    return _circle(rng.uniform(2.0, 3.5), 12)  # absolute size: stays tiny at any resolution


def _rectangle(rng, scale):
    # Axis-aligned: straight horizontal and vertical edges tell it from a triangle.
    width, height = rng.uniform(8.0, 20.0, size=2) * scale
    return np.array([[0, 0], [width, 0], [width, height], [0, height]])


def _triangle(rng, scale):
    # A horizontal base with the apex above or below it: diagonal edges, sharp corners.
    base, height = rng.uniform(10.0, 22.0) * scale, rng.uniform(9.0, 20.0) * scale
    apex = [rng.uniform(0.2, 0.8) * base, height if rng.random() < 0.5 else -height]
    return np.array([[0, 0], [base, 0], apex])


def _line(rng, scale):
    length, width = rng.uniform(20.0, 60.0) * scale, rng.uniform(1.2, 3.0)
    stroke = np.array([[-length / 2, -width / 2], [length / 2, -width / 2], [length / 2, width / 2], [-length / 2, width / 2]])
    return _rotate(stroke, rng.uniform(0, math.pi))


def _ring(rng, scale):
    # One "keyhole" polygon: the outer circle, then the inner one backwards through a
    # zero-width cut. pycocotools fills by crossings, so the inside stays a hole.
    outer_radius = rng.uniform(5.5, 10.0) * scale
    inner_radius = outer_radius - rng.uniform(1.8, 3.0)
    angles = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    outer = np.concatenate([angles, [0.0]])
    inner = np.concatenate([[0.0], angles[:0:-1], [0.0]])
    return np.concatenate([_arc(outer, outer_radius), _arc(inner, inner_radius)])


def _circle(radius, vertices):
    return _arc(np.linspace(0, 2 * math.pi, vertices, endpoint=False), radius)


def _arc(angles, radius):
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _rotate(points, angle):
    cos, sin = math.cos(angle), math.sin(angle)
    return points @ np.array([[cos, sin], [-sin, cos]])


SHAPE_MAKERS = {
    "disc": _disc,
    "rectangle": _rectangle,
    "triangle": _triangle,
    "line": _line,
    "ring": _ring,
    "dot": _dot,
}


def background_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A float (size, size, 3) background: colour gradient + stripes + blotches."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) / size
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys)[..., None]
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    start, end = _greyish(rng), _greyish(rng)
    texture = start + ramp * (end - start)
    texture += _stripes(rng, xs * size, ys * size)
    texture += _blotches(rng, size)
    return np.clip(texture, 0, 255)


def _greyish(rng):
    """A low-saturation colour: backgrounds are greyish, objects vivid."""
    return rng.uniform(30, 225) + rng.uniform(-15, 15, 3)


def _object_hue(rng, category, hue_band=HUE_BAND_DEGREES):
    """A hue from the class's band (at the default width, each hue lies in exactly two
    neighbouring bands)."""
    centre = (category - 1) / len(CATEGORY_IDS)
    return (centre + rng.uniform(-0.5, 0.5) * hue_band / 360.0) % 1.0


def _vivid(rng, category, hue_band=HUE_BAND_DEGREES):
    """A saturated colour: a hue from the class's band, random saturation and brightness."""
    rgb = colorsys.hsv_to_rgb(_object_hue(rng, category, hue_band), rng.uniform(0.55, 1.0), rng.uniform(0.45, 1.0))
    return np.array(rgb) * 255.0


def _stripes(rng, xs, ys):
    """Smooth sinusoidal stripes: periodic but never as sharp as a drawn line."""
    period, angle = rng.uniform(6.0, 24.0), rng.uniform(0, math.pi)
    wave = np.sin(2 * math.pi * (math.cos(angle) * xs + math.sin(angle) * ys) / period)
    tint = rng.uniform(-1, 1, 3) * rng.uniform(0, 15)
    return wave[..., None] * tint


def _blotches(rng, size):
    """Low-frequency colour noise: a coarse random grid upsampled bilinearly."""
    grid = rng.uniform(-1, 1, size=(6, 6, 3)) * rng.uniform(0, 15)
    channels = [
        np.asarray(Image.fromarray(grid[..., c].astype(np.float32)).resize((size, size), Image.BILINEAR))
        for c in range(3)
    ]
    return np.stack(channels, axis=-1).astype(np.float64)


def _object_colours(rng, category, canvas, covered, hue_band=HUE_BAND_DEGREES):
    """Per-pixel colours of one object: a colour that stands out from what it covers, lightly shaded."""
    under = canvas[covered].mean(axis=0)
    colour = _vivid(rng, category, hue_band)
    for _ in range(PLACEMENT_TRIES):
        if np.linalg.norm(colour - under) >= MIN_CONTRAST:
            break
        colour = _vivid(rng, category, hue_band)
    # A mild linear shading across the object, so it is not one flat colour.
    ys, xs = np.nonzero(covered)
    direction = rng.uniform(-1, 1, 2) * rng.uniform(0, 0.3) / canvas.shape[0]
    shade = 1.0 + (xs - xs.mean()) * direction[0] + (ys - ys.mean()) * direction[1]
    return np.clip(colour[None, :] * shade[:, None], 0, 255)
