"""Package discovery only; everything else is in pyproject.toml.

plugins/ is installed under the importable name ``segbench_plugins`` (never as a top-level
``plugins`` module); its examples/ folder is not a package and is not installed.
"""

from setuptools import find_packages, setup

plugin_packages = ["segbench_plugins"] + [f"segbench_plugins.{name}" for name in find_packages("plugins")]

setup(
    packages=find_packages(include=["segbench", "segbench.*"]) + plugin_packages,
    package_dir={"segbench_plugins": "plugins"},
)
