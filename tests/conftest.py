"""Test configuration: fixtures are grouped by theme under tests/fixtures/."""

pytest_plugins = ["tests.fixtures.archives", "tests.fixtures.stack"]
