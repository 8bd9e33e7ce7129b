'use strict'
// What the LangChain suites (CommonJS and ES module) share: fixed embeddings, the documents,
// and the oracles (brute-force ranking, the filter, maximal marginal relevance written out
// here from its definition rather than borrowed from @langchain/core).

const { distance } = require('./helpers.js')

/**
 * The documents: text, metadata and the fixed vector their text embeds to. Two pairs are
 * near-duplicates (for MMR); no two are at the same distance from a test query (`nearest`
 * checks), so that every ranking has one right answer.
 */
const DOCS = [
  { text: 'alpha', metadata: { kind: 'a', year: 2020 }, vector: [1, 0, 0, 0] },
  { text: 'alpha again', metadata: { kind: 'a', year: 2021 }, vector: [0.98, 0.03, 0.01, 0] },
  { text: 'beta', metadata: { kind: 'b', year: 2022 }, vector: [0, 1, 0.05, 0] },
  { text: 'beta twin', metadata: { kind: 'b', year: 2023 }, vector: [0.02, 0.97, 0.06, 0.01] },
  { text: 'gamma', metadata: { kind: 'c', year: 2020 }, vector: [0.1, 0, 1, 0.02] },
  { text: 'delta', metadata: { kind: 'c', year: 2024 }, vector: [0, 0.07, 0.03, 1] },
  { text: 'mixed ab', metadata: { kind: 'a', year: 2019 }, vector: [0.62, 0.55, 0.11, 0.03] },
  { text: 'mixed cd', metadata: { kind: 'b', year: 2018 }, vector: [0.04, 0.13, 0.58, 0.66] },
  { text: 'far', metadata: { kind: 'c', year: 2000, tags: ['x'] }, vector: [-1, -0.9, -1.1, -0.95] },
  { text: 'near alpha', metadata: { kind: 'b', year: 2025 }, vector: [0.81, 0.29, 0.18, 0.04] },
]

const TABLE = new Map(DOCS.map((d) => [d.text, d.vector]))

/**
 * Embeddings of fixed vectors: a document's text embeds to its row of DOCS; any other text
 * is a JSON array of four numbers (the query's vector), or the zero-free vector [1,1,1,1].
 * Counts its calls.
 */
function fixedEmbeddings(Embeddings) {
  return class FixedEmbeddings extends Embeddings {
    constructor() {
      super({})
      this.calls = 0
    }

    async embedDocuments(texts) {
      this.calls++
      return texts.map((t) => this.#embed(t))
    }

    async embedQuery(text) {
      this.calls++
      return this.#embed(text)
    }

    #embed(text) {
      if (TABLE.has(text)) return [...TABLE.get(text)]
      if (text.startsWith('[')) return JSON.parse(text)
      return [1, 1, 1, 1]
    }
  }
}

/** The texts of the `k` documents nearest to `q` (euclidean) among those `keep` accepts, with their distances. */
function nearest(q, k, keep = () => true) {
  const all = DOCS.filter((d) => keep(d.metadata))
    .map((d) => ({ text: d.text, distance: distance(d.vector, q, 'euclidean') }))
    .sort((x, y) => x.distance - y.distance)
  for (let i = 1; i < Math.min(k + 1, all.length); i++) {
    if (all[i].distance - all[i - 1].distance < 1e-4) throw new Error(`a tie in the test data at ${q}`)
  }
  return all.slice(0, k)
}

function cosine(a, b) {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i]
    na += a[i] * a[i]
    nb += b[i] * b[i]
  }
  return dot / Math.sqrt(na * nb)
}

/**
 * Maximal marginal relevance over `candidates` (vectors), from its definition: first the
 * candidate most similar to the query, then each time the one maximising
 * `lambda * sim(query, c) - (1 - lambda) * max over chosen s of sim(c, s)` (cosine).
 * Returns the chosen positions.
 */
function mmr(query, candidates, lambda, k) {
  const chosen = []
  while (chosen.length < Math.min(k, candidates.length)) {
    let best = -1
    let bestScore = -Infinity
    candidates.forEach((c, i) => {
      if (chosen.includes(i)) return
      const redundancy = chosen.length ? Math.max(...chosen.map((s) => cosine(c, candidates[s]))) : 0
      const score = chosen.length ? lambda * cosine(query, c) - (1 - lambda) * redundancy : cosine(query, c)
      if (score > bestScore) {
        bestScore = score
        best = i
      }
    })
    chosen.push(best)
  }
  return chosen
}

module.exports = { DOCS, fixedEmbeddings, nearest, mmr, vectorOf: (text) => TABLE.get(text) }
