// Compiled by test/types.test.js with `tsc --strict`: the declarations of ciphervec/langchain
// (langchain.d.ts) against @langchain/core's. Never run.
import { Document } from '@langchain/core/documents'
import type { EmbeddingsInterface } from '@langchain/core/embeddings'
import { VectorStore } from '@langchain/core/vectorstores'
import { Client, generateKey } from 'ciphervec'
import { CiphervecVectorStore } from 'ciphervec/langchain'

async function main(embeddings: EmbeddingsInterface): Promise<void> {
  const key = generateKey()
  const store: CiphervecVectorStore = await CiphervecVectorStore.fromTexts(['a'], [{ n: 1 }], embeddings, {
    indexKey: key,
    path: '/tmp/x',
    indexName: 'docs',
    metric: 'cosine',
    fullText: true,
    hybrid: true,
  })
  const base: VectorStore = store
  const ids: string[] = await store.addDocuments([new Document({ pageContent: 'b', metadata: { n: 2 } })])
  const scored: [Document, number][] = await store.similaritySearchVectorWithScore([1, 2], 3, { n: { $gte: 1 } })
  const filteredByText = await store.similaritySearch('a', 2, '{"n": 1}')
  const diverse = await store.maxMarginalRelevanceSearch('a', { k: 2, fetchK: 10, lambda: 0.5 })
  await store.delete({ ids })
  const existing = await CiphervecVectorStore.fromExistingIndex(embeddings, {
    indexKey: key,
    client: new Client('/tmp/x'),
    indexName: 'docs',
    readOnly: true,
  })
  const size: number = existing.index.size
  const direct = new CiphervecVectorStore(embeddings, { index: existing.index, hybrid: false })
  void [base, scored, filteredByText, diverse, size, direct]
}

void main
