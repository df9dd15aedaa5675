"""The monitoring tests' shared world, built once for the package."""

from tests.monitoring.worlds import world  # noqa: F401 (a fixture, found here by pytest)
