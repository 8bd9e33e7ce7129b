'use strict'
// Every error code the package can raise, each from the situation that causes it: an
// instance of its class, of CiphervecError and of Error, with its `code`, and no key byte
// (nor any other secret the call was given) in its message. Values of the wrong type never
// crash the process and leave the index as it was.

const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')

const { cv, data, row, bruteForce, assertExact, tempDir, make, rejection } = require('./support/helpers.js')

const PACKAGE = path.join(__dirname, '..')

/** The renderings of `secret` (a key) that must never appear in a message. */
function renderings(secret) {
  const bytes = Buffer.from(secret)
  return [
    bytes.toString('hex'),
    bytes.toString('hex').toUpperCase(),
    bytes.toString('base64'),
    bytes.toString('base64url'),
    JSON.stringify(Array.from(bytes)),
    Array.from(bytes).join(','),
    // Any 8 bytes of it in a row, as hex (a truncated dump would still leak).
    ...Array.from({ length: bytes.length - 7 }, (_, i) => bytes.subarray(i, i + 8).toString('hex')),
  ]
}

/** `e` is a ciphervec error of `Class` and `code`, whose message holds none of `secrets`. */
function assertError(e, Class, code, secrets = []) {
  assert.ok(e instanceof Error, `not an Error: ${e}`)
  assert.ok(e instanceof cv.CiphervecError, `not a CiphervecError: ${e && e.stack}`)
  assert.ok(e instanceof Class, `${e.name} (${e.code}: ${e.message}) is not a ${Class.name}`)
  assert.equal(e.code, code)
  assert.equal(e.name, Class.name)
  assert.equal(typeof e.message, 'string')
  assert.ok(e.message.length > 0)
  for (const s of secrets) {
    const texts = typeof s === 'string' ? [s] : renderings(s)
    for (const text of texts) assert.ok(!e.message.includes(text), `${code} message quotes a secret: ${e.message}`)
  }
}

/** The exception `fn` throws synchronously (fails if it does not). */
function thrown(fn) {
  try {
    fn()
  } catch (e) {
    return e
  }
  assert.fail('expected an exception')
}

test('WRONG_KEY, INDEX_NOT_FOUND, INDEX_EXISTS: opening, creating and deleting', async () => {
  const client = new cv.Client()
  const key = cv.generateKey()
  const other = cv.generateKey()
  await client.createIndex('docs', key, { dimension: 2 })
  assertError(await rejection(client.loadIndex('docs', other)), cv.WrongKeyError, 'WRONG_KEY', [key, other])
  assertError(await rejection(client.deleteIndex('docs', other)), cv.WrongKeyError, 'WRONG_KEY', [key, other])
  assertError(await rejection(client.loadIndex('missing', key)), cv.IndexNotFoundError, 'INDEX_NOT_FOUND', [key])
  assertError(
    await rejection(client.createIndex('docs', other, { dimension: 2 })),
    cv.IndexExistsError,
    'INDEX_EXISTS',
    [key, other],
  )
  assertError(
    await rejection(client.rotateIndexKey('docs', other, key)),
    cv.WrongKeyError,
    'WRONG_KEY',
    [key, other],
  )
  // The index is still there and opens with its key.
  assert.deepEqual(await client.listIndexes(), ['docs'])
  await client.loadIndex('docs', key)
})

test('LOCKED: a second database of the same folder in this process cannot take the writer', async (t) => {
  const dir = tempDir(t)
  const key = cv.generateKey()
  const writer = await new cv.Client(dir).createIndex('docs', key, { dimension: 2 })
  await writer.upsert([{ id: 'a', vector: [1, 2] }])
  // Another cache budget is another database of the folder, with its own writer lock.
  const second = new cv.Client(dir, { cacheBudget: 1 << 20 })
  assertError(await rejection(second.loadIndex('docs', key)), cv.LockedError, 'LOCKED', [key])
  // Reading beside the writer is allowed.
  const reader = await second.loadIndex('docs', key, { readOnly: true })
  assert.equal(reader.size, 1)
})

test('READ_ONLY: every write through a read-only handle, and nothing changes', async (t) => {
  const dir = tempDir(t)
  const { index: writer, key } = await make({ n: 50, dim: 4, location: dir })
  const reader = await new cv.Client(dir, { cacheBudget: 1 << 20 }).loadIndex('docs', key, { readOnly: true })
  const writes = {
    upsert: () => reader.upsert([{ id: 'x', vector: [1, 2, 3, 4] }]),
    upsertRows: () => reader.upsert(['x'], new Float32Array(4)),
    delete: () => reader.delete(['1']),
    train: () => reader.train(),
    compact: () => reader.compact(),
    rotateDataKey: () => reader.rotateDataKey(),
    enableFullText: () => reader.enableFullText(),
  }
  for (const [name, write] of Object.entries(writes)) {
    const e = await rejection(write())
    assertError(e, cv.ReadOnlyError, 'READ_ONLY', [key])
    assert.ok(e, name)
  }
  assert.equal(reader.size, 50)
  assert.equal(writer.size, 50)
  assert.equal(await reader.refresh(), false)
})

test('CORRUPTED and STORAGE: a damaged manifest, an unreadable location', async (t) => {
  const dir = tempDir(t)
  const { key } = await make({ n: 20, dim: 4, location: dir })
  const manifest = path.join(dir, 'docs', 'MANIFEST')
  const bytes = fs.readFileSync(manifest)
  // A flipped bit of the sealed body (past the 192-byte clear header of docs/FORMAT.md).
  bytes[bytes.length - 40] ^= 0x01
  fs.writeFileSync(manifest, bytes)
  const fresh = new cv.Client(dir, { cacheBudget: 4 << 20 })
  assertError(await rejection(fresh.loadIndex('docs', key, { readOnly: true })), cv.CorruptedError, 'CORRUPTED', [key])

  // A folder below a regular file cannot be created: an I/O error, thrown by the constructor.
  const file = path.join(dir, 'plain-file')
  fs.writeFileSync(file, 'x')
  assertError(
    thrown(() => new cv.Client(path.join(file, 'db'))),
    cv.StorageError,
    'STORAGE',
  )
})

test('UNSUPPORTED_FORMAT: a manifest of a newer format version (its header checksum intact)', async (t) => {
  const dir = tempDir(t)
  const { key } = await make({ n: 20, dim: 4, location: dir })
  const manifest = path.join(dir, 'docs', 'MANIFEST')
  const bytes = fs.readFileSync(manifest)
  // docs/FORMAT.md: the version is the u16 at offset 8, and bytes [0, 156) are checked by the
  // SHA3-256 at offset 156. A newer writer's file has a larger version under a valid checksum.
  assert.equal(bytes.readUInt16LE(8), 8)
  bytes.writeUInt16LE(99, 8)
  crypto.createHash('sha3-256').update(bytes.subarray(0, 156)).digest().copy(bytes, 156)
  fs.writeFileSync(manifest, bytes)
  const fresh = new cv.Client(dir, { cacheBudget: 8 << 20 })
  const e = await rejection(fresh.loadIndex('docs', key, { readOnly: true }))
  assertError(e, cv.UnsupportedFormatError, 'UNSUPPORTED_FORMAT', [key])
  assert.match(e.message, /99/)
})

test('ROLLED_BACK: an anchor taken later than the stored index', async (t) => {
  const dir = tempDir(t)
  const key = cv.generateKey()
  const writer = await new cv.Client(dir).createIndex('docs', key, { dimension: 2 })
  await writer.upsert([{ id: 'a', vector: [1, 0] }])
  const saved = tempDir(t, 'saved')
  fs.cpSync(path.join(dir, 'docs'), path.join(saved, 'docs'), { recursive: true })
  await writer.upsert([{ id: 'b', vector: [0, 1] }])
  const anchor = writer.anchor()
  const old = await new cv.Client(saved).loadIndex('docs', key, { readOnly: true })
  assertError(await rejection(old.checkAnchor(anchor)), cv.RolledBackError, 'ROLLED_BACK', [key])
  // The stale copy, once written to, is a fork: still not the anchored history.
  const forked = await new cv.Client(saved, { cacheBudget: 1 << 20 }).loadIndex('docs', key)
  await forked.upsert([{ id: 'c', vector: [1, 1] }])
  assertError(await rejection(forked.checkAnchor(anchor)), cv.RolledBackError, 'ROLLED_BACK', [key])
})

test('DIMENSION_MISMATCH and INVALID_VECTOR, as the core says, in every call that takes vectors', async () => {
  const index = await new cv.Client().createIndex('docs', cv.generateKey(), { dimension: 3, metric: 'cosine' })
  await index.upsert([{ id: 'a', vector: [1, 2, 3] }])
  const wrongLength = {
    query: () => index.query([1, 2]),
    queryTyped: () => index.query(new Float32Array(4)),
    queryBatchRows: () => index.queryBatch(new Float32Array(4)),
    queryBatchList: () => index.queryBatch([[1, 2, 3], [1, 2]]),
    upsertItems: () => index.upsert([{ id: 'secret-id-5c1e', vector: [1, 2] }]),
    upsertRows: () => index.upsert(['x', 'y'], new Float32Array(8)),
  }
  for (const [name, call] of Object.entries(wrongLength)) {
    const e = await rejection(call())
    assertError(e, cv.DimensionMismatchError, 'DIMENSION_MISMATCH', ['secret-id-5c1e'])
    assert.ok(e, name)
  }
  const invalid = {
    nan: () => index.query([1, NaN, 3]),
    infinite: () => index.query(new Float32Array([1, Infinity, 3])),
    zeroUnderCosine: () => index.query([0, 0, 0]),
    upsertNaN: () => index.upsert([{ id: 'secret-id-5c1e', vector: [NaN, 1, 1] }]),
    upsertRowsNaN: () => index.upsert(['x'], new Float32Array([1, NaN, 1])),
    batchNaN: () => index.queryBatch(new Float32Array([1, 1, 1, NaN, 1, 1])),
  }
  for (const [name, call] of Object.entries(invalid)) {
    const e = await rejection(call())
    assertError(e, cv.InvalidVectorError, 'INVALID_VECTOR', ['secret-id-5c1e'])
    assert.ok(e, name)
  }
  // Nothing was written by the refused batches.
  assert.deepEqual(await index.listIds(), ['a'])
})

test('INVALID_FILTER: malformed filters, as objects and as JSON text', async () => {
  const { index } = await make({ n: 20, dim: 4 })
  for (const filters of [{ a: { $bogus: 1 } }, { $or: 5 }, '{not json', { a: { $in: 3 } }]) {
    assertError(await rejection(index.query([1, 2, 3, 4], { filters })), cv.InvalidFilterError, 'INVALID_FILTER')
    assertError(await rejection(index.queryBatch(new Float32Array(4), { filters })), cv.InvalidFilterError, 'INVALID_FILTER')
  }
})

test('INVALID_ARGUMENT: keys, names, options, ids; a key passed where a name belongs is not quoted', async () => {
  const client = new cv.Client()
  const key = cv.generateKey()
  const index = await client.createIndex('docs', key, { dimension: 2 })
  await index.upsert([{ id: 'a', vector: [1, 2] }])
  const calls = {
    shortKey: () => client.createIndex('x', key.subarray(0, 31), { dimension: 2 }),
    longKey: () => client.loadIndex('docs', Buffer.concat([key, Buffer.from([1])])),
    keyAsHex: () => client.loadIndex('docs', key.toString('hex')),
    keyAsArray: () => client.loadIndex('docs', Array.from(key)),
    keyAsName: () => client.loadIndex(Array.from(key), key),
    keyObjectAsName: () => client.loadIndex({ key: Array.from(key) }, key),
    noOptions: () => client.createIndex('x', key),
    nullOptions: () => client.createIndex('x', key, null),
    noDimension: () => client.createIndex('x', key, {}),
    zeroDimension: () => client.createIndex('x', key, { dimension: 0 }),
    fractionalDimension: () => client.createIndex('x', key, { dimension: 2.5 }),
    dimensionText: () => client.createIndex('x', key, { dimension: '2' }),
    badIndexType: () => client.createIndex('x', key, { dimension: 2, indexType: 'hnsw' }),
    badMetric: () => client.createIndex('x', key, { dimension: 2, metric: 'manhattan' }),
    pqMWithoutPq: () => client.createIndex('x', key, { dimension: 4, pqM: 2 }),
    unknownOption: () => client.createIndex('x', key, { dimension: 2, dimensions: 2 }),
    badName: () => client.createIndex('../escape', key, { dimension: 2 }),
    emptyName: () => client.createIndex('', key, { dimension: 2 }),
    misspeltFilter: () => index.query([1, 2], { filter: { a: 1 } }),
    negativeTopK: () => index.query([1, 2], { topK: -1 }),
    topKText: () => index.query([1, 2], { topK: '3' }),
    badInclude: () => index.query([1, 2], { include: ['secrets'] }),
    vectorText: () => index.query('1,2'),
    vectorObject: () => index.query({ 0: 1, 1: 2 }),
    itemsNotArray: () => index.upsert({ id: 'a', vector: [1, 2] }),
    itemNotObject: () => index.upsert([5]),
    itemUnknownKey: () => index.upsert([{ id: 'a', vector: [1, 2], content: 'x' }]),
    itemNoId: () => index.upsert([{ vector: [1, 2] }]),
    itemEmptyId: () => index.upsert([{ id: '', vector: [1, 2] }]),
    itemIdNumber: () => index.upsert([{ id: 12345678, vector: [1, 2] }]),
    itemCycle: () => {
      const metadata = {}
      metadata.self = metadata
      return index.upsert([{ id: 'a', vector: [1, 2], metadata }])
    },
    itemBigInt: () => index.upsert([{ id: 'a', vector: [1, 2], metadata: { n: 10n } }]),
    contentsNumber: () => index.upsert([{ id: 'a', vector: [1, 2], contents: 7 }]),
    rowsIdsNumbers: () => index.upsert([1, 2], new Float32Array(4)),
    rowsFewer: () => index.upsert(['a', 'b'], new Float32Array(3)),
    rowsNotTyped: () => index.upsert(['a'], [1, 2]),
    getNotArray: () => index.get('a'),
    getIdNumbers: () => index.get([987654321]),
    deleteIdNumbers: () => index.delete([987654321]),
    trainNegative: () => index.train({ nLists: -2 }),
    badAnchor: () => index.checkAnchor('cvanchor2-not-an-anchor'),
    backupNumber: () => index.backupTo(42),
  }
  for (const [name, call] of Object.entries(calls)) {
    // Methods that return a Promise reject it (they never throw), whatever the argument.
    const e = await rejection(call())
    assertError(e, cv.InvalidArgumentError, 'INVALID_ARGUMENT', [key, '12345678', '987654321'])
  }
  // The index is as it was.
  assert.deepEqual(await index.get(['a'], { include: ['vector'] }), [{ id: 'a', vector: new Float32Array([1, 2]) }])
  assert.equal(index.size, 1)
})

test('an exception of the caller\'s own (a throwing getter) passes through unchanged', async () => {
  const index = await new cv.Client().createIndex('docs', cv.generateKey(), { dimension: 2 })
  const mine = new Error('mine')
  const item = {
    get id() {
      throw mine
    },
    vector: [1, 2],
  }
  let e
  try {
    await index.upsert([item])
  } catch (caught) {
    e = caught
  }
  assert.equal(e, mine)
  assert.equal(index.size, 0)
})

test('values of every type in every argument: a typed error or an answer, never a crash; the index unchanged', async (t) => {
  // backupTo('text') writes a folder named 'text' where the process runs: a temporary one.
  const cwd = process.cwd()
  process.chdir(tempDir(t, 'cwd'))
  t.after(() => process.chdir(cwd))
  const dim = 4
  const { client, key, index, base } = await make({ n: 60, dim })
  const q = row(base, dim, 3)
  const before = await index.query(q, { topK: 5 })
  assertExact(before, bruteForce(base, dim, q, 5))
  const values = [
    undefined,
    null,
    0,
    -1,
    1.5,
    NaN,
    Infinity,
    '',
    'text',
    true,
    10n,
    Symbol('s'),
    () => 1,
    {},
    [],
    [null],
    [undefined],
    ['a', 5],
    new Float32Array(0),
    new Float64Array(dim),
    new Uint8Array(32),
    Buffer.alloc(3),
    new Date(0),
    new Map(),
    Promise.resolve(1),
  ]
  const methods = {
    createIndex: (v) => client.createIndex(v, v, v),
    createIndexOptions: (v) => client.createIndex('x', key, { dimension: 2, nLists: v }),
    loadIndex: (v) => client.loadIndex('docs', key, v),
    deleteIndex: (v) => client.deleteIndex(v, v),
    upsert: (v) => index.upsert(v),
    upsertItem: (v) => index.upsert([{ id: 'new', vector: v }]),
    upsertRows: (v) => index.upsert(['new'], v),
    query: (v) => index.query(v),
    queryOptions: (v) => index.query(q, v),
    queryTopK: (v) => index.query(q, { topK: v }),
    queryFilters: (v) => index.query(q, { filters: v }),
    queryBatch: (v) => index.queryBatch(v),
    queryText: (v) => index.queryText(v, v),
    train: (v) => index.train(v),
    get: (v) => index.get(v, v),
    delete: (v) => index.delete(v),
    checkAnchor: (v) => index.checkAnchor(v),
    backupTo: (v) => index.backupTo(v),
  }
  let failures = 0
  for (const [name, call] of Object.entries(methods)) {
    for (const v of values) {
      let pending
      try {
        pending = call(v)
      } catch (e) {
        assert.fail(`${name} threw instead of rejecting: ${e}`)
      }
      assert.ok(pending instanceof Promise, name)
      try {
        await pending
      } catch (e) {
        failures++
        assert.ok(e instanceof cv.CiphervecError, `${name}(${String(typeof v === 'symbol' ? 'symbol' : v)}): ${e && e.stack}`)
        assert.ok(!e.message.includes(key.toString('hex')))
      }
    }
  }
  assert.ok(failures > 0)
  // Some of those calls were valid writes ('new' with a vector of the right type, deletes of
  // unknown ids): the original rows answer as before.
  await index.delete(['new'])
  assert.equal(index.size, 60)
  assertExact(await index.query(q, { topK: 5 }), bruteForce(base, dim, q, 5))
})

test('the codes: each code the addon maps has its class, its declaration, and only one', () => {
  const rust = fs.readFileSync(path.join(PACKAGE, 'src', 'errors.rs'), 'utf8')
  const mapped = new Set([...rust.matchAll(/=> "([A-Z_]+)"/g)].map((m) => m[1]))
  mapped.add('INTERNAL')
  const declared = fs.readFileSync(path.join(PACKAGE, 'lib', 'header.d.ts'), 'utf8')
  const union = declared.slice(declared.indexOf('export type CiphervecErrorCode'), declared.indexOf('/** Base class'))
  const declaredCodes = new Set([...union.matchAll(/'([A-Z_]+)'/g)].map((m) => m[1]))
  const classes = Object.values(cv).filter((v) => typeof v === 'function' && v.prototype instanceof cv.CiphervecError)
  const classCodes = new Set(classes.map((C) => new C('m').code))
  assert.equal(classCodes.size, classes.length, 'two classes share a code')
  assert.deepEqual([...mapped].sort(), [...declaredCodes].sort())
  assert.deepEqual([...classCodes, 'INTERNAL'].sort(), [...mapped].sort())
  // API.md's list, each with the class name it gives.
  const api = {
    WRONG_KEY: 'WrongKeyError',
    INDEX_NOT_FOUND: 'IndexNotFoundError',
    INDEX_EXISTS: 'IndexExistsError',
    LOCKED: 'LockedError',
    CORRUPTED: 'CorruptedError',
    ROLLED_BACK: 'RolledBackError',
    UNAVAILABLE: 'UnavailableError',
    INVALID_ARGUMENT: 'InvalidArgumentError',
    INVALID_FILTER: 'InvalidFilterError',
    DIMENSION_MISMATCH: 'DimensionMismatchError',
    INVALID_VECTOR: 'InvalidVectorError',
    READ_ONLY: 'ReadOnlyError',
    PERMISSION_DENIED: 'PermissionDeniedError',
    UNSUPPORTED_FORMAT: 'UnsupportedFormatError',
  }
  for (const [code, name] of Object.entries(api)) {
    const C = cv[name]
    assert.equal(typeof C, 'function', name)
    const e = new C('message')
    assert.equal(e.code, code)
    assert.equal(e.name, name)
    assert.ok(e instanceof cv.CiphervecError && e instanceof Error)
  }
})
