// Starts dynalite on loopback, surviving clients that abandon a request (a cancelled context): dynalite
// 4.0.0 rethrows the request's 'aborted' error, which would end the whole server.
// Usage: node dynalite.js PORT
'use strict';
const dynalite = require('dynalite');

const port = Number(process.argv[2] || 4569);
process.on('uncaughtException', (err) => {
  if (err && (err.code === 'ECONNRESET' || err.message === 'aborted')) {
    console.error(`dynalite: a client abandoned a request (${err.code || err.message}); continuing`);
    return;
  }
  console.error(err);
  process.exit(1);
});
const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
server.listen(port, '127.0.0.1', (err) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.log(`dynalite listening on 127.0.0.1:${port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
