"""Hook specifications: one hook per component kind.

Every hook receives a :class:`segbench.components.Registrar` and adds components to it
through the matching ``register.add_<kind>(...)`` call.
"""

import pluggy

hookspec = pluggy.HookspecMarker("segbench")
hookimpl = pluggy.HookimplMarker("segbench")


@hookspec
def segbench_upsamplers(register):
    """Add upsamplers: modules mapping (N, C_in, H, W) to (N, C_out, s*H, s*W).

    :param register: call ``register.add_upsampler(name, factory, ...)`` once per upsampler.
        The factory is called as ``factory(in_channels, out_channels, scale_factor, **params)``.
    """


@hookspec
def segbench_architectures(register):
    """Add architectures: models from images (N, 3, H, W) to logits (N, K, H, W).

    :param register: call ``register.add_architecture(name, factory, ...)`` once per
        architecture. The factory is called as
        ``factory(out_channels, make_upsampler, **params)``: ``out_channels`` is the number
        of logit channels (the class count, or 1 in binary mode) and
        ``make_upsampler(in_channels, out_channels, scale_factor)`` builds the suite's chosen
        upsampler, to be called wherever the decoder increases resolution.
    """


@hookspec
def segbench_losses(register):
    """Add losses: modules taking ``(logits, target)`` and returning a scalar tensor.

    :param register: call ``register.add_loss(name, factory, ...)`` once per loss. The
        factory is called as ``factory(mode, num_classes, ignore_index, **params)`` where
        ``mode`` is ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
    """


@hookspec
def segbench_metrics(register):
    """Add metrics: accumulators of predicted and true label maps.

    :param register: call ``register.add_metric(name, factory, ...)`` once per metric. The
        factory is called as ``factory(num_classes, ignore_index, **params)`` and returns a
        :class:`segbench.Metric`.
    """


@hookspec
def segbench_datasets(register):
    """Add datasets: sources of (image, mask) pairs with a class list.

    :param register: call ``register.add_dataset(name, factory, ...)`` once per dataset. The
        factory is called as ``factory(cache_dir, **params)`` and returns a
        :class:`segbench.SegmentationData`.
    """


# --- beyond components: executors and reporters (segbench.extensions) -----------------------
# These are no component kinds: they take no part in variant ids or in resolving a suite.


@hookspec
def segbench_executors(register):
    """Add executors: what runs a suite's pending (variant, seed) pairs (``--executor NAME``).

    :param register: call ``register.add_executor(name, factory, description="", options=())``
        once per executor. ``options`` are :class:`segbench.extensions.ExecutorOption` items:
        each becomes a ``segbench run`` flag and a keyword of the factory, which is called as
        ``factory(**options)`` and returns an object with
        ``records(suite, pending, cache_dir, on_epoch=None)`` (yield the record of each pending
        run, e.g. from ``segbench.executors.task.run_in_process``), ``close()`` and
        ``shows_epochs``.
    """


@hookspec
def segbench_reporters(register):
    """Add reporters: outputs written from a suite's records (a file, a report section, an export).

    :param register: call ``register.add_reporter(name, write, description="", default=True)``
        once per reporter. ``write`` is called as ``write(context)`` with a
        :class:`segbench.extensions.ReportContext` and returns None or a list of
        :class:`segbench.extensions.ReportSection` for the HTML report. A default reporter runs
        on every report; ``default=False`` makes an exporter, run only when a suite lists it in
        ``[report] exporters`` or ``segbench export NAME`` names it. ``check=`` (optional) is
        called with no arguments before a suite trains when the suite lists the exporter,
        and raises :class:`segbench.SegbenchError` when it cannot run here (a missing extra).
    """
