"""The Python snippets of the README and of docs/FRAMEWORKS.md run as written (each in a
fresh namespace, in an empty working directory), so what a newcomer copies works."""

import pathlib
import re

import pytest
from frameworks import require

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FRAMEWORKS = ROOT / "docs" / "FRAMEWORKS.md"


def snippets(doc):
    return re.findall(r"^```python\n(.*?)^```", doc.read_text(), re.S | re.M)


@pytest.mark.parametrize("doc", [README, FRAMEWORKS], ids=["README", "FRAMEWORKS"])
def test_the_doc_has_a_python_snippet(doc):
    assert snippets(doc), f"{doc.name} has no ```python block"


@pytest.mark.parametrize(
    "doc,code", [(doc, code) for doc in (README, FRAMEWORKS) for code in snippets(doc)]
)
def test_doc_python_snippet_runs(doc, code, tmp_path, monkeypatch):
    # The framework snippets need their framework (skipped without it as their suites are).
    for module, package in (("llama_index.core", "llama-index-core"), ("haystack", "haystack-ai")):
        if re.search(rf"^from {re.escape(module)}\b", code, re.M):
            require(module, package)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(doc), "exec"), {"__name__": "readme"})
