// Participants who can only use TURN still meet: the server runs its built-in TURN server and
// tells browsers (in `welcome`) to use relayed candidates only (`--ice-transport-policy relay`).
// This machine cannot block UDP for one browser alone, so relay-only ICE is the stand-in for a
// firewall that lets nothing but the TURN port through: no host candidate is ever tried.
// The second case hands out only the TURN-over-TCP URL, as for a network that blocks all UDP.
// The third does the same through an external coturn configured with `use-auth-secret` and the
// same secret (skipped when coturn is not installed). The last needs no TURN: in a network
// namespace that drops all UDP, browsers use ICE-TCP.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startServer, openBrowser, poll, sleep, randomRoom, randomSecret, remoteTiles, freeTcpPort } from './harness.mjs';

/** @typedef {Awaited<ReturnType<typeof openBrowser>>} Session */

/**
 * The local candidate of the selected ICE pair: type and, for relayed ones, the TURN transport.
 * @param {Session} s
 */
function selectedLocalCandidate(s) {
  return s.page.evaluate(async () => {
    const pc = /** @type {RTCPeerConnection} */ (/** @type {any} */ (window).conclave.pc);
    const stats = await pc.getStats();
    /** @type {any} */
    let pair = null;
    stats.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
    });
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    return { type: local?.candidateType, protocol: local?.protocol, relayProtocol: local?.relayProtocol ?? null };
  });
}

/**
 * Two browsers meet; each must decode the other's video over the expected path.
 * @param {string} label
 * @param {string[]} args extra server arguments
 * @param {{type?: string, protocol?: string, relayProtocol?: string}} path the selected local
 *   candidate (an active TCP candidate shows as `prflx` once its real port is learned)
 */
async function meetingOver(label, args, path) {
  const server = await startServer({ args });
  /** @type {Session[]} */
  const sessions = [];
  try {
    const room = randomRoom('relay');
    const secret = randomSecret();
    const names = ['Alice', 'Bob'];
    sessions.push(...(await Promise.all(names.map(() => openBrowser(server.url)))));
    await Promise.all(
      sessions.map((s, i) => s.page.goto(`${server.url}/${room}?name=${names[i]}&autojoin=1#${secret}`)),
    );
    for (const [i, s] of sessions.entries()) {
      // Video from the other participant decodes: frames rising.
      const tiles = await poll(
        async () => {
          const a = await remoteTiles(s.page);
          if (a.length !== 1 || a[0].width === 0) return false;
          await sleep(1000);
          const b = await remoteTiles(s.page);
          return b.length === 1 && b[0].frames > a[0].frames ? b : false;
        },
        { timeout: 45000, interval: 500, what: `${label}: ${names[i]} plays the other's video` },
      );
      const local = await selectedLocalCandidate(s);
      console.log(`${label}: ${names[i]} video ${tiles[0].width}x${tiles[0].height} frames=${tiles[0].frames}, local candidate ${JSON.stringify(local)}`);
      if (path.type) assert.equal(local?.type, path.type, `${names[i]}: candidate type`);
      else assert.notEqual(local?.type, 'relay', `${names[i]}: straight to the server`);
      if (path.protocol) assert.equal(local?.protocol, path.protocol, `${names[i]}: transport to the server`);
      if (path.relayProtocol) assert.equal(local?.relayProtocol, path.relayProtocol, `${names[i]}: transport to TURN`);
      // No request to anything but the server's own origin (TURN is not an HTTP request, and
      // its address came from the server).
      assert.deepEqual(s.foreign, []);
    }
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
}

/** Built-in TURN on a free port, browsers told to use relayed candidates only. */
async function relayOnly() {
  const turn = `127.0.0.1:${await freeTcpPort()}`;
  return { turn, args: ['--turn-listen', turn, '--ice-transport-policy', 'relay'] };
}

// Inside the namespace below, only the ICE-TCP case runs; outside, it starts the namespace.
const IN_NETNS = process.env.CONCLAVE_UDP_BLOCKED === '1';

test('relay-only browsers meet through the built-in TURN server', { timeout: 180000, skip: IN_NETNS }, async () => {
  const { args } = await relayOnly();
  await meetingOver('TURN UDP+TCP', args, { type: 'relay' });
});

test('relay-only browsers meet through TURN over TCP', { timeout: 180000, skip: IN_NETNS }, async () => {
  const { turn, args } = await relayOnly();
  // Only the TCP URL is handed out, as for a network that blocks all UDP.
  await meetingOver('TURN TCP', [...args, '--turn-url', `turn:${turn}?transport=tcp`], { type: 'relay', relayProtocol: 'tcp' });
});

test('relay-only browsers meet through an external coturn over TCP (use-auth-secret)', { timeout: 180000, skip: IN_NETNS }, async (t) => {
  if (spawnSync('sh', ['-c', 'command -v turnserver']).status !== 0) {
    t.skip('needs coturn (turnserver)');
    return;
  }
  const secret = 'test-only-turn-secret-0123456789';
  const port = await freeTcpPort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'conclave-coturn-'));
  // coturn as an operator would run it next to Conclave, sharing only the secret. Loopback
  // peers must be allowed here because the media server is on 127.0.0.1.
  const coturn = spawn('turnserver', [
    '-n', '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${port}`,
    '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=conclave.test',
    '--allow-loopback-peers', '--no-tls', '--no-dtls', '--no-cli', '--no-stdout-log',
    `--db=${path.join(dir, 'turndb')}`, `--pidfile=${path.join(dir, 'pid')}`,
    `--log-file=${path.join(dir, 'log')}`,
  ], { stdio: 'ignore' });
  try {
    await poll(
      () => new Promise((resolve) => {
        const c = net.connect(port, '127.0.0.1', () => { c.end(); resolve(true); });
        c.on('error', () => resolve(false));
      }),
      { timeout: 15000, what: 'coturn listening' },
    );
    await meetingOver('coturn TCP', [
      '--turn-url', `turn:127.0.0.1:${port}?transport=tcp`, '--turn-secret', secret, '--ice-transport-policy', 'relay',
    ], { type: 'relay', relayProtocol: 'tcp' });
  } finally {
    coturn.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with all UDP dropped, browsers meet over ICE-TCP', { timeout: 180000 }, async (t) => {
  if (IN_NETNS) {
    await meetingOver('ICE-TCP', [], { protocol: 'tcp' });
    return;
  }
  // A network namespace of this test's own whose loopback drops every UDP packet (nftables,
  // input hook): server and browsers run in it, so nothing but TCP gets through.
  const nft = spawnSync('sh', ['-c', 'command -v unshare && command -v nft && command -v ip']);
  if (nft.status !== 0 || process.getuid?.() !== 0) {
    t.skip('needs root, unshare, ip and nft (nftables)');
    return;
  }
  const script = [
    'set -e',
    'ip link set lo up',
    'nft add table inet conclave_test',
    "nft add chain inet conclave_test input '{ type filter hook input priority 0; }'",
    'nft add rule inet conclave_test input meta l4proto udp drop',
    `exec node --test --test-name-pattern='ICE-TCP' ${JSON.stringify(fileURLToPath(import.meta.url))}`,
  ].join('\n');
  // A test run of its own (node:test refuses to nest runs that share its context variable).
  const env = { ...process.env, CONCLAVE_UDP_BLOCKED: '1' };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync('unshare', ['-n', 'sh', '-c', script], {
    env,
    encoding: 'utf8',
    timeout: 170000,
  });
  const out = `${r.stdout}${r.stderr}`;
  for (const line of out.split('\n').filter((l) => l.startsWith('# ICE-TCP'))) console.log(line.slice(2));
  assert.equal(r.status, 0, `meeting in a namespace without UDP failed:\n${out}`);
  assert.match(out, /# pass 1/, out);
});
