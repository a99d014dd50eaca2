// Server restart as a participant sees it: SIGTERM makes the server drain, the meeting page
// shows a notice and the meeting goes on until the server closes; then the page tries to
// reconnect by itself. Served over HTTPS/WSS by the server itself (self-signed certificate).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openBrowser, poll, randomRoom, randomSecret } from './harness.mjs';

test('draining server: notice shown, page reconnects by itself', { timeout: 120000 }, async () => {
  const server = await startServer({ args: ['--drain-timeout', '5', '--tls-self-signed'] });
  assert.ok(server.url.startsWith('https://'));
  /** @type {Awaited<ReturnType<typeof openBrowser>> | null} */
  let s = null;
  try {
    s = await openBrowser(server.url, { extraArgs: ['--ignore-certificate-errors'] });
    const page = s.page;
    await page.goto(`${server.url}/${randomRoom('dr')}?name=Dana&autojoin=1#${randomSecret()}`);
    await poll(() => page.evaluate(() => document.body.dataset.state === 'joined'), { what: 'joined over wss' });
    assert.equal(await page.evaluate(() => /** @type {any} */ (window).conclave.connection.ws.url.slice(0, 6)), 'wss://');

    server.signal('SIGTERM');
    await poll(() => page.evaluate(() => document.body.dataset.draining === 'true'), { what: 'draining notice' });
    const notice = await page.locator('#toasts .toast.warning').last().innerText();
    assert.match(notice, /server is restarting/i);
    assert.equal(await page.evaluate(() => document.body.dataset.state), 'joined', 'the meeting goes on');

    // The server closes the meeting at the deadline and exits; the page does not give up.
    await poll(() => server.exited(), { what: 'server exited', timeout: 60000 });
    await poll(() => page.evaluate(() => ['reconnecting', 'joining'].includes(document.body.dataset.state ?? '')), {
      what: 'page reconnecting',
    });
    assert.deepEqual(s.foreign, []);
  } finally {
    await s?.close();
    await server.stop();
  }
});
