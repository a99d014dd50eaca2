#!/usr/bin/env node
// Development stand-in for the Conclave server: serves web/ like the real server (`/`, `/<room>`
// → index.html, `/assets/<file>`, `/healthz`) with a strict CSP, and speaks the signaling
// protocol's membership part (join/welcome/subscriptions/participant_*/media_state/leave) without
// any media (offers get no answer). Useful to work on the UI before / without the real server:
//   CONCLAVE_BIN=./dev-mock-server.mjs node --test prejoin.test.mjs
// Accepts the real server's `--listen ADDR:PORT` (and ignores `--udp`).

import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');
const argv = process.argv.slice(2);
const listen = argv[argv.indexOf('--listen') + 1] ?? '127.0.0.1:8080';
const [host, port] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; " +
  "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const TYPES = { '.js': 'text/javascript', '.css': 'text/css', '.html': 'text/html; charset=utf-8', '.svg': 'image/svg+xml' };

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/healthz') return void res.end('ok');
  let file = 'index.html';
  if (url.pathname.startsWith('/assets/')) file = path.basename(url.pathname);
  else if (!/^\/([A-Za-z0-9_-]{1,64})?\/?$/.test(url.pathname)) {
    res.writeHead(404).end('not found');
    return;
  }
  try {
    const body = await readFile(path.join(webDir, file));
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-security-policy': CSP });
    res.end(body);
  } catch {
    res.writeHead(404).end('not found');
  }
});

/** @type {Map<string, Map<string, {id: string, name: string, audio: boolean, video: boolean, send: (m: object) => void}>>} */
const rooms = new Map();

server.on('upgrade', (req, socket) => {
  if (!req.url?.startsWith('/ws')) return socket.destroy();
  const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  const send = (/** @type {object} */ m) => {
    const data = Buffer.from(JSON.stringify(m));
    const head = data.length < 126 ? Buffer.from([0x81, data.length])
      : data.length < 65536 ? Buffer.from([0x81, 126, data.length >> 8, data.length & 255])
      : (() => { const b = Buffer.alloc(10); b[0] = 0x81; b[1] = 127; b.writeBigUInt64BE(BigInt(data.length), 2); return b; })();
    if (!socket.destroyed) socket.write(Buffer.concat([head, data]));
  };
  let buf = Buffer.alloc(0);
  /** @type {null | {room: string, id: string}} */
  let me = null;
  const leave = () => {
    if (!me) return;
    const r = rooms.get(me.room);
    r?.delete(me.id);
    for (const p of r?.values() ?? []) p.send({ type: 'participant_left', participant_id: me.id });
    me = null;
  };
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 15;
      let len = buf[1] & 127;
      let off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (buf.length < off + 4 + len) return;
      const mask = buf.subarray(off, off + 4);
      const payload = Buffer.from(buf.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
      buf = buf.subarray(off + 4 + len);
      if (op === 8) { leave(); socket.end(); return; }
      if (op !== 1) continue;
      let msg;
      try { msg = JSON.parse(payload.toString()); } catch { send({ type: 'error', code: 'bad_message', message: 'not JSON' }); continue; }
      if (msg.type === 'join') {
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(msg.room)) { send({ type: 'error', code: 'invalid_room', message: 'bad room' }); socket.end(); return; }
        if (!msg.name || msg.name.length > 64) { send({ type: 'error', code: 'invalid_name', message: 'display name must be 1 to 64 characters' }); socket.end(); return; }
        const id = `p${randomBytes(4).toString('hex')}`;
        const r = rooms.get(msg.room) ?? new Map();
        rooms.set(msg.room, r);
        const info = { id, name: msg.name, audio: true, video: true };
        send({ type: 'welcome', version: 1, participant_id: id, resume: randomBytes(10).toString('hex'), room: msg.room,
          participants: [...r.values()].map(({ send: _s, ...p }) => p) });
        send({ type: 'subscriptions', slots: { audio: 0, video: 0 }, subscriptions: [] });
        for (const p of r.values()) p.send({ type: 'participant_joined', participant: info });
        r.set(id, { ...info, send });
        me = { room: msg.room, id };
      } else if (msg.type === 'media_state' && me) {
        const self = rooms.get(me.room)?.get(me.id);
        if (self) { self.audio = msg.audio; self.video = msg.video; }
        for (const p of rooms.get(me.room)?.values() ?? []) {
          if (p.id !== me.id) p.send({ type: 'participant_updated', participant: { id: me.id, name: self?.name, audio: msg.audio, video: msg.video } });
        }
      } else if (msg.type === 'leave') {
        leave();
      }
    }
  });
  socket.on('close', leave);
  socket.on('error', leave);
});

server.listen(port, host, () => console.log(`dev mock server on http://${host}:${port}`));
process.on('SIGTERM', () => process.exit(0));
