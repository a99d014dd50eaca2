#!/usr/bin/env node
// Development stand-in for the Conclave server: serves web/ like the real server (`/`, `/<room>`
// → index.html, `/assets/<path>`, `/healthz`) with a strict CSP, and speaks the signaling
// protocol's membership and access-control part (join/welcome/subscriptions/participant_*/
// media_state/leave; first joiner is moderator; password, lock, lobby with knocks (passing
// `sealed_name` through), moderator commands; `relay` for end-to-end encryption) without any media
// (offers get no answer). Useful to work on the UI before / without the real server:
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
  if (url.pathname.startsWith('/assets/')) {
    // web/ files, one folder deep at most (e2ee/), nothing outside it.
    const rel = url.pathname.slice('/assets/'.length);
    if (!/^([A-Za-z0-9_-]+\/)?[A-Za-z0-9_-]+\.[a-z]+$/.test(rel)) {
      res.writeHead(404).end('not found');
      return;
    }
    file = rel;
  }
  else if (!/^\/([A-Za-z0-9_-]{1,64})?\/?$/.test(url.pathname)) {
    res.writeHead(404).end('not found');
    return;
  }
  try {
    const body = await readFile(path.join(webDir, file));
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-security-policy': CSP,
      'referrer-policy': 'no-referrer', 'x-content-type-options': 'nosniff', 'permissions-policy': 'camera=(self), microphone=(self)' });
    res.end(body);
  } catch {
    res.writeHead(404).end('not found');
  }
});

/**
 * @typedef {{id: string, name: string, audio: boolean, video: boolean, moderator: boolean, send: (m: object) => void, end: () => void}} Member
 * @typedef {{members: Map<string, Member>, locked: boolean, lobby: boolean, password: string|null, knocks: Map<string, {name: string, admit: () => void, deny: () => void}>}} Room
 */
/** @type {Map<string, Room>} */
const rooms = new Map();
let knockSeq = 0;

/** @param {Member} m */
const info = (m) => ({ id: m.id, name: m.name, audio: m.audio, video: m.video, moderator: m.moderator });
/** @param {Room} r */
const settings = (r) => ({ locked: r.locked, lobby: r.lobby, password: r.password !== null, persistent: false });
/** @param {Room} r @param {object} m @param {string} [except] */
const broadcast = (r, m, except) => { for (const p of r.members.values()) if (p.id !== except) p.send(m); };
/** @param {Room} r @param {object} m */
const toModerators = (r, m) => { for (const p of r.members.values()) if (p.moderator) p.send(m); };

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
  const end = () => { if (!socket.destroyed) socket.end(Buffer.from([0x88, 0])); };
  let buf = Buffer.alloc(0);
  /** @type {null | {room: string, id: string}} */
  let me = null;
  /** @type {null | {room: Room, id: string}} */
  let knocking = null;
  const leave = () => {
    if (knocking) {
      knocking.room.knocks.delete(knocking.id);
      toModerators(knocking.room, { type: 'knock_resolved', knock_id: knocking.id });
      knocking = null;
    }
    if (!me) return;
    const r = rooms.get(me.room);
    r?.members.delete(me.id);
    if (r) broadcast(r, { type: 'participant_left', participant_id: me.id });
    me = null;
  };
  /** @param {string} code @param {string} message */
  const refuse = (code, message) => { send({ type: 'error', code, message }); end(); };
  /** @param {string} roomName @param {Room} r @param {any} msg @param {boolean} moderator */
  const enter = (roomName, r, msg, moderator) => {
    const id = `p${randomBytes(4).toString('hex')}`;
    /** @type {Member} */
    const m = { id, name: msg.name, audio: true, video: true, moderator, send, end };
    send({ type: 'welcome', version: 1, participant_id: id, resume: randomBytes(10).toString('hex'), room: roomName,
      participants: [...r.members.values()].map(info), moderator, settings: settings(r) });
    send({ type: 'subscriptions', slots: { audio: 0, video: 0 }, subscriptions: [] });
    broadcast(r, { type: 'participant_joined', participant: info(m) });
    r.members.set(id, m);
    me = { room: roomName, id };
  };
  /** @param {any} msg */
  const handle = (msg) => {
    if (msg.type === 'join') {
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(msg.room)) return refuse('invalid_room', 'bad room');
      if (!msg.name || msg.name.length > 64) return refuse('invalid_name', 'display name must be 1 to 64 characters');
      // The mock has no keys: every token is one it cannot verify.
      if (msg.token) return refuse('invalid_token', 'the join token could not be verified');
      let r = rooms.get(msg.room);
      const first = !r || r.members.size === 0;
      if (!r) {
        r = { members: new Map(), locked: false, lobby: false, password: null, knocks: new Map() };
        rooms.set(msg.room, r);
      }
      // Mock convention: rooms named `hostonly-*` need a host (display name "Host") to open them.
      if (first && msg.room.startsWith('hostonly-') && msg.name !== 'Host') return refuse('host_required', 'a host must open this room');
      if (first) return enter(msg.room, r, msg, true);
      if (r.locked) return refuse('room_locked', 'the room is locked');
      if (r.password !== null) {
        if (!msg.password) return refuse('password_required', 'this room needs a password');
        if (msg.password !== r.password) return refuse('wrong_password', 'wrong password');
      }
      if (r.lobby) {
        const kid = `k${++knockSeq}`;
        const room = r;
        knocking = { room, id: kid };
        const resolve = () => { room.knocks.delete(kid); knocking = null; toModerators(room, { type: 'knock_resolved', knock_id: kid }); };
        room.knocks.set(kid, {
          name: msg.name,
          admit: () => { resolve(); enter(msg.room, room, msg, false); },
          deny: () => { resolve(); send({ type: 'closed', reason: 'denied' }); end(); },
        });
        send({ type: 'lobby_waiting' });
        toModerators(room, { type: 'knock', knock_id: kid, name: msg.name, ...(msg.sealed_name ? { sealed_name: msg.sealed_name } : {}) });
        return;
      }
      return enter(msg.room, r, msg, false);
    }
    if (!me) return send({ type: 'error', code: 'not_joined', message: 'join first' });
    const r = /** @type {Room} */ (rooms.get(me.room));
    const self = /** @type {Member} */ (r.members.get(me.id));
    if (msg.type === 'media_state') {
      self.audio = msg.audio;
      self.video = msg.video;
      broadcast(r, { type: 'participant_updated', participant: info(self) }, self.id);
      return;
    }
    if (msg.type === 'leave') return leave();
    if (msg.type === 'offer') return; // no media in the mock: offers get no answer
    if (msg.type === 'relay') {
      // Opaque end-to-end encrypted blobs, to one participant or to everyone else.
      if (typeof msg.data !== 'string') return send({ type: 'error', code: 'bad_message', message: 'relay without data' });
      const out = { type: 'relay', from: self.id, data: msg.data };
      if (msg.to) {
        const to = r.members.get(msg.to);
        if (!to) return send({ type: 'error', code: 'unknown_participant', message: 'no such participant' });
        to.send(out);
      } else {
        broadcast(r, out, self.id);
      }
      return;
    }
    const commands = ['mute', 'mute_all', 'stop_video', 'remove', 'set_moderator', 'lock', 'set_lobby', 'set_password', 'admit', 'deny', 'end_meeting'];
    if (!commands.includes(msg.type)) return send({ type: 'error', code: 'bad_message', message: `unknown type ${msg.type}` });
    if (!self.moderator) return send({ type: 'error', code: 'not_moderator', message: 'only moderators can do that' });
    const target = msg.participant_id ? r.members.get(msg.participant_id) : undefined;
    if (msg.participant_id && !target) return send({ type: 'error', code: 'unknown_participant', message: 'no such participant' });
    const knock = msg.knock_id ? r.knocks.get(msg.knock_id) : undefined;
    if (msg.knock_id && !knock) return send({ type: 'error', code: 'unknown_participant', message: 'no such knock' });
    const update = (/** @type {Member} */ m) => broadcast(r, { type: 'participant_updated', participant: info(m) });
    const changed = () => broadcast(r, { type: 'settings', settings: settings(r) });
    switch (msg.type) {
      case 'mute':
        if (target) { target.audio = false; target.send({ type: 'moderated', action: 'muted' }); update(target); }
        break;
      case 'mute_all':
        for (const m of r.members.values()) if (!m.moderator) { m.audio = false; m.send({ type: 'moderated', action: 'muted' }); update(m); }
        break;
      case 'stop_video':
        if (target) { target.video = false; target.send({ type: 'moderated', action: 'video_stopped' }); update(target); }
        break;
      case 'remove':
        if (target) {
          r.members.delete(target.id);
          target.send({ type: 'closed', reason: 'removed' });
          target.end();
          broadcast(r, { type: 'participant_left', participant_id: target.id });
        }
        break;
      case 'set_moderator':
        if (target) { target.moderator = !!msg.moderator; target.send({ type: 'role', moderator: target.moderator }); update(target); }
        break;
      case 'lock': r.locked = !!msg.locked; changed(); break;
      case 'set_lobby': r.lobby = !!msg.enabled; changed(); break;
      case 'set_password': r.password = msg.password || null; changed(); break;
      case 'admit': knock?.admit(); break;
      case 'deny': knock?.deny(); break;
      case 'end_meeting':
        for (const m of [...r.members.values()]) { m.send({ type: 'closed', reason: 'meeting_ended' }); m.end(); }
        r.members.clear();
        break;
    }
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
      handle(msg);
    }
  });
  socket.on('close', leave);
  socket.on('error', leave);
});

server.listen(port, host, () => console.log(`dev mock server on http://${host}:${port}`));
process.on('SIGTERM', () => process.exit(0));
