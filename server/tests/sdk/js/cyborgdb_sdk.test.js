// CyborgDB's own JavaScript SDK (cyborgdb@0.14.0, unchanged, installed by
// scripts/server_sdks.sh under target/server-node) against `ciphervec serve`, started here
// on a free loopback port over a temporary folder. Answers are held to brute force over the
// same vectors, a filter evaluator, and what was written.
//
//   node --test server/tests/sdk/js/
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../../../..');
const SDK = path.join(ROOT, 'target/server-node/node_modules/cyborgdb');
const BIN = process.env.CIPHERVEC_BIN || path.join(ROOT, 'target/release/ciphervec');

const DIM = 12;
const N = 200;

let server;
let client;
let baseUrl;
let Client;
let logPath;
const apiKey = 'js-' + crypto.randomBytes(16).toString('hex');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

// Deterministic vectors in [-1, 1).
function vectors(n, dim, seed) {
  let state = BigInt(seed) * 6364136223846793005n + 1n;
  const out = [];
  for (let i = 0; i < n; i++) {
    const row = [];
    for (let j = 0; j < dim; j++) {
      state = (state * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
      row.push(Math.fround(Number(state >> 40n) / 2 ** 24 * 2 - 1));
    }
    out.push(row);
  }
  return out;
}

function bruteForce(rows, ids, q, k, keep = () => true) {
  return rows
    .map((v, i) => [ids[i], Math.sqrt(v.reduce((s, x, j) => s + (x - q[j]) ** 2, 0)), i])
    .filter(([, , i]) => keep(i))
    .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, k);
}

function assertHits(hits, expected) {
  assert.equal(hits.length, expected.length);
  hits.forEach((h, i) => {
    const [id, d] = expected[i];
    assert.ok(Math.abs(h.distance - d) <= 1e-4 * (1 + d), `hit ${i}: ${h.distance} != ${d}`);
    const tied = expected.filter(([, w]) => Math.abs(w - d) < 1e-5).length > 1;
    if (!tied) assert.equal(h.id, id, `hit ${i}`);
  });
}

const ROWS = vectors(N, DIM, 7);
const IDS = ROWS.map((_, i) => `js-${i}`);
const META = ROWS.map((_, i) => ({ n: i, group: ['red', 'green', 'blue'][i % 3] }));
const QUERIES = vectors(4, DIM, 99);

function newName(prefix) {
  return `${prefix}_${crypto.randomBytes(4).toString('hex')}`;
}

before(async () => {
  if (!fs.existsSync(SDK)) throw new Error(`no cyborgdb SDK at ${SDK}: run scripts/server_sdks.sh`);
  if (!fs.existsSync(BIN)) throw new Error(`no ciphervec binary at ${BIN}: run scripts/test_server.sh`);
  ({ Client } = require(SDK));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cv-serve-js-'));
  logPath = path.join(dir, 'serve.log');
  const port = await freePort();
  const log = fs.openSync(logPath, 'w');
  server = spawn(BIN, ['serve', path.join(dir, 'db'), '--listen', `127.0.0.1:${port}`], {
    env: { ...process.env, CIPHERVEC_API_KEY: apiKey },
    stdio: ['ignore', log, log],
  });
  baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60000;
  for (;;) {
    try {
      const r = await fetch(`${baseUrl}/v1/health`);
      if (r.ok) break;
    } catch (_) { /* not listening yet */ }
    if (server.exitCode !== null || Date.now() > deadline) {
      throw new Error(`ciphervec serve did not start: ${fs.readFileSync(logPath, 'utf8')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  client = new Client({ baseUrl, apiKey });
  // The SDK prints every error object it handles; the expected errors below would flood
  // the test output.
  console.error = () => {};
});

after(() => {
  if (server) server.kill('SIGTERM');
});

async function filledIndex(config = { type: 'ivfflat', dimension: DIM }) {
  const key = Client.generateKey();
  const index = await client.createIndex({ indexName: newName('js'), indexKey: key, indexConfig: config });
  await index.upsert({
    items: ROWS.map((v, i) => ({ id: IDS[i], vector: v, metadata: META[i], contents: `text ${i}` })),
  });
  return { index, key };
}

test('health, create, list, load and delete', async () => {
  const health = await client.getHealth();
  assert.equal(health.status, 'healthy');
  const { index, key } = await filledIndex();
  const name = await index.getIndexName();
  assert.ok((await client.listIndexes()).includes(name));
  const loaded = await client.loadIndex({ indexName: name, indexKey: key });
  const config = await loaded.getIndexConfig();
  assert.equal(config.type, 'ivfflat');
  assert.equal(config.dimension, DIM);
  assert.equal(await loaded.getIndexType(), 'ivfflat');
  assert.equal(await loaded.isTrained(), false);
  await loaded.deleteIndex();
  assert.ok(!(await client.listIndexes()).includes(name));
});

test('queries match brute force, single and batch', async () => {
  const { index } = await filledIndex();
  const single = await index.query({ queryVectors: QUERIES[0], topK: 10 });
  assertHits(single.results, bruteForce(ROWS, IDS, QUERIES[0], 10));
  const batch = await index.query({ queryVectors: QUERIES, topK: 5 });
  assert.equal(batch.results.length, QUERIES.length);
  batch.results.forEach((hits, i) => assertHits(hits, bruteForce(ROWS, IDS, QUERIES[i], 5)));
  await index.deleteIndex();
});

test('filters and include', async () => {
  const { index } = await filledIndex();
  const filter = { group: 'red', n: { $lt: 90 } };
  const res = await index.query({ queryVectors: QUERIES[1], topK: N, filters: filter, include: ['metadata'] });
  const keep = (i) => META[i].group === 'red' && META[i].n < 90;
  assertHits(res.results, bruteForce(ROWS, IDS, QUERIES[1], N, keep));
  for (const h of res.results) assert.equal(h.metadata.group, 'red');
  await index.deleteIndex();
});

test('$regex and $contains filters (the JS SDK passes filters through)', async () => {
  const { index } = await filledIndex();
  const cases = [
    [{ group: { $regex: '^(red|blue)$' } }, (i) => META[i].group === 'red' || META[i].group === 'blue'],
    [{ group: { $contains: 'ee' } }, (i) => META[i].group.includes('ee')],
  ];
  for (const [filter, keep] of cases) {
    const res = await index.query({ queryVectors: QUERIES[2], topK: N, filters: filter });
    assertHits(res.results, bruteForce(ROWS, IDS, QUERIES[2], N, keep));
  }
  await index.deleteIndex();
});

test('get returns what was written, contents decoded by the SDK', async () => {
  const { index } = await filledIndex();
  const got = await index.get({ ids: [IDS[42], 'missing', IDS[7]] });
  assert.deepEqual(got.map((g) => g.id), [IDS[42], IDS[7]]);
  assert.equal(got[0].contents, 'text 42');
  assert.deepEqual(got[0].metadata, META[42]);
  assert.deepEqual(got[0].vector, ROWS[42]);
  await index.deleteIndex();
});

test('upsert by ids and vectors, delete, listIds', async () => {
  const key = Client.generateKey();
  const index = await client.createIndex({ indexName: newName('ids'), indexKey: key, indexConfig: { type: 'ivfflat', dimension: DIM } });
  await index.upsert({ ids: IDS.slice(0, 30), vectors: ROWS.slice(0, 30) });
  await index.delete({ ids: IDS.slice(0, 5) });
  const listed = await index.listIds();
  assert.equal(listed.count, 25);
  assert.deepEqual([...listed.ids].sort(), IDS.slice(5, 30).sort());
  await index.deleteIndex();
});

test('train, isTrained, isTraining; an ivfpq index answers too', async () => {
  const { index } = await filledIndex();
  await index.train({ nLists: 4, maxIters: 10 });
  assert.equal(await index.isTrained(), true);
  const status = await client.isTraining();
  assert.deepEqual(status.training_indexes, []);
  const res = await index.query({ queryVectors: QUERIES[2], topK: 10, nProbes: 4 });
  assertHits(res.results, bruteForce(ROWS, IDS, QUERIES[2], 10));
  await index.deleteIndex();

  const pq = await filledIndex({ type: 'ivfpq', dimension: DIM, pqDim: 4, pqBits: 8 });
  assert.equal(await pq.index.getIndexType(), 'ivfpq');
  const top = await pq.index.query({ queryVectors: ROWS[3], topK: 1 });
  assert.equal(top.results[0].id, IDS[3]);
  await pq.index.deleteIndex();
});

test('errors carry the status codes', async () => {
  const { index, key } = await filledIndex();
  const name = await index.getIndexName();
  await assert.rejects(client.loadIndex({ indexName: name, indexKey: Client.generateKey() }), /401/);
  await assert.rejects(client.loadIndex({ indexName: newName('missing'), indexKey: key }), /404/);
  await assert.rejects(
    client.createIndex({ indexName: name, indexKey: key, indexConfig: { type: 'ivfflat', dimension: DIM } }),
    /409/,
  );
  // The SDK's upsert rewrites the error without its status; the write is refused.
  await assert.rejects(index.upsert({ items: [{ id: 'x', vector: [1, 2] }] }), /error code/);
  assert.ok(!(await index.listIds()).ids.includes('x'));
  const stranger = new Client({ baseUrl, apiKey: 'wrong-key-000000000000' });
  await assert.rejects(stranger.listIndexes(), /401/);
  await index.deleteIndex();
  const logs = fs.readFileSync(logPath, 'utf8');
  assert.ok(logs.includes('request'));
  assert.ok(!logs.includes(Buffer.from(key).toString('hex')));
  assert.ok(!logs.includes(apiKey));
  assert.ok(!logs.includes(name));
});
