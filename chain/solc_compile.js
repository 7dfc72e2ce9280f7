// Standard-JSON bridge to the pinned npm solc (solcjs): reads the compiler input on stdin and
// prints {"version": ..., "output": <standard-JSON output>} on stdout. Run by chain/compile.py;
// it needs only this package's node_modules (npm ci --prefix chain).
'use strict';
const solc = require('solc');

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const output = JSON.parse(solc.compile(input));
  process.stdout.write(JSON.stringify({ version: solc.version(), output }));
});
