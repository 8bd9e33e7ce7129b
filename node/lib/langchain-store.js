'use strict'
// The LangChain.js vector store over an encrypted ciphervec index, as a class factory: the
// CommonJS entry (langchain.js) calls it with @langchain/core's CommonJS build and the ES
// module entry (langchain.mjs) with its ES build, so the store extends the `VectorStore` and
// returns the `Document`s of the build the application itself uses.
//
// Texts are stored as the items' contents and metadata as their metadata, both encrypted at
// rest; the filter is ciphervec's MongoDB-style filter (dotted paths reach nested fields).
// Scores are distances under the index metric: smaller is closer.

const { randomUUID } = require('node:crypto')
const cv = require('../index.js')

/** What search reads back: the document's text and metadata. */
const FIELDS = ['metadata', 'contents']

/** The keys `delete` takes. */
const DELETE_KEYS = new Set(['ids'])

/** The `CiphervecVectorStore` class over `VectorStore`, `Document` and `maximalMarginalRelevance` of one build of @langchain/core. */
function defineStore({ VectorStore, Document, maximalMarginalRelevance }) {
  function documentOf(record) {
    return new Document({
      id: record.id,
      pageContent: record.contents ? record.contents.toString('utf8') : '',
      metadata: record.metadata ?? {},
    })
  }

  class CiphervecVectorStore extends VectorStore {
    /**
     * A store over an open ciphervec `Index`. `hybrid: true` (an index created with
     * `fullText: true`) makes every text similarity search hybrid: the query's BM25 ranking
     * is fused with the vector ranking.
     */
    constructor(embeddings, { index, hybrid = false } = {}) {
      super(embeddings, {})
      if (!(index instanceof cv.Index)) {
        throw new cv.InvalidArgumentError('CiphervecVectorStore needs { index }: a ciphervec Index')
      }
      this.index = index
      this.hybrid = Boolean(hybrid)
    }

    _vectorstoreType() {
      return 'ciphervec'
    }

    /** Upserts documents with their vectors (an existing id is replaced); resolves to their ids: `options.ids`, else each document's `id`, else a random UUID. */
    async addVectors(vectors, documents, options = {}) {
      if (vectors.length !== documents.length) {
        throw new cv.InvalidArgumentError('addVectors takes one vector per document')
      }
      const given = options.ids ?? []
      const ids = documents.map((d, i) => given[i] || d.id || randomUUID())
      if (documents.length === 0) return ids
      await this.index.upsert(
        documents.map((d, i) => ({
          id: ids[i],
          vector: Float32Array.from(vectors[i]),
          contents: d.pageContent ?? '',
          metadata: d.metadata ?? {},
        })),
      )
      return ids
    }

    /** Embeds the documents' text and upserts them; resolves to their ids. */
    async addDocuments(documents, options = {}) {
      const vectors = await this.embeddings.embedDocuments(documents.map((d) => d.pageContent))
      return this.addVectors(vectors, documents, options)
    }

    /** Deletes the documents `{ids}` (unknown ids are ignored); with no ids, every document. */
    async delete(params = {}) {
      for (const key of Object.keys(params)) {
        if (!DELETE_KEYS.has(key)) {
          throw new cv.InvalidArgumentError(`delete takes { ids }, not ${JSON.stringify(key)}`)
        }
      }
      const ids = params.ids ?? (await this.index.listIds())
      await this.index.delete(ids)
    }

    /** The documents with these ids, in the order given (unknown ids skipped). */
    async getByIds(ids) {
      return (await this.index.get(ids, { include: FIELDS })).map(documentOf)
    }

    /** The `k` nearest documents to a vector, with their distance (smaller is closer). */
    async similaritySearchVectorWithScore(query, k, filter) {
      return this.#search(query, k, filter)
    }

    /** As LangChain's, and hybrid (the query's words fused with its vector) when the store is. */
    async similaritySearchWithScore(query, k = 4, filter = undefined) {
      const vector = await this.embeddings.embedQuery(query)
      return this.#search(vector, k, filter, this.hybrid ? query : undefined)
    }

    /** As LangChain's (which retrievers call), hybrid when the store is. */
    async similaritySearch(query, k = 4, filter = undefined) {
      return (await this.similaritySearchWithScore(query, k, filter)).map(([doc]) => doc)
    }

    async #search(vector, k, filter, text) {
      if (this.index.size === 0) return []
      const hits = await this.index.query(Float32Array.from(vector), {
        topK: k,
        filters: filter,
        include: FIELDS,
        text,
      })
      return hits.map((h) => [documentOf(h), h.distance])
    }

    /**
     * `k` documents picked for relevance and diversity (maximal marginal relevance) among
     * the `fetchK` (default 20) nearest: `lambda` 1 is plain similarity, 0 the most diverse
     * (default 0.5). The candidates' vectors come back from the index (decrypted).
     */
    async maxMarginalRelevanceSearch(query, options) {
      const { k = 4, fetchK = 20, lambda = 0.5, filter } = options ?? {}
      if (this.index.size === 0 || k <= 0) return []
      const vector = await this.embeddings.embedQuery(query)
      const hits = await this.index.query(Float32Array.from(vector), {
        topK: Math.max(fetchK, k),
        filters: filter,
        include: [...FIELDS, 'vector'],
      })
      if (hits.length === 0) return []
      const chosen = maximalMarginalRelevance(
        vector,
        hits.map((h) => Array.from(h.vector)),
        lambda,
        Math.min(k, hits.length),
      )
      return chosen.map((i) => documentOf(hits[i]))
    }

    /**
     * Creates an index sized to the embeddings and adds the texts. `dbConfig`: `indexKey`
     * (required, 32 bytes), `client` (a `Client`) or `path` (default: in memory),
     * `indexName` (default 'langchain'), `hybrid`, and `createIndex`'s options (`indexType`,
     * `metric`, `fullText`...).
     */
    static async fromTexts(texts, metadatas, embeddings, dbConfig) {
      const docs = texts.map(
        (pageContent, i) =>
          new Document({
            pageContent,
            metadata: Array.isArray(metadatas) ? (metadatas[i] ?? {}) : (metadatas ?? {}),
          }),
      )
      return this.fromDocuments(docs, embeddings, dbConfig)
    }

    /** As `fromTexts`, from documents (their `id`s are kept). */
    static async fromDocuments(docs, embeddings, dbConfig = {}) {
      const { indexKey, client, path, indexName = 'langchain', hybrid = false, ...create } = dbConfig
      const probe = await embeddings.embedQuery(docs[0]?.pageContent ?? 'dimension')
      if (!probe.length || !probe.every(Number.isFinite)) {
        throw new cv.InvalidVectorError('the embeddings returned an empty or non-finite vector')
      }
      const db = client ?? new cv.Client(path)
      const index = await db.createIndex(indexName, indexKey, { dimension: probe.length, ...create })
      const store = new this(embeddings, { index, hybrid })
      await store.addDocuments(docs)
      return store
    }

    /** A store over an existing index: `dbConfig` as `fromTexts` (`indexKey`, `client` or `path`, `indexName`, `hybrid`, `readOnly`). */
    static async fromExistingIndex(embeddings, dbConfig = {}) {
      const { indexKey, client, path, indexName = 'langchain', hybrid = false, readOnly = false } = dbConfig
      const db = client ?? new cv.Client(path)
      const index = await db.loadIndex(indexName, indexKey, { readOnly })
      return new this(embeddings, { index, hybrid })
    }
  }

  return CiphervecVectorStore
}

/** Says what to install when @langchain/core is missing. */
function missingLangChain(e) {
  const error = new Error(
    "ciphervec/langchain needs @langchain/core 1.x, an optional peer dependency: npm install @langchain/core",
  )
  error.code = 'MODULE_NOT_FOUND'
  error.cause = e
  return error
}

module.exports = { defineStore, missingLangChain }
