"""The standard segbench plugins, installed as ``segbench_plugins``."""
