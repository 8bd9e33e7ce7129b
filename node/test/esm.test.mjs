// The ES module entry points: `import ... from 'ciphervec'` gives the very classes
// `require('ciphervec')` gives (one addon, one set of error classes), and
// `ciphervec/langchain` extends the ES build of @langchain/core, whose `Document`s an ES
// module application gets back.

import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

import * as cv from 'ciphervec'
import cvDefault, { Client, generateKey, CiphervecError, DimensionMismatchError } from 'ciphervec'
import { CiphervecVectorStore } from 'ciphervec/langchain'
import { Document } from '@langchain/core/documents'
import { Embeddings } from '@langchain/core/embeddings'
import { VectorStore } from '@langchain/core/vectorstores'

const require = createRequire(import.meta.url)

test('ESM and CommonJS entries export the same objects', () => {
  const cjs = require('ciphervec')
  assert.deepEqual(Object.keys(cv).filter((k) => k !== 'default').sort(), Object.keys(cjs).sort())
  for (const name of Object.keys(cjs)) {
    assert.equal(cv[name], cjs[name], name)
    assert.equal(cvDefault[name], cjs[name], name)
  }
  assert.equal(Client, cjs.Client)
  // API.md's names.
  for (const name of ['generateKey', 'Client', 'Index', 'CiphervecError', 'WrongKeyError', 'IndexNotFoundError', 'IndexExistsError', 'LockedError', 'CorruptedError', 'RolledBackError', 'UnavailableError', 'InvalidArgumentError', 'InvalidFilterError', 'DimensionMismatchError', 'InvalidVectorError', 'ReadOnlyError', 'PermissionDeniedError', 'UnsupportedFormatError']) {
    assert.equal(typeof cv[name], 'function', name)
  }
})

test('an index through the ESM entry: write, read back, a typed error', async () => {
  const key = generateKey()
  assert.ok(Buffer.isBuffer(key))
  assert.equal(key.length, 32)
  const index = await new Client().createIndex('esm', key, { dimension: 3 })
  await index.upsert(['a', 'b'], new Float32Array([1, 0, 0, 0, 1, 0]))
  const hits = await index.query([0.9, 0.1, 0], { topK: 2 })
  assert.deepEqual(
    hits.map((h) => h.id),
    ['a', 'b'],
  )
  assert.ok(Math.abs(hits[0].distance - Math.hypot(0.1, 0.1)) < 1e-6)
  assert.ok(Math.abs(hits[1].distance - Math.hypot(0.9, 0.9)) < 1e-6)
  const e = await index.query([1, 2]).catch((x) => x)
  assert.ok(e instanceof DimensionMismatchError && e instanceof CiphervecError)
  assert.equal(e.code, 'DIMENSION_MISMATCH')
})

test('ciphervec/langchain (ESM) extends the ES build of @langchain/core and returns its Documents', async () => {
  class Fixed extends Embeddings {
    async embedDocuments(texts) {
      return texts.map((t) => [t.length, 1])
    }

    async embedQuery(t) {
      return [t.length, 1]
    }
  }
  const store = await CiphervecVectorStore.fromTexts(['a', 'bbb', 'bbbbbb'], [{ n: 1 }, { n: 3 }, { n: 6 }], new Fixed({}), {
    indexKey: generateKey(),
  })
  assert.ok(store instanceof VectorStore)
  const docs = await store.similaritySearch('bbbb', 2)
  assert.deepEqual(
    docs.map((d) => [d.pageContent, d.metadata.n]),
    [
      ['bbb', 3],
      ['bbbbbb', 6],
    ],
  )
  for (const d of docs) assert.ok(d instanceof Document)
  const cjs = require('ciphervec/langchain')
  assert.notEqual(cjs.CiphervecVectorStore, CiphervecVectorStore)
})
