"""How the framework tests treat a missing framework: skipped with the reason
scripts/test_python.sh gives (pip could not reach an index), a failure when
CIPHERVEC_REQUIRE_FRAMEWORKS=1, and otherwise skipped saying how to install it."""

import importlib
import os

import pytest


def require(module: str, package: str):
    """Imports ``module`` (of the pip package ``package``) or skips/fails the test module."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        if os.environ.get("CIPHERVEC_REQUIRE_FRAMEWORKS") == "1":
            raise
        reason = os.environ.get("CIPHERVEC_FRAMEWORKS_SKIPPED") or (
            f"{package} is not installed (scripts/test_python.sh installs it)"
        )
        pytest.skip(reason, allow_module_level=True)
