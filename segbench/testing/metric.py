"""The metric contract: subclass ``MetricContract`` and set ``name`` (and ``params``).

    class TestMIoU(MetricContract):
        name = "miou"
        def reference(self, pred, target): ...  # optional (value, per_class) computed elsewhere

Label maps are random, with ignored pixels and one class absent from both prediction
and target. The reference, when given, is checked on the whole dataset and on each image
alone (against ``per_image``).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ..component_checks import (check_declared_direction, check_metric_direction, check_metric_keeps_no_state, check_metric_outputs,
                                check_metric_values, metric_outputs)
from ..components import metric_direction
from ..metrics import Metric
from ._base import ComponentContract


class MetricContract(ComponentContract):
    kind = "metric"
    num_classes = 4
    absent_class = 3  # appears in neither prediction nor target
    ignore_index = 255
    perfect_score: float | None = 1.0  # value of a perfect prediction; None: not checked
    # How far (px) the prediction around a scored pixel may change its score: 0 for
    # pixelwise metrics; a boundary metric looks at the prediction within its band width.
    prediction_reach = 0
    higher_is_better = True  # the value the metric must declare

    def reference(self, pred, target):
        """``(value, per_class)`` computed independently; None: no reference."""
        return None

    # --- helpers --------------------------------------------------------------------

    def build(self) -> Metric:
        return self.component().build(self.num_classes, self.ignore_index, **self.params)

    def label_maps(self, seed=0, images=4, size=(9, 11)):
        """(pred, target): noisy predictions of random targets, ~15% of pixels ignored."""
        generator = torch.Generator().manual_seed(seed)
        present = torch.tensor([c for c in range(self.num_classes) if c != self.absent_class])

        def random_labels():
            return present[torch.randint(0, len(present), (images, *size), generator=generator)]

        target = random_labels()
        pred = torch.where(torch.rand(target.shape, generator=generator) < 0.6, target, random_labels())
        ignored = torch.rand(target.shape, generator=generator) < 0.15
        return pred, target.masked_fill(ignored, self.ignore_index)

    def measured(self, pred, target) -> Metric:
        """A new metric updated once with the batch; what it gives is checked to be floats
        a record holds (as the preflight checks it), so every test below reads floats."""
        metric = self.build()
        outputs = metric_outputs(self.described(), metric, pred, target)
        check_metric_outputs(self.described(), outputs, len(target), self.num_classes)
        return metric

    def per_image(self, metric, images, on="") -> list:
        """``metric.per_image()``, one float per image seen."""
        values = metric.per_image()
        check_metric_values(self.described(), "per_image()", values, images, f"one per image seen{on}")
        return values

    def side_by_side(self, pred, target):
        """The images as one image, with an ignored column between them that no class is
        predicted on, so that a shape metric still sees each image's edges there."""

        def join(maps):
            separator = torch.full((maps.shape[1], 1), self.ignore_index, dtype=maps.dtype)
            columns = [piece for image in maps for piece in (image, separator)][:-1]
            return torch.cat(columns, dim=1)[None]

        return join(pred), join(target)

    def out_of_reach(self, ignored):
        """Ignored pixels farther than ``prediction_reach`` from every scored pixel."""
        reach = self.prediction_reach
        scored = (~ignored).float().unsqueeze(1)
        near_scored = F.max_pool2d(scored, 2 * reach + 1, stride=1, padding=reach).squeeze(1) > 0
        return ignored & ~near_scored

    # --- contract -------------------------------------------------------------------

    def test_is_registered_and_builds_a_metric(self):
        metric = self.build()
        self.expect(isinstance(metric, Metric), lambda: f"its factory returned {type(metric).__name__}; expected a "
                                                        "segbench.metrics.Metric (subclass it)")
        check_declared_direction(self.described(), metric_direction(self.component()), metric)

    def test_values_are_floats_a_record_can_hold(self):
        pred, target = self.label_maps()
        self.measured(pred, target)  # checks compute(), per_image() and per_class()

    def test_a_new_instance_each_call_keeping_no_state(self):
        """As the preflight checks it: two metrics from the factory are distinct objects and,
        each updated once with the same batch, give the same values."""
        pred, target = self.label_maps()
        check_metric_keeps_no_state(self.described(), self.build, pred, target, self.num_classes)

    def test_matches_the_independent_reference(self):
        pred, target = self.label_maps()
        expected = self.reference(pred, target)
        if expected is None:
            pytest.skip(f"metric {self.name!r} has no reference")
        value, per_class = expected
        metric = self.measured(pred, target)
        on = f"{len(pred)} random label maps {tuple(pred.shape)}"
        self.expect_close(metric.compute(), value, f"compute() on {on} against the reference")
        if per_class is not None:
            self.expect_close(metric.per_class(), list(per_class), f"per_class() on {on} against the reference")
        per_image = [self.reference(pred[i : i + 1], target[i : i + 1])[0] for i in range(len(pred))]
        self.expect_close(metric.per_image(), per_image, f"per_image() on {on} against the reference, image by image")

    def test_per_image_has_one_value_per_image_seen(self):
        metric = self.build()
        for seed, images in [(0, 4), (1, 3)]:
            metric.update(*self.label_maps(seed, images=images))
        self.per_image(metric, 7, " (two updates, of 4 and 3 images)")

    @pytest.mark.parametrize("cuts", [[2], [1, 2, 5], [3, 4]])
    def test_updates_accumulate_like_one_big_batch(self, cuts):
        pred, target = self.label_maps(images=6)
        whole, split = self.measured(pred, target), self.build()
        for start, stop in zip([0, *cuts], [*cuts, len(pred)]):
            split.update(pred[start:stop], target[start:stop])
        on = f"6 images given in batches cut at {cuts}, against the same images in one batch"
        self.expect_close(split.compute(), whole.compute(), f"compute() on {on}")
        self.expect_close(self.per_image(split, 6), whole.per_image(), f"per_image() on {on}")
        if whole.per_class() is not None:
            self.expect_close(split.per_class(), whole.per_class(), f"per_class() on {on}")

    def test_dataset_value_pools_all_pixels_rather_than_averaging_images(self):
        pred, target = self.label_maps(images=4)
        metric = self.measured(pred, target)
        as_one_image = self.measured(*self.side_by_side(pred, target))
        self.expect_close(metric.compute(), as_one_image.compute(),
                          "compute() on 4 images against the same 4 images side by side as one (pixels pooled over the images)")
        per_image = metric.per_image()
        mean = sum(per_image) / len(per_image)
        self.expect(metric.compute() != pytest.approx(mean),
                    f"compute() = {metric.compute():.6g} on 4 images is the mean of per_image() {per_image}; the dataset value must "
                    "pool the pixels of all images (e.g. sum confusion matrices), not average the images")

    def test_ignored_pixels_are_not_scored(self):
        pred, target = self.label_maps()
        target[..., -4:] = self.ignore_index  # a wide ignored band, beyond any prediction reach
        changed = self.out_of_reach(target == self.ignore_index)
        self.expect(changed[..., -1].all(), f"prediction_reach = {self.prediction_reach} reaches past the 4-pixel ignored band "
                                            "this test changes the prediction in; use a smaller prediction_reach")
        shuffled = torch.where(changed, (pred + 1) % self.num_classes, pred)
        metric, reshuffled = self.measured(pred, target), self.measured(shuffled, target)
        on = f"predictions changed only at pixels whose target is ignore_index {self.ignore_index}"
        self.expect_close(reshuffled.compute(), metric.compute(), f"compute() with {on}")
        self.expect_close(reshuffled.per_image(), metric.per_image(), f"per_image() with {on}")

    def test_an_image_with_every_pixel_ignored_is_nan(self):
        pred, target = self.label_maps(images=2)
        target[0] = self.ignore_index
        metric = self.measured(pred, target)
        first, second = self.per_image(metric, 2)
        self.expect(math.isnan(first) and math.isfinite(second),
                    f"per_image() on 2 images, the first with every pixel ignored, gave [{first}, {second}]; expected [nan, a finite value]")
        self.expect_close(metric.compute(), self.measured(pred[1:], target[1:]).compute(),
                          "compute() on 2 images, the first with every pixel ignored, against the second image alone")

    def test_a_perfect_prediction_scores_perfectly(self):
        if self.perfect_score is None:
            pytest.skip("no perfect score declared")
        _, target = self.label_maps()
        metric = self.measured(target.clone(), target)
        on = "a perfect prediction (the targets themselves)"
        hint = " (a metric on another scale: subclass MetricContract and set perfect_score)"
        self.expect_close(metric.compute(), self.perfect_score, f"compute() on {on}{hint}")
        self.expect_close(metric.per_image(), [self.perfect_score] * len(target), f"per_image() on {on}{hint}")

    def test_a_class_absent_from_prediction_and_target_is_nan_and_left_out(self):
        metric = self.measured(*self.label_maps())
        on = f"label maps where class {self.absent_class} is absent from both prediction and target"
        self.expect(math.isfinite(metric.compute()), f"compute() on {on} gave {metric.compute()}; expected a finite value")
        per_class = metric.per_class()
        if per_class is None:
            pytest.skip(f"metric {self.name!r} has no per-class form")
        absent = per_class[self.absent_class]
        present = [v for c, v in enumerate(per_class) if c != self.absent_class]
        self.expect(math.isnan(absent) and all(math.isfinite(v) for v in present),
                    f"per_class() on {on} gave {per_class}; expected NaN for class {self.absent_class} and finite values for the others")

    def test_declares_whether_higher_is_better(self):
        declared = self.build().higher_is_better
        self.expect(declared is self.higher_is_better,
                    f"the metric's higher_is_better is {declared!r}; this contract expects {self.higher_is_better}")

    def test_direction_agrees_with_the_scores(self):
        """As the preflight checks it: a perfect prediction scores better than a wrong one
        in the declared direction."""
        _, target = self.label_maps()
        check_metric_direction(self.described(), self.build, target, self.num_classes, self.ignore_index,
                               metric_direction(self.component()))

    def test_image_statistics_rebuild_the_dataset_and_image_values(self):
        """Summed over every image, the statistics give the dataset value; over one image,
        that image's value; and a resample's value is the value of the resampled images."""
        pred, target = self.label_maps(images=5)
        metric = self.measured(pred, target)
        statistics = metric.image_statistics()
        if statistics is None:
            pytest.skip(f"metric {self.name!r} has no image statistics (no image evidence in reports)")
        self.expect(len(statistics) == 5, f"image_statistics() on 5 images has {len(statistics)} rows; expected one per image")
        self.expect_close(metric.from_statistics(statistics.sum(0)), metric.compute(),
                          "from_statistics() of the statistics summed over 5 images, against compute()")
        self.expect_close([metric.from_statistics(s) for s in statistics], metric.per_image(),
                          "from_statistics() of each image's statistics, against per_image()")
        draw = torch.tensor([0, 0, 3, 4, 4])
        weights = torch.bincount(draw, minlength=5).double().numpy()[None]
        self.expect_close(metric.bootstrap(weights)[0], self.measured(pred[draw], target[draw]).compute(),
                          "bootstrap() of images 0, 0, 3, 4, 4, against compute() on those images")

    def test_component_direction_matches_the_metric(self):
        direction = metric_direction(self.component())
        self.expect(direction is self.higher_is_better,
                    f"registered (or annotated) with higher_is_better={direction}; this contract expects {self.higher_is_better}")
