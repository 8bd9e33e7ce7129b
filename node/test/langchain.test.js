'use strict'
// The LangChain.js store (CommonJS entry `ciphervec/langchain`) with fixed embeddings:
// ranking and distances against brute force, filters against the filter's meaning, delete,
// MMR against its definition, ids, the factories, a retriever, hybrid search.

const assert = require('node:assert/strict')
const { test } = require('node:test')

const { Document } = require('@langchain/core/documents')
const { Embeddings } = require('@langchain/core/embeddings')
const { VectorStore } = require('@langchain/core/vectorstores')
const { CiphervecVectorStore } = require('ciphervec/langchain')

const { cv, tempDir, rejection } = require('./support/helpers.js')
const { DOCS, fixedEmbeddings, nearest, mmr, vectorOf } = require('./support/langchain.js')

const FixedEmbeddings = fixedEmbeddings(Embeddings)

/** A store of DOCS made by fromTexts, in memory. */
async function store(options = {}) {
  return CiphervecVectorStore.fromTexts(
    DOCS.map((d) => d.text),
    DOCS.map((d) => d.metadata),
    new FixedEmbeddings(),
    { indexKey: cv.generateKey(), ...options },
  )
}

const QUERIES = [
  [1, 0, 0, 0],
  [0.5, 0.45, 0.02, 0.01],
  [0.03, 0, 0.7, 0.72],
  [-0.2, 0.1, 0.9, -0.3],
  [0.31, 0.27, 0.33, 0.29],
]

test('a VectorStore whose vector search ranks as brute force, with distances as scores', async () => {
  const s = await store()
  assert.ok(s instanceof VectorStore)
  assert.equal(s._vectorstoreType(), 'ciphervec')
  assert.equal(s.index.size, DOCS.length)
  for (const q of QUERIES) {
    for (const k of [1, 3, DOCS.length]) {
      const got = await s.similaritySearchVectorWithScore(q, k)
      const want = nearest(q, k)
      assert.deepEqual(
        got.map(([d]) => d.pageContent),
        want.map((w) => w.text),
      )
      got.forEach(([doc, score], i) => {
        assert.ok(doc instanceof Document)
        assert.ok(Math.abs(score - want[i].distance) < 1e-5)
        assert.deepEqual(doc.metadata, DOCS.find((d) => d.text === doc.pageContent).metadata)
        assert.equal(typeof doc.id, 'string')
      })
    }
    // The text path embeds the query and answers the same.
    const byText = await s.similaritySearch(JSON.stringify(q), 3)
    assert.deepEqual(
      byText.map((d) => d.pageContent),
      nearest(q, 3).map((w) => w.text),
    )
  }
})

test('filters (objects and JSON text) keep exactly the matching documents, in brute-force order', async () => {
  const s = await store()
  const filters = [
    [{ kind: 'a' }, (m) => m.kind === 'a'],
    [{ year: { $gte: 2022 } }, (m) => m.year >= 2022],
    [{ $or: [{ kind: 'c' }, { year: { $lt: 2019 } }] }, (m) => m.kind === 'c' || m.year < 2019],
    [{ kind: { $in: ['a', 'b'] }, year: { $ne: 2021 } }, (m) => ['a', 'b'].includes(m.kind) && m.year !== 2021],
    [{ kind: 'none' }, () => false],
  ]
  for (const [filter, keep] of filters) {
    for (const q of QUERIES) {
      const want = nearest(q, 4, keep).map((w) => w.text)
      const got = await s.similaritySearchVectorWithScore(q, 4, filter)
      assert.deepEqual(
        got.map(([d]) => d.pageContent),
        want,
        JSON.stringify(filter),
      )
      for (const [d] of got) assert.ok(keep(d.metadata))
      const asText = await s.similaritySearch(JSON.stringify(q), 4, JSON.stringify(filter))
      assert.deepEqual(
        asText.map((d) => d.pageContent),
        want,
      )
    }
  }
  const e = await rejection(s.similaritySearchVectorWithScore([1, 0, 0, 0], 2, { kind: { $bogus: 1 } }))
  assert.ok(e instanceof cv.InvalidFilterError)
})

test('ids: given ids, document ids and fresh UUIDs; re-adding an id replaces; getByIds; delete', async () => {
  const embeddings = new FixedEmbeddings()
  const index = await new cv.Client().createIndex('lc', cv.generateKey(), { dimension: 4 })
  const s = new CiphervecVectorStore(embeddings, { index })
  const docs = DOCS.slice(0, 4).map((d) => new Document({ pageContent: d.text, metadata: d.metadata }))
  docs[1].id = 'own-id'
  const ids = await s.addDocuments(docs, { ids: ['given-0'] })
  assert.equal(ids[0], 'given-0')
  assert.equal(ids[1], 'own-id')
  assert.match(ids[2], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  assert.notEqual(ids[2], ids[3])
  assert.deepEqual(await index.listIds(), [...ids].sort())

  const fetched = await s.getByIds(['own-id', 'missing', 'given-0'])
  assert.deepEqual(
    fetched.map((d) => [d.id, d.pageContent, d.metadata]),
    [
      ['own-id', DOCS[1].text, DOCS[1].metadata],
      ['given-0', DOCS[0].text, DOCS[0].metadata],
    ],
  )
  // The same id again replaces the document.
  await s.addVectors([[0, 0, 0, 1]], [new Document({ pageContent: 'replaced', metadata: { v: 2 } })], { ids: ['own-id'] })
  assert.equal(index.size, 4)
  const [[top, distance]] = await s.similaritySearchVectorWithScore([0, 0, 0, 1], 1)
  assert.deepEqual([top.id, top.pageContent, top.metadata, distance], ['own-id', 'replaced', { v: 2 }, 0])

  await s.delete({ ids: ['own-id', 'not-there'] })
  assert.equal(index.size, 3)
  const left = await s.similaritySearchVectorWithScore([0, 0, 0, 1], 10)
  assert.ok(!left.some(([d]) => d.id === 'own-id'))
  assert.ok((await rejection(s.delete({ filter: {} }))) instanceof cv.InvalidArgumentError)
  await s.delete()
  assert.equal(index.size, 0)
  assert.deepEqual(await s.similaritySearchVectorWithScore([1, 0, 0, 0], 3), [])
  await assert.rejects(s.addVectors([[1, 0, 0, 0]], []), cv.InvalidArgumentError)
  // Only the embeddings' answers reach the index: a vector of the wrong size is refused.
  await assert.rejects(s.addVectors([[1, 0]], [new Document({ pageContent: 'x' })]), cv.DimensionMismatchError)
  assert.ok(embeddings.calls > 0)
})

test('maximal marginal relevance: as its definition over the brute-force candidates', async () => {
  const s = await store()
  for (const q of QUERIES) {
    for (const [k, fetchK, lambda] of [
      [3, 6, 0.5],
      [4, 10, 0.2],
      [2, 5, 0.9],
      [5, 10, 0],
    ]) {
      const candidates = nearest(q, fetchK)
      const picked = mmr(
        q,
        candidates.map((c) => vectorOf(c.text)),
        lambda,
        k,
      ).map((i) => candidates[i].text)
      const got = await s.maxMarginalRelevanceSearch(JSON.stringify(q), { k, fetchK, lambda })
      assert.deepEqual(
        got.map((d) => d.pageContent),
        picked,
        `q ${q} k ${k} fetchK ${fetchK} lambda ${lambda}`,
      )
    }
  }
  // Diversity: near [1,0,0,0] plain similarity returns both alphas, MMR (lambda 0.3) only one.
  const plain = (await s.similaritySearch('[1,0,0,0]', 2)).map((d) => d.pageContent)
  assert.deepEqual(plain, ['alpha', 'alpha again'])
  const diverse = (await s.maxMarginalRelevanceSearch('[1,0,0,0]', { k: 2, fetchK: 6, lambda: 0.3 })).map((d) => d.pageContent)
  assert.equal(diverse[0], 'alpha')
  assert.ok(!diverse.includes('alpha again'))
  // With a filter, only matching documents are candidates.
  const filtered = await s.maxMarginalRelevanceSearch('[1,0,0,0]', { k: 3, fetchK: 10, lambda: 0.5, filter: { kind: 'b' } })
  assert.ok(filtered.every((d) => d.metadata.kind === 'b'))
  assert.equal(filtered.length, 3)
  // A retriever with search type "mmr" goes through the same method.
  const retriever = s.asRetriever({ k: 2, searchType: 'mmr', searchKwargs: { fetchK: 6, lambda: 0.3 } })
  assert.deepEqual(
    (await retriever.invoke('[1,0,0,0]')).map((d) => d.pageContent),
    diverse,
  )
})

test('fromDocuments, then fromExistingIndex on the folder (read-only too); documents stay encrypted', async (t) => {
  const dir = tempDir(t)
  const key = cv.generateKey()
  const embeddings = new FixedEmbeddings()
  const docs = DOCS.map((d, i) => new Document({ id: `doc-${i}`, pageContent: d.text, metadata: d.metadata }))
  const client = new cv.Client(dir)
  const first = await CiphervecVectorStore.fromDocuments(docs, embeddings, {
    indexKey: key,
    client,
    indexName: 'notes',
    indexType: 'ivf_flat',
    metric: 'euclidean',
  })
  assert.deepEqual(await client.listIndexes(), ['notes'])
  assert.deepEqual(await first.index.listIds(), docs.map((d) => d.id).sort())
  // The store keeps no key.
  assert.ok(!Object.values(first).some((v) => Buffer.isBuffer(v) || v instanceof Uint8Array))

  const again = await CiphervecVectorStore.fromExistingIndex(embeddings, { indexKey: key, path: dir, indexName: 'notes' })
  const q = [0, 0, 0.7, 0.7]
  assert.deepEqual(
    (await again.similaritySearchVectorWithScore(q, 3)).map(([d]) => d.id),
    nearest(q, 3).map((w) => `doc-${DOCS.findIndex((d) => d.text === w.text)}`),
  )
  const readOnly = await CiphervecVectorStore.fromExistingIndex(embeddings, {
    indexKey: key,
    client: new cv.Client(dir, { cacheBudget: 1 << 20 }),
    indexName: 'notes',
    readOnly: true,
  })
  assert.equal(readOnly.index.size, DOCS.length)
  await assert.rejects(readOnly.addDocuments([new Document({ pageContent: 'alpha' })]), cv.ReadOnlyError)
  await assert.rejects(
    CiphervecVectorStore.fromExistingIndex(embeddings, { indexKey: cv.generateKey(), path: dir, indexName: 'notes' }),
    cv.WrongKeyError,
  )
  // An index of that name already there.
  await assert.rejects(
    CiphervecVectorStore.fromDocuments(docs, embeddings, { indexKey: key, client, indexName: 'notes' }),
    cv.IndexExistsError,
  )
  assert.throws(() => new CiphervecVectorStore(embeddings, { index: {} }), cv.InvalidArgumentError)
})

test('hybrid: on an index with full text, the query\'s words move a document that holds them up', async () => {
  const texts = ['red apple pie', 'green apple', 'blue sky', 'red car']
  const vectors = { 'red apple pie': [1, 0], 'green apple': [0.9, 0.1], 'blue sky': [0, 1], 'red car': [0.2, 0.8] }
  class Embed extends Embeddings {
    async embedDocuments(ts) {
      return ts.map((t) => vectors[t])
    }

    async embedQuery(t) {
      return t === 'car' ? [0.05, 0.95] : [1, 0]
    }
  }
  const key = cv.generateKey()
  const client = new cv.Client()
  const hybrid = await CiphervecVectorStore.fromTexts(texts, {}, new Embed({}), {
    indexKey: key,
    client,
    indexName: 'h',
    fullText: true,
    hybrid: true,
  })
  const plain = await CiphervecVectorStore.fromExistingIndex(new Embed({}), { indexKey: key, client, indexName: 'h' })
  assert.equal(hybrid.hybrid, true)
  assert.equal(plain.hybrid, false)
  // 'car' embeds near 'blue sky' ([0,1]) first by vector; the text leg ranks 'red car' first.
  const byVector = (await plain.similaritySearch('car', 2)).map((d) => d.pageContent)
  assert.deepEqual(byVector, ['blue sky', 'red car'])
  const fused = (await hybrid.similaritySearch('car', 2)).map((d) => d.pageContent)
  assert.equal(fused[0], 'red car')
})
