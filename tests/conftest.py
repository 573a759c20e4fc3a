import os
import textwrap

import pytest


@pytest.fixture
def write_suite(tmp_path):
    """Write a suite file from TOML text (dedented) and return its path."""

    def write(text, name="suite.toml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


TINY = """
name = "tiny"
seeds = [0, 1]

[dataset]
name = "shapes"
image_size = 64
num_train = 16
num_val = 8

[model]
architecture = "unet"
encoder = "resnet18"
decoder_channels = [32, 16, 16, 8, 8]

[train]
epochs = 2
batch_size = 8
loss = "ce"

[eval]
metrics = ["miou", "dice", "pixel_accuracy"]

[ablate]
"model.upsampler" = ["nearest", { name = "transposed", kernel_size = 4 }]
"""


@pytest.fixture
def tiny_suite(write_suite):
    return write_suite(TINY, "tiny.toml")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Datasets are generated into a per-session cache, never the user's."""
    monkeypatch.setenv("SEGBENCH_DATA_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def entries_of(cache_dir, dataset: str) -> list:
    """The sample-cache entries (folders) of ``dataset`` under ``cache_dir``."""
    return sorted(path for path in (cache_dir / "samples").glob(f"{dataset}-*") if path.is_dir())


CUDA_MISSING = "needs CUDA (torch.cuda.is_available() is False)"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need a CUDA device; without one they are skipped, saying why
    (benchmarks/gpu_check.sh runs them on a lent GPU: docs/gpu.md)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch  # only when a gpu test was collected

    if torch.cuda.is_available():
        return
    for item in gpu_items:
        item.add_marker(pytest.mark.skip(reason=CUDA_MISSING))


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray instance for a test module, which never writes into the user's home:
    ``ray.init()`` keeps files (an auth token) under ``~/.ray``, and a token left there
    stops this machine's nodes from joining a cluster without token auth. Ray is started
    in a folder of its own, so its workers' working directory is not the tests'."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    home = tmp_path_factory.mktemp("ray-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))  # for as long as Ray runs: the driver may write there too
        with pytest.MonkeyPatch.context() as place:
            place.chdir(tmp_path_factory.mktemp("ray-workers-cwd"))
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        try:
            yield ray, home
        finally:
            ray.shutdown()
            forget_ray_auth()


def forget_ray_auth():
    """A local ``ray.init()`` (Ray 2.60) turns token authentication on for this process
    (``RAY_AUTH_MODE=token`` in its environment, and Ray's cached config) and keeps it
    after ``ray.shutdown()``: a later ``ray.init(address=...)`` to a cluster without tokens
    then fails. The tests never set it themselves, so it goes; Ray's own tests reset the
    cache so (older Rays have nothing to reset)."""
    os.environ.pop("RAY_AUTH_MODE", None)
    try:
        from ray._private.authentication_test_utils import reset_auth_token_state
    except ImportError:
        return
    reset_auth_token_state()
