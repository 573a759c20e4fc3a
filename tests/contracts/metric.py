"""The metric contract: subclass ``MetricContract`` and set ``name`` (and ``params``).

    class TestMIoU(MetricContract):
        name = "miou"
        def reference(self, pred, target): ...  # optional (value, per_class) computed elsewhere

Label maps are random, with ignored pixels and one class absent from both prediction
and target.
"""

from __future__ import annotations

import math

import pytest
import torch

import segbench_plugins.metrics as standard_metrics
from segbench.components import Catalogue, Registrar
from segbench.metrics import Metric


class MetricContract:
    name: str = ""
    params: dict = {}
    hook = staticmethod(standard_metrics.segbench_metrics)
    num_classes = 4
    absent_class = 3  # appears in neither prediction nor target
    ignore_index = 255
    perfect_score: float | None = 1.0  # value of a perfect prediction; None: not checked

    def reference(self, pred, target):
        """``(value, per_class)`` computed independently; None: no reference."""
        return None

    # --- helpers --------------------------------------------------------------------

    def build(self) -> Metric:
        register = Registrar("contract-test")
        self.hook(register)
        component = Catalogue(register.components).get("metric", self.name)
        return component.build(self.num_classes, self.ignore_index, **self.params)

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

    def test_per_image_has_one_value_per_image_seen(self):
        metric = self.build()
        for seed, images in [(0, 4), (1, 3)]:
            metric.update(*self.label_maps(seed, images=images))
        assert len(metric.per_image()) == 7

    def test_updates_accumulate_like_one_big_batch(self):
        pred, target = self.label_maps(images=6)
        split = self.build()
        split.update(pred[:2], target[:2])
        split.update(pred[2:], target[2:])
        assert split.compute() == pytest.approx(self.measured(pred, target).compute())

    def test_dataset_value_pools_all_pixels_rather_than_averaging_images(self):
        pred, target = self.label_maps(images=4)
        metric = self.measured(pred, target)
        # Side by side, the images form one image with the pooled pixel counts.
        as_one_image = self.measured(torch.cat(list(pred), dim=1)[None], torch.cat(list(target), dim=1)[None])
        assert metric.compute() == pytest.approx(as_one_image.compute())
        per_image = metric.per_image()
        assert metric.compute() != pytest.approx(sum(per_image) / len(per_image))

    def test_ignored_pixels_are_not_scored(self):
        pred, target = self.label_maps()
        ignored = target == self.ignore_index
        shuffled = torch.where(ignored, (pred + 1) % self.num_classes, pred)
        assert self.measured(shuffled, target).compute() == pytest.approx(self.measured(pred, target).compute())

    def test_a_perfect_prediction_scores_perfectly(self):
        if self.perfect_score is None:
            pytest.skip("no perfect score declared")
        _, target = self.label_maps()
        assert self.measured(target.clone(), target).compute() == pytest.approx(self.perfect_score)

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
