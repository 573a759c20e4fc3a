"""Shared contract test classes that plugin tests subclass."""
