"""The browser tests run the demo app on the integration tests' servers and fixtures.

They are integration tests that live in their own directory (so `pytest
tests/integration` stays fast): the fixtures, the ``servers`` marker and the
per-server parametrization come from ``tests/integration/conftest.py``.
"""

from __future__ import annotations

from tests.integration.conftest import (  # noqa: F401  (fixtures and hooks pytest finds here)
    clock,
    make_store,
    pytest_configure,
    pytest_generate_tests,
)
