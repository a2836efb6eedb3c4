// Shared pieces of the browser tests: the server under test (BASE_URL, started by
// scripts/browser-test.sh), a Chromium driven by playwright-core, API shortcuts for the
// setup, a PNG generator, and screenshots.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, randomUUID } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

export const BASE_URL = (process.env.BASE_URL || '').replace(/\/$/, '');
export const ADMIN = { email: process.env.ADMIN_EMAIL, password: process.env.ADMIN_PASSWORD };
if (!BASE_URL || !ADMIN.email || !ADMIN.password) {
  throw new Error('BASE_URL, ADMIN_EMAIL and ADMIN_PASSWORD must be set (scripts/browser-test.sh does)');
}
const SCREENSHOTS =
  process.env.SCREENSHOT_DIR || fileURLToPath(new URL('../../target/screenshots', import.meta.url));

export const uniq = (label) => `${label} ${randomBytes(3).toString('hex')}`;

// --- browser -------------------------------------------------------------------------

/** A headless Chromium with a fresh profile; `close` removes the profile too. */
export async function openBrowser() {
  const profile = await mkdtemp(join(tmpdir(), 'fsb-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    baseURL: BASE_URL,
    // Against `make cluster` the certificate comes from the cluster's own CA, which
    // this throwaway profile does not know (node's fetch gets it via NODE_EXTRA_CA_CERTS).
    ignoreHTTPSErrors: process.env.IGNORE_HTTPS_ERRORS === '1',
    viewport: { width: 1280, height: 860 },
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  context.setDefaultTimeout(15_000);
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * A new tab (its own sessionStorage, so its own shopper). Uncaught page errors fail the
 * test at `assertNoPageErrors`.
 */
export async function newPage(context) {
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  return page;
}

export function assertNoPageErrors(page) {
  assert.deepEqual(page.errors, [], 'the page threw uncaught errors');
}

export async function screenshot(page, name) {
  await mkdir(SCREENSHOTS, { recursive: true });
  // Let countdowns and images settle so the picture is what a person would see.
  await page.waitForLoadState('networkidle').catch(() => {});
  await page.evaluate(() => {
    window.getSelection()?.removeAllRanges();
    window.scrollTo({ top: 0, behavior: 'instant' });
    document.activeElement?.blur();
  });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/**
 * Records every data-status each order row shows, however briefly, in
 * `window.__statusLog[orderId]` (an init script: runs in the page).
 */
export function recordOrderStatuses() {
  window.__statusLog = {};
  const record = (el) => {
    const id = el.getAttribute('data-order-id');
    const status = el.getAttribute('data-status');
    if (!id || !status) return;
    const log = (window.__statusLog[id] ||= []);
    if (log[log.length - 1] !== status) log.push(status);
  };
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === 'attributes') record(m.target);
      for (const node of m.addedNodes) {
        if (node.nodeType !== 1) continue;
        if (node.matches('[data-order-id]')) record(node);
        node.querySelectorAll('[data-order-id]').forEach(record);
      }
    }
  }).observe(document, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ['data-status'],
  });
}

/** Logs in through the login page; ends wherever the page sends us. */
export async function uiLogin(page, { email, password }, path = '/login') {
  await page.goto(path);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await page.waitForURL((url) => !url.pathname.startsWith('/login'));
  await page.getByTestId('user-email').filter({ hasText: email }).waitFor();
}

/** The coupon's card on the list page, pressing Refresh while the page cache lags. */
export async function couponCard(page, id, { timeoutMs = 20_000 } = {}) {
  const card = page.locator(`[data-testid="coupon-list"] [data-coupon-id="${id}"]`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await card.count()) > 0) return card;
    if (Date.now() > deadline) throw new Error(`coupon ${id} never appeared in the list`);
    await page.waitForTimeout(500);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.waitForLoadState('networkidle').catch(() => {});
  }
}

// --- API shortcuts for the setup -----------------------------------------------------

export async function api(method, path, { token, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(BASE_URL + path, init);
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // 204 and friends
  }
  return { status: response.status, body: json };
}

export async function apiLogin({ email, password }) {
  const r = await api('POST', '/api/auth/login', { body: { email, password } });
  assert.equal(r.status, 200, `login of ${email}: ${JSON.stringify(r.body)}`);
  return r.body.access_token;
}

let adminToken = process.env.ADMIN_TOKEN || null;
/**
 * The admin's bearer token for the setup: from ADMIN_TOKEN (one login per run, since
 * logins are rate-limited per e-mail) or one login per test file.
 */
export async function apiAdminToken() {
  adminToken ||= await apiLogin(ADMIN);
  return adminToken;
}

/** A new shopper account: {email, password}. */
export async function apiRegister(label = 'shopper') {
  const user = {
    email: `${label}-${randomBytes(4).toString('hex')}@example.com`,
    password: `pw-${randomBytes(6).toString('hex')}`,
  };
  const r = await api('POST', '/api/auth/register', { body: user });
  assert.equal(r.status, 201, `register: ${JSON.stringify(r.body)}`);
  return user;
}

/** Creates a coupon on sale now (unless overridden) with the admin's token. */
export async function apiCreateCoupon(adminToken, overrides = {}) {
  const now = Date.now();
  const body = {
    name: uniq('Test coupon'),
    description: 'Created by the browser tests.',
    price_cents: 999,
    total_quantity: 10,
    per_user_limit: 1,
    sale_starts_at: new Date(now - 60_000).toISOString(),
    sale_ends_at: new Date(now + 3_600_000).toISOString(),
    ...overrides,
  };
  const r = await api('POST', '/api/admin/coupons', { token: adminToken, body });
  assert.equal(r.status, 201, `create coupon: ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function apiPurchase(token, couponId) {
  return api('POST', `/api/coupons/${couponId}/purchase`, {
    token,
    headers: { 'Idempotency-Key': randomUUID() },
  });
}

export async function waitFor(what, check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// --- a small valid PNG ---------------------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** An RGB PNG with a diagonal two-colour gradient and stripes (a few hundred bytes). */
export function makePng(width = 320, height = 200, from = [255, 94, 98], to = [255, 195, 113]) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const t = (x + y) / (width + height);
      const stripe = Math.floor((x - y + 1000) / 24) % 2 === 0 ? 1 : 0.92;
      for (let i = 0; i < 3; i++) {
        raw[row + 1 + x * 3 + i] = Math.round((from[i] + (to[i] - from[i]) * t) * stripe);
      }
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
