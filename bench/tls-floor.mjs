// The Node TLS floor for streaming: two plain `node` processes (no tsx, no shellwire) moving
// bytes over TLS 1.3 on loopback with TLS_AES_128_GCM_SHA256 (the suite shellwire negotiates,
// src/transport/tls.ts), no framing. The writer writes 64 KiB buffers as fast as the socket
// takes them; the reader discards. Same direction as `shellwire exec`: server writes, client reads.
//   node bench/tls-floor.mjs server KEY CERT BYTES   -> prints "port N", serves each connection BYTES
//   node bench/tls-floor.mjs client PORT BYTES       -> reads BYTES, exits 0 (exit 1 on a short read)
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:tls';

const TLS = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' };
const [mode, ...args] = process.argv.slice(2);

if (mode === 'server') {
  const [keyFile, certFile, bytesText] = args;
  const total = Number(bytesText);
  const chunk = Buffer.alloc(64 * 1024);
  const server = createServer({ ...TLS, key: readFileSync(keyFile), cert: readFileSync(certFile) }, (socket) => {
    socket.on('error', () => {});
    let left = total;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void socket.once('drain', pump);
      }
      socket.end();
    };
    pump();
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`port ${server.address().port}\n`));
  // Ends with its parent (stdin closes).
  process.stdin.on('end', () => process.exit(0)).resume();
} else if (mode === 'client') {
  const [port, bytesText] = args;
  const total = Number(bytesText);
  let got = 0;
  const socket = connect({ ...TLS, host: '127.0.0.1', port: Number(port), rejectUnauthorized: false }, () => {
    if (socket.getCipher().standardName !== 'TLS_AES_128_GCM_SHA256') {
      process.stderr.write(`negotiated ${socket.getCipher().standardName}\n`);
      process.exit(2);
    }
  });
  socket.on('data', (c) => (got += c.length));
  socket.on('end', () => process.exit(got === total ? 0 : 1));
  socket.on('error', (err) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write('usage: tls-floor.mjs server KEY CERT BYTES | client PORT BYTES\n');
  process.exit(2);
}
