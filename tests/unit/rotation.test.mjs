// Key distribution at scale: messages and time for one join and one leave (rotation) at
// 10/50/100/200 members, all key managers in this one process. Prints a table; asserts only
// message counts (time depends on the machine), and that everyone ends up with everyone's keys.
//
// `ms total` is the CPU time of all members together (they share this thread); in a meeting each
// member runs on its own device, so `ms per member` is what one participant spends.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Net } from './net.mjs';

const SIZES = (process.env.CONCLAVE_BENCH_SIZES ?? '10,50,100,200').split(',').map(Number);

/**
 * Every member holds (or can ratchet to) every other member's current key. Large meetings are
 * checked on a sample of receivers: a receiver that joined early ratchets up to N steps per
 * sender here at once, which in a meeting happens one step per join as frames arrive.
 * @param {Net} net
 */
async function everyoneHasEveryKey(net) {
  const all = [...net.members];
  const receivers = all.length <= 20 ? all : [all[0], all[1], all[Math.floor(all.length / 2)], all[all.length - 1]];
  for (const [id, km] of receivers) {
    for (const [other, o] of net.members) {
      if (other === id) continue;
      const kid = /** @type {any} */ (o).send.kid;
      if (!(await km.recvKey(kid, other))) return false;
    }
  }
  return true;
}

test('rotation cost at 10/50/100/200 members', { timeout: 30 * 60 * 1000 }, async () => {
  const rows = [];
  for (const n of SIZES) {
    const net = new Net(`bench-${n}`);
    for (let i = 0; i < n - 1; i++) await net.join(`p${String(i).padStart(4, '0')}`);

    // Join of the n-th member.
    let sent = net.sent;
    let delivered = net.delivered;
    let t0 = performance.now();
    await net.join('pjoiner');
    const join = { sent: net.sent - sent, delivered: net.delivered - delivered, ms: performance.now() - t0 };
    assert.equal(join.sent, 1 + 2 * (n - 1), 'joiner: one hello; each member: its hello with its key; joiner: its key to each');
    assert.ok(await everyoneHasEveryKey(net));

    // One member leaves: every remaining member rotates.
    sent = net.sent;
    delivered = net.delivered;
    t0 = performance.now();
    await net.leave('p0000');
    const leave = { sent: net.sent - sent, delivered: net.delivered - delivered, ms: performance.now() - t0 };
    assert.equal(leave.sent, (n - 1) * (n - 2), 'each remaining member sends its new key to each other one');
    assert.equal(leave.delivered, leave.sent);
    assert.ok(await everyoneHasEveryKey(net));
    const codes = new Set([...net.members.values()].map((m) => m.stats.lastSafety));
    assert.equal(codes.size, 1, 'one safety code on every screen');
    rows.push({
      members: n,
      'join: relays sent': join.sent,
      'join: delivered': join.delivered,
      'join: ms total': Math.round(join.ms),
      'leave: relays sent': leave.sent,
      'leave: delivered': leave.delivered,
      'leave: ms total': Math.round(leave.ms),
      'leave: ms per member': +(leave.ms / (n - 1)).toFixed(2),
    });
    for (const m of net.members.values()) m.stop();
  }
  console.table(rows);
});
