// Pre-join page: name prefilled from ?name=, camera preview plays; with media permission denied
// the user sees why and can still join receive-only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openBrowser, poll, sleep, randomRoom } from './harness.mjs';

test('pre-join page: prefilled name and playing camera preview', { timeout: 90000 }, async () => {
  const server = await startServer();
  const s = await openBrowser(server.url);
  try {
    await s.page.goto(`${server.url}/${randomRoom('pre')}?name=Dora`);
    await poll(() => s.page.evaluate(() => document.body.dataset.state === 'prejoin'), { what: 'prejoin state' });
    assert.equal(await s.page.locator('#name-input').inputValue(), 'Dora');
    const frames = () =>
      s.page.evaluate(() => {
        const v = /** @type {HTMLVideoElement} */ (document.querySelector('#preview'));
        return { w: v.videoWidth, frames: v.getVideoPlaybackQuality().totalVideoFrames };
      });
    await poll(
      async () => {
        const a = await frames();
        await sleep(1000);
        const b = await frames();
        return b.w > 0 && b.frames > a.frames;
      },
      { what: 'camera preview playing' },
    );
    assert.ok((await s.page.locator('#cam-select option').count()) >= 1, 'camera list filled');
    assert.ok((await s.page.locator('#mic-select option').count()) >= 1, 'microphone list filled');
    assert.deepEqual(s.foreign, []);
  } finally {
    await s.close();
    await server.stop();
  }
});

test('permission denied: clear message, joins receive-only', { timeout: 90000 }, async () => {
  const server = await startServer();
  const s = await openBrowser(server.url, { fakeUi: false, extraArgs: ['--deny-permission-prompts'] });
  try {
    await s.page.goto(`${server.url}/${randomRoom('deny')}?name=Eve`);
    const msg = s.page.locator('#media-message');
    await poll(() => msg.isVisible(), { what: 'media message shown' });
    assert.match(await msg.innerText(), /Camera and microphone access was blocked/);
    await s.page.getByRole('button', { name: 'Join meeting' }).click();
    await poll(() => s.page.evaluate(() => document.body.dataset.state === 'joined'), { what: 'joined' });
    const local = s.page.locator('[data-local]');
    await poll(() => local.count(), { what: 'local tile' });
    assert.equal(await local.getAttribute('data-audio'), 'off');
    assert.equal(await local.getAttribute('data-video'), 'off');
    assert.match(await s.page.locator('#toasts').innerText(), /access was blocked/);
  } finally {
    await s.close();
    await server.stop();
  }
});
