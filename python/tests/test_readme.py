"""The README's Python snippets run as written (each in a fresh namespace, in an empty
working directory), so what a newcomer copies works."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def snippets():
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)


def test_the_readme_has_a_python_snippet():
    assert snippets(), "README.md has no ```python block"


@pytest.mark.parametrize("code", snippets())
def test_readme_python_snippet_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
