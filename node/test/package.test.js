'use strict'
// The npm package as a user gets it: `npm pack` gives a tarball holding the addon, both entry
// points and the declarations (and none of the sources); it installs into an empty folder
// from an empty cache with npm offline, so with no network and without @langchain/core;
// there `require`, `import` and a TypeScript-free quickstart work, and `ciphervec/langchain`
// says what to install.

const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test } = require('node:test')

const PACKAGE = path.join(__dirname, '..')

/** The npm command line beside this Node, or undefined. */
function npmCli() {
  const candidates = [
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ]
  return candidates.find((c) => fs.existsSync(c))
}

function npm(args, cwd, env = {}) {
  return execFileSync(process.execPath, [npmCli(), ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, npm_config_update_notifier: 'false', ...env },
  })
}

test('npm pack; install offline into an empty folder; require, import and the LangChain entry there', { skip: !npmCli() && 'npm is not installed beside node' }, (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ciphervec-pack-'))
  t.after(() => fs.rmSync(work, { recursive: true, force: true }))

  const [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', work], PACKAGE))
  const files = packed.files.map((f) => f.path).sort()
  for (const f of ['package.json', 'README.md', 'index.js', 'index.mjs', 'index.d.ts', 'native.js', 'lib/errors.js', 'lib/langchain-store.js', 'langchain.js', 'langchain.mjs', 'langchain.d.ts']) {
    assert.ok(files.includes(f), `${f} missing from the tarball: ${files}`)
  }
  assert.ok(files.some((f) => /^ciphervec\..+\.node$/.test(f)), 'no addon in the tarball')
  for (const f of files) assert.doesNotMatch(f, /^(src|test|node_modules)\/|Cargo|\.rs$|header\.d\.ts/, f)

  const app = path.join(work, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  // An empty cache and --offline: any package the registry would have to give fails.
  const cache = path.join(work, 'empty-cache')
  npm(['install', '--offline', '--no-audit', '--no-fund', '--cache', cache, path.join(work, packed.filename)], app)
  assert.deepEqual(fs.readdirSync(path.join(app, 'node_modules')).filter((n) => !n.startsWith('.')), ['ciphervec'])

  fs.writeFileSync(
    path.join(app, 'main.js'),
    `const cv = require('ciphervec')
;(async () => {
  const key = cv.generateKey()
  const db = new cv.Client(process.argv[2])
  const index = await db.createIndex('docs', key, { dimension: 3 })
  await index.upsert([{ id: 'a', vector: [1, 0, 0], contents: 'hello', metadata: { n: 1 } }])
  await index.upsert(['b', 'c'], new Float32Array([0, 1, 0, 0, 0, 1]))
  const [hit] = await index.query([0.9, 0.1, 0], { topK: 1, include: ['contents', 'metadata'] })
  const reopened = await new cv.Client(process.argv[2]).loadIndex('docs', key)
  const wrong = await db.loadIndex('docs', cv.generateKey(), { readOnly: true }).catch((e) => [e.name, e.code, e instanceof cv.CiphervecError])
  let langchain
  try { require('ciphervec/langchain') } catch (e) { langchain = [e.code, e.message] }
  console.log(JSON.stringify({ id: hit.id, contents: hit.contents.toString(), metadata: hit.metadata, size: reopened.size, wrong, langchain }))
})()
`,
  )
  const out = JSON.parse(execFileSync(process.execPath, ['main.js', path.join(work, 'db')], { cwd: app, encoding: 'utf8' }))
  assert.equal(out.id, 'a')
  assert.equal(out.contents, 'hello')
  assert.deepEqual(out.metadata, { n: 1 })
  assert.equal(out.size, 3)
  assert.deepEqual(out.wrong, ['WrongKeyError', 'WRONG_KEY', true])
  assert.equal(out.langchain[0], 'MODULE_NOT_FOUND')
  assert.match(out.langchain[1], /npm install @langchain\/core/)

  fs.writeFileSync(
    path.join(app, 'main.mjs'),
    `import { Client, generateKey, DimensionMismatchError } from 'ciphervec'
const index = await new Client().createIndex('docs', generateKey(), { dimension: 2 })
await index.upsert(['x'], new Float32Array([3, 4]))
const [hit] = await index.query([0, 0])
const e = await index.query([1]).catch((x) => x)
const langchain = await import('ciphervec/langchain').catch((x) => x.message)
console.log(JSON.stringify({ hit, mismatch: e instanceof DimensionMismatchError, langchain }))
`,
  )
  const esm = JSON.parse(execFileSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8' }))
  assert.deepEqual(esm.hit, { id: 'x', distance: 5 })
  assert.equal(esm.mismatch, true)
  assert.match(esm.langchain, /npm install @langchain\/core/)
})
