"""The README's Python snippets run as written (each in a fresh namespace, in an empty
working directory), so what a newcomer copies works."""

import pathlib
import re

import pytest
from frameworks import require

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def snippets():
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)


def test_the_readme_has_a_python_snippet():
    assert snippets(), "README.md has no ```python block"


@pytest.mark.parametrize("code", snippets())
def test_readme_python_snippet_runs(code, tmp_path, monkeypatch):
    # The framework snippets need their framework (skipped without it as their suites are).
    for module, package in (("llama_index.core", "llama-index-core"), ("haystack", "haystack-ai")):
        if re.search(rf"^from {re.escape(module)}\b", code, re.M):
            require(module, package)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
