// Starts kinesalite bound to loopback (its CLI listens on every interface).
// Usage: node kinesalite.js PORT [SHARD_LIMIT]
'use strict';
const kinesalite = require('kinesalite');

const port = Number(process.argv[2] || 4568);
const shardLimit = Number(process.argv[3] || 200);
const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit });
server.listen(port, '127.0.0.1', (err) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.log(`kinesalite listening on 127.0.0.1:${port} (shardLimit ${shardLimit})`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
