// The web page in a real browser: Debian's chromium driven by playwright-core (headless, no
// network beyond the loopback server). Upload the example, add "+blue", run, check that the
// result is mostly blue where the red circle was; cancel a second job; save a screenshot.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type BrowserContext, chromium } from 'playwright-core';
import sharp from 'sharp';
import { repoRoot } from '../helpers.js';
import { api, start, type Started } from './serverHelpers.js';

const CHROMIUM = '/usr/bin/chromium';
export const screenshotDir = join(repoRoot, 'test', 'output');

/** Pixels that are red in the example (the circle), and how many of them are blue in `image`. */
async function blueWhereRed(image: Buffer): Promise<{ circle: number; blue: number }> {
  const original = await sharp(join(repoRoot, 'examples', 'red-circle.png'))
    .removeAlpha()
    .raw()
    .toBuffer();
  const edited = await sharp(image).removeAlpha().resize(64, 64).raw().toBuffer();
  let circle = 0;
  let blue = 0;
  for (let i = 0; i < original.length; i += 3) {
    if (original[i] > 150 && original[i + 1] < 100 && original[i + 2] < 100) {
      circle++;
      if (edited[i + 2] > edited[i] + 40 && edited[i + 2] > edited[i + 1] + 40) blue++;
    }
  }
  return { circle, blue };
}

describe('the web page in chromium', {
  timeout: 120_000,
  skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM} (apt-get install chromium)`,
}, () => {
  let dir: string;
  let server: Started;
  let browser: BrowserContext;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'torchedit-page-'));
    server = await start({ dataDir: join(dir, 'data') });
    // A fresh profile (what --user-data-dir gives), through playwright's persistent context.
    browser = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
      viewport: { width: 1100, height: 820 },
    });
  });

  after(async () => {
    await browser?.close();
    await server?.app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('upload the example, "+blue", run: the circle turns blue; a second job is cancelled; a screenshot is saved', async () => {
    const page = browser.pages()[0] ?? (await browser.newPage());
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    await page.goto(`${server.base}/`);
    await page.getByText('model: shapes-64').waitFor();
    await page.click('#use-example');
    await page.locator('#reconstruction').waitFor({ state: 'visible', timeout: 30_000 });
    await page.locator('#run-edit:not([disabled])').waitFor();
    // The page starts with one concept row, "+blue".
    assert.equal(await page.inputValue('#concepts .concept .prompt'), 'blue');
    await page.click('#run-edit');
    await page.locator('#compare').waitFor({ state: 'visible', timeout: 30_000 });
    const resultUrl = await page.getAttribute('#dl-png', 'href');
    assert.ok(resultUrl);
    const result = await api(server.base, 'GET', new URL(resultUrl, `${server.base}/`).pathname);
    const { circle, blue } = await blueWhereRed(result.bytes);
    assert.ok(circle > 100);
    assert.ok(blue / circle > 0.6, `only ${blue} of ${circle} circle pixels are blue`);
    assert.ok(
      await page
        .locator('#edit-progress .label')
        .textContent()
        .then((t) => t === 'done'),
    );

    // A second edit, cancelled from the page while it waits or runs.
    await page.fill('#target-prompt', 'a blue square');
    await page.locator('#skip').fill('0.05'); // 95 of 100 steps: long enough to be cancelled
    await page.click('#run-edit');
    await page.locator('#cancel-edit').waitFor({ state: 'visible' });
    await page.click('#cancel-edit');
    await page.locator('#error').waitFor({ state: 'visible', timeout: 20_000 });
    assert.match((await page.textContent('#error')) ?? '', /Cancelled.*ERR_ABORTED/);
    const { body } = await api(server.base, 'GET', '/v1/jobs?state=cancelled');
    assert.equal(body.jobs.length, 1);

    await page.fill('#target-prompt', '');
    await page.locator('#skip').fill('0.6');
    await page.click('#run-edit'); // once more, for the screenshot's before/after
    await page.locator('#edit-progress .label', { hasText: 'done' }).waitFor({ timeout: 30_000 });
    await page.locator('#error').evaluate((e) => {
      e.hidden = true;
    });
    mkdirSync(screenshotDir, { recursive: true });
    const file = join(screenshotDir, 'page.png');
    await page.screenshot({ path: file, fullPage: true });
    assert.ok(readFileSync(file).length > 10_000);
    assert.deepEqual(errors, []);
  });

  test('the Imagic tab trains, draws the losses and shows a sweep under an η slider; the queue tab lists the jobs', async () => {
    const page = browser.pages()[0];
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.click('#tab-imagic');
    await page.fill('#imagic-embedding', '3');
    await page.fill('#imagic-finetune', '3');
    await page.fill('#imagic-steps', '10');
    await page.click('#run-imagic');
    await page.locator('#sweep').waitFor({ state: 'visible', timeout: 60_000 });
    assert.ok(await page.locator('#loss-chart').isVisible());
    assert.equal(await page.getAttribute('#eta', 'max'), '5');
    assert.equal(await page.textContent('#eta-value'), '1');
    const first = await page.getAttribute('#sweep-image', 'src');
    await page.locator('#eta').fill('0');
    assert.equal(await page.textContent('#eta-value'), '0');
    assert.notEqual(await page.getAttribute('#sweep-image', 'src'), first);
    await page.screenshot({ path: join(screenshotDir, 'page-imagic.png'), fullPage: true });

    await page.click('#tab-queue');
    await page.locator('#jobs tr', { hasText: 'imagicGenerate' }).waitFor({ timeout: 5_000 });
    const kinds = await page.locator('#jobs tr td:nth-child(2)').allTextContents();
    for (const kind of ['invert', 'edit', 'imagic', 'imagicGenerate']) assert.ok(kinds.includes(kind), `${kind} not in ${kinds}`);
    assert.deepEqual(errors, []);
  });
});
