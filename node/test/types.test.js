'use strict'
// The TypeScript declarations (index.d.ts, generated from the Rust source with
// lib/header.d.ts; langchain.d.ts) compile, under `--strict`, code that uses the API as the
// other suites do (test/types.ts, test/types-langchain.ts); and code that misuses it does
// not.

const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')

const PACKAGE = path.join(__dirname, '..')

/** The TypeScript compiler of the dev dependencies, or why there is none. */
function tsc() {
  try {
    return require.resolve('typescript/bin/tsc', { paths: [PACKAGE] })
  } catch {
    return undefined
  }
}

/** Runs tsc on `project`: its output, and whether it passed. */
function compile(project) {
  try {
    return { ok: true, out: execFileSync(process.execPath, [tsc(), '-p', project], { encoding: 'utf8' }) }
  } catch (e) {
    return { ok: false, out: `${e.stdout}${e.stderr}` }
  }
}

test('the declarations type-check the API as it is used', { skip: !tsc() && 'typescript is not installed (npm ci)' }, () => {
  const { ok, out } = compile(path.join(__dirname, 'tsconfig.json'))
  assert.ok(ok, out)
})

test('the declarations refuse misuse (wrong option names and types, a missing await)', { skip: !tsc() && 'typescript is not installed (npm ci)' }, (t) => {
  const dir = fs.mkdtempSync(path.join(PACKAGE, 'test', '.tsc-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const cases = {
    misspeltOption: "await new Client().createIndex('x', generateKey(), { dimension: 2, nlists: 4 })",
    dimensionText: "await new Client().createIndex('x', generateKey(), { dimension: '2' })",
    badMetric: "await new Client().createIndex('x', generateKey(), { dimension: 2, metric: 'manhattan' })",
    keyText: "await new Client().loadIndex('x', 'key')",
    hitsNotAwaited: "const i = await new Client().loadIndex('x', generateKey()); const n: number = i.query([1]).length",
    topKText: "const i = await new Client().loadIndex('x', generateKey()); await i.query([1], { topK: '3' })",
    contentsNumber: "const i = await new Client().loadIndex('x', generateKey()); await i.upsert([{ id: 'a', vector: [1], contents: 5 }])",
    wrongCode: "const e = new WrongKeyError('m'); const c: 'LOCKED' = e.code",
  }
  for (const [name, body] of Object.entries(cases)) {
    fs.writeFileSync(
      path.join(dir, `${name}.ts`),
      `import { Client, generateKey, WrongKeyError } from 'ciphervec'\nexport async function f(): Promise<void> {\n  ${body}\n}\n`,
    )
  }
  // One compiler run over every case (the declarations themselves are checked above).
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      extends: '../tsconfig.json',
      compilerOptions: { skipLibCheck: true },
      files: Object.keys(cases).map((name) => `${name}.ts`),
    }),
  )
  const { ok, out } = compile(path.join(dir, 'tsconfig.json'))
  assert.equal(ok, false, out)
  for (const name of Object.keys(cases)) {
    assert.match(out, new RegExp(`${name}\\.ts\\(\\d+,\\d+\\): error TS`), `${name} compiled:\n${out}`)
  }
})
