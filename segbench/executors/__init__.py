"""The standard executors' code. Executors run the pending (variant, seed) pairs of a suite
and yield their records as they finish; the runner writes each record and draws the progress.

- ``local`` (default): one after another in this process.
- ``process``: a pool of ``--workers`` processes on this machine; each worker gets one GPU
  (CUDA_VISIBLE_DEVICES) when there are GPUs, otherwise an equal share of the CPU threads.
- ``ray``: one Ray task per run on a Ray cluster (``--ray-address``), each asking for one
  GPU, or CPUs when the cluster has no GPU; needs ``pip install 'segbench[ray]'``.
- ``slurm``: one Slurm array task per run through submitit, records back through the
  results folder on a shared filesystem; needs ``pip install 'segbench[slurm]'``.

They are registered, with their options, by the standard plugin ``segbench_plugins.executors``
through the ``segbench_executors`` hook, as a third-party executor is (segbench.extensions);
``segbench.executors.task`` holds what any executor calls to produce a run's record.

Workers load the suite again from its text as the driver read it (``suite.source``: with
its absolute path, the same plugins and overrides, its local plugin files by content), so
they need nothing of the driver's files; they find the variant by its id and run it exactly as the local
executor would, so results do not depend on the executor. Whatever ends a run (an exception, ``sys.exit()``, its ``timeout_s``, a
worker that dies, a task Ray loses, a Slurm job that ends without a record) ends in that run's failed record, never in the suite.
"""
