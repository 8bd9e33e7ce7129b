"""Haystack's own document-store test suites (haystack.testing.document_store and its async
twin) against CiphervecDocumentStore: every class the installed haystack-ai defines.

One override, which Haystack's suite invites ("if a Document Store implementation has a
different behaviour it should override this method"): embeddings are stored as float32, so
documents compare equal with embeddings equal to float32 precision (everything else exact,
in the same order). Nothing is skipped here; the suite itself skips nothing either, since
delete_all_documents takes recreate_index.
"""

import base64

import numpy as np
import pytest
from frameworks import require

haystack = require("haystack", "haystack-ai")

from haystack import Document  # noqa: E402
from haystack.document_stores.types import DuplicatePolicy  # noqa: E402
from haystack.testing import document_store as suite  # noqa: E402
try:  # the async suites came with haystack-ai 2.x's later releases
    from haystack.testing import document_store_async as async_suite  # noqa: E402
except ImportError:
    async_suite = None
from haystack.utils import Secret  # noqa: E402

import ciphervec as cv  # noqa: E402
from ciphervec.haystack import CiphervecDocumentStore  # noqa: E402


def documents_equal(received, expected):
    assert [d.id for d in received] == [d.id for d in expected]
    for got, want in zip(received, expected):
        g, w = got.to_dict(flatten=False), want.to_dict(flatten=False)
        ge, we = g.pop("embedding"), w.pop("embedding")
        assert g == w
        assert (ge is None) == (we is None)
        if we is not None:
            assert np.array_equal(np.float32(ge), np.float32(we))


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("CV_HAYSTACK_TEST_KEY", base64.b64encode(cv.generate_key()).decode())
    return Secret.from_env_var("CV_HAYSTACK_TEST_KEY")


class _Fixture:
    @pytest.fixture
    def document_store(self, key_env):
        # 768: the dimension of the suite's random embeddings.
        return CiphervecDocumentStore(dimension=768, index_key=key_env)

    @staticmethod
    def assert_documents_are_equal(received, expected):
        documents_equal(received, expected)


_EXTRA = [
    getattr(suite, name)
    for name in (
        "CountDocumentsByFilterTest",
        "CountUniqueMetadataByFilterTest",
        "GetMetadataFieldsInfoTest",
        "GetMetadataFieldMinMaxTest",
        "GetMetadataFieldUniqueValuesTest",
    )
    if hasattr(suite, name)
]
_BASE = getattr(suite, "DocumentStoreBaseExtendedTests", suite.DocumentStoreBaseTests)


class TestHaystackSuite(_Fixture, _BASE, *_EXTRA):
    def test_write_documents(self, document_store):
        """The default policy (NONE) behaves as FAIL: nothing of a failing batch is written."""
        doc = Document(content="test doc", meta={"n": 1})
        assert document_store.write_documents([doc]) == 1
        other = Document(content="another")
        with pytest.raises(haystack.document_stores.errors.DuplicateDocumentError):
            document_store.write_documents([other, doc])
        self.assert_documents_are_equal(document_store.filter_documents(), [doc])


_ASYNC = [
    getattr(async_suite, name)
    for name in dir(async_suite)
    if name.endswith("AsyncTest") and isinstance(getattr(async_suite, name), type)
] if async_suite is not None else []


@pytest.mark.skipif(not _ASYNC, reason="this haystack-ai has no haystack.testing.document_store_async")
class TestHaystackAsyncSuite(_Fixture, *_ASYNC):
    async def test_write_documents_async(self, document_store):
        doc = Document(content="test doc")
        assert await document_store.write_documents_async([doc]) == 1
        with pytest.raises(haystack.document_stores.errors.DuplicateDocumentError):
            await document_store.write_documents_async([doc], DuplicatePolicy.NONE)
        self.assert_documents_are_equal(await document_store.filter_documents_async(), [doc])
