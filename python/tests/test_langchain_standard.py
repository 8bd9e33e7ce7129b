"""LangChain's own standard vector-store suite against CiphervecVectorStore."""

from typing import Generator

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

import ciphervec as cv
from ciphervec.langchain import CiphervecVectorStore


class TestCiphervecStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self) -> Generator[VectorStore, None, None]:  # type: ignore[override]
        index = cv.Client().create_index("standard", cv.generate_key(), dimension=6)
        yield CiphervecVectorStore(index, self.get_embeddings())
