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
        metric = self.build()
        metric.update(pred, target)
        return metric

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
        assert isinstance(metric, Metric) and isinstance(metric.higher_is_better, bool)

    def test_matches_the_independent_reference(self):
        pred, target = self.label_maps()
        expected = self.reference(pred, target)
        if expected is None:
            pytest.skip(f"metric {self.name!r} has no reference")
        value, per_class = expected
        metric = self.measured(pred, target)
        assert metric.compute() == pytest.approx(value)
        if per_class is not None:
            assert metric.per_class() == pytest.approx(list(per_class), nan_ok=True)
        per_image = [self.reference(pred[i : i + 1], target[i : i + 1])[0] for i in range(len(pred))]
        assert metric.per_image() == pytest.approx(per_image, nan_ok=True)

    def test_per_image_has_one_value_per_image_seen(self):
        metric = self.build()
        for seed, images in [(0, 4), (1, 3)]:
            metric.update(*self.label_maps(seed, images=images))
        assert len(metric.per_image()) == 7

    @pytest.mark.parametrize("cuts", [[2], [1, 2, 5], [3, 4]])
    def test_updates_accumulate_like_one_big_batch(self, cuts):
        pred, target = self.label_maps(images=6)
        whole, split = self.measured(pred, target), self.build()
        for start, stop in zip([0, *cuts], [*cuts, len(pred)]):
            split.update(pred[start:stop], target[start:stop])
        assert split.compute() == pytest.approx(whole.compute())
        assert split.per_image() == pytest.approx(whole.per_image(), nan_ok=True)
        if whole.per_class() is not None:
            assert split.per_class() == pytest.approx(whole.per_class(), nan_ok=True)

    def test_dataset_value_pools_all_pixels_rather_than_averaging_images(self):
        pred, target = self.label_maps(images=4)
        metric = self.measured(pred, target)
        as_one_image = self.measured(*self.side_by_side(pred, target))
        assert metric.compute() == pytest.approx(as_one_image.compute())
        per_image = metric.per_image()
        assert metric.compute() != pytest.approx(sum(per_image) / len(per_image))

    def test_ignored_pixels_are_not_scored(self):
        pred, target = self.label_maps()
        target[..., -4:] = self.ignore_index  # a wide ignored band, beyond any prediction reach
        changed = self.out_of_reach(target == self.ignore_index)
        assert changed[..., -1].all()
        shuffled = torch.where(changed, (pred + 1) % self.num_classes, pred)
        metric, reshuffled = self.measured(pred, target), self.measured(shuffled, target)
        assert reshuffled.compute() == pytest.approx(metric.compute())
        assert reshuffled.per_image() == pytest.approx(metric.per_image(), nan_ok=True)

    def test_an_image_with_every_pixel_ignored_is_nan(self):
        pred, target = self.label_maps(images=2)
        target[0] = self.ignore_index
        metric = self.measured(pred, target)
        first, second = metric.per_image()
        assert math.isnan(first) and math.isfinite(second)
        assert metric.compute() == pytest.approx(self.measured(pred[1:], target[1:]).compute())

    def test_a_perfect_prediction_scores_perfectly(self):
        if self.perfect_score is None:
            pytest.skip("no perfect score declared")
        _, target = self.label_maps()
        metric = self.measured(target.clone(), target)
        assert metric.compute() == pytest.approx(self.perfect_score)
        assert metric.per_image() == pytest.approx([self.perfect_score] * len(target))

    def test_a_class_absent_from_prediction_and_target_is_nan_and_left_out(self):
        metric = self.measured(*self.label_maps())
        assert math.isfinite(metric.compute())
        per_class = metric.per_class()
        if per_class is None:
            pytest.skip(f"metric {self.name!r} has no per-class form")
        assert len(per_class) == self.num_classes
        assert math.isnan(per_class[self.absent_class])
        present = [v for c, v in enumerate(per_class) if c != self.absent_class]
        assert all(math.isfinite(v) for v in present)

    def test_declares_whether_higher_is_better(self):
        assert self.build().higher_is_better is self.higher_is_better

    def test_image_statistics_rebuild_the_dataset_and_image_values(self):
        """Summed over every image, the statistics give the dataset value; over one image,
        that image's value; and a resample's value is the value of the resampled images."""
        pred, target = self.label_maps(images=5)
        metric = self.measured(pred, target)
        statistics = metric.image_statistics()
        if statistics is None:
            pytest.skip(f"metric {self.name!r} has no image statistics (no image evidence in reports)")
        assert len(statistics) == 5
        assert metric.from_statistics(statistics.sum(0)) == pytest.approx(metric.compute())
        assert [metric.from_statistics(s) for s in statistics] == pytest.approx(metric.per_image(), nan_ok=True)
        draw = torch.tensor([0, 0, 3, 4, 4])
        weights = torch.bincount(draw, minlength=5).double().numpy()[None]
        assert metric.bootstrap(weights)[0] == pytest.approx(self.measured(pred[draw], target[draw]).compute())

    def test_component_direction_matches_the_metric(self):
        assert metric_direction(self.component()) is self.higher_is_better
