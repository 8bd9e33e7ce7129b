// The repository README's JavaScript snippet runs as written: it is copied into a module
// beside this file (so that `import ... from 'ciphervec'` resolves to this package, as it
// does for an application that installed it) and imported; its own asserts check the hits.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const readme = fs.readFileSync(path.join(here, '..', '..', 'README.md'), 'utf8')

test('the README JavaScript snippet runs as written', async () => {
  const snippets = [...readme.matchAll(/^```js\n([\s\S]*?)^```/gm)].map((m) => m[1])
  assert.ok(snippets.length > 0, 'README.md has no ```js block')
  for (const [i, code] of snippets.entries()) {
    const file = path.join(here, `readme-snippet-${process.pid}-${i}.tmp.mjs`)
    fs.writeFileSync(file, code)
    try {
      await import(pathToFileURL(file).href)
    } finally {
      fs.rmSync(file, { force: true })
    }
  }
})
