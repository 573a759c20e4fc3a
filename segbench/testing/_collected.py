"""Where ``pytest --segbench-contracts`` puts its contract test classes, one per component of
the distribution under test (see :mod:`segbench.testing.pytest_plugin`); empty otherwise."""
