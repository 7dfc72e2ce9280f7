// Standard-JSON bridge to the pinned npm solc (solcjs): reads the compiler input on stdin and
// prints {"version": ..., "output": <standard-JSON output>} on stdout. Run by chain/compile.py;
// it needs only this package's node_modules (npm ci --prefix chain).
//
// Imports of OpenZeppelin Contracts ("@openzeppelin/contracts/...") are read from the pinned npm
// package in chain/node_modules, under their import path as source name: the metadata hash in
// the bytecode then depends only on the package version, never on where the checkout lives.
// Nothing else is resolved (a source that imports anything else fails to compile).
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const PREFIX = '@openzeppelin/contracts/';
const ROOT = path.join(__dirname, 'node_modules', '@openzeppelin', 'contracts');

function findImports(importPath) {
  if (!importPath.startsWith(PREFIX)) {
    return { error: `only ${PREFIX}... imports are resolved (from chain/node_modules): ${importPath}` };
  }
  const resolved = path.resolve(ROOT, importPath.slice(PREFIX.length));
  if (!resolved.startsWith(ROOT + path.sep)) {
    return { error: `import outside ${PREFIX}: ${importPath}` };
  }
  try {
    return { contents: fs.readFileSync(resolved, 'utf8') };
  } catch (err) {
    return { error: `cannot read ${importPath}: ${err.message} (run npm ci --prefix chain)` };
  }
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const output = JSON.parse(solc.compile(input, { import: findImports }));
  process.stdout.write(JSON.stringify({ version: solc.version(), output }));
});
