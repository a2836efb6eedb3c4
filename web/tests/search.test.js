// (e) A shopper searches from the header, narrows the results by status, price and
// order (all in the URL, so the back button works), opens a result and buys it; the
// page shows field errors and a busy server; on a phone the search and the filters fit.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE_URL,
  api,
  apiAdminToken,
  apiCreateCoupon,
  apiRegister,
  assertNoPageErrors,
  newPage,
  openBrowser,
  recordOrderStatuses,
  screenshot,
  uiLogin,
  uniq,
} from './helpers.js';

const HOUR = 3_600_000;
const results = '[data-testid="search-results"]';
const result = (page, id) => page.locator(`${results} [data-coupon-id="${id}"]`);
/** The ids of the result cards, in order. */
const resultIds = (page) =>
  page.locator(`${results} [data-coupon-id]`).evaluateAll((els) => els.map((e) => Number(e.dataset.couponId)));

// Three coupons for the whole file, deleted at its end: left behind, they would push
// other files' coupons off the first page of the browse list.
let adminToken, coffee, tea, mug;
before(async () => {
  adminToken = await apiAdminToken();
  const now = Date.now();
  coffee = await apiCreateCoupon(adminToken, {
    name: uniq('Zanzibar coffee'),
    description: 'Single-origin beans from the spice islands, roasted to order.',
    price_cents: 1299,
    total_quantity: 20,
  });
  tea = await apiCreateCoupon(adminToken, {
    name: uniq('Zanzibar tea'),
    // Markup in a coupon's text is text: never parsed, never run.
    description: 'Zanzibar black tea <img src=x onerror="window.__xss=1"> with <b>cardamom</b>.',
    price_cents: 450,
    sale_starts_at: new Date(now + HOUR).toISOString(),
    sale_ends_at: new Date(now + 2 * HOUR).toISOString(),
  });
  mug = await apiCreateCoupon(adminToken, { name: uniq('Plain mug'), price_cents: 800 });
});
after(async () => {
  const ids = [coffee, tea, mug].filter(Boolean).map((c) => c.id);
  await Promise.all(ids.map((id) => api('DELETE', `/api/admin/coupons/${id}`, { token: adminToken })));
});

test('search from the header, sort, filter, open a result and buy it', async (t) => {
  const browser = await openBrowser();
  t.after(browser.close);
  const page = await newPage(browser.context);
  await page.addInitScript(recordOrderStatuses);
  const shopper = await apiRegister('searcher');
  await uiLogin(page, shopper);

  // The header's search box: both Zanzibar coupons, the word marked; not the mug.
  await page.goto('/');
  await page.getByLabel('Search coupons').fill('zanz');
  await page.getByLabel('Search coupons').press('Enter');
  await page.waitForURL(`${BASE_URL}/?q=zanz`);
  await page.getByRole('heading', { name: 'Results for “zanz”' }).waitFor();
  await result(page, coffee.id).waitFor();
  await result(page, tea.id).waitFor();
  assert.equal(await result(page, mug.id).count(), 0, 'the mug does not match "zanz"');
  assert.equal(await result(page, coffee.id).locator('[data-testid="result-name"] mark').textContent(), 'Zanzibar');
  assert.equal(await result(page, tea.id).locator('[data-testid="result-name"] mark').textContent(), 'Zanzibar');
  await page.getByTestId('result-count').filter({ hasText: /^\d+ coupons? found$/ }).waitFor();
  assert.match(await page.getByTestId('stock-as-of').textContent(), /^\s*Stock as of \d\d:\d\d:\d\d \(may have changed\)\s*$/);
  const snippet = result(page, tea.id).getByTestId('result-snippet');
  assert.match(await snippet.textContent(), /<img src=x onerror="window.__xss=1"> with <b>cardamom<\/b>/);
  assert.equal(await snippet.locator('img, b').count(), 0, 'markup in a description became elements');
  assert.equal(await snippet.locator('mark').textContent(), 'Zanzibar');
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.getByLabel('Search coupons').inputValue(), 'zanz');
  await screenshot(page, 'search');

  // Order: the options offered with words; price low to high puts the tea first.
  const sort = page.getByLabel('Sort by');
  assert.deepEqual(await sort.locator('option').allTextContents(), [
    'Relevance',
    'Ending soon',
    'Price low → high',
    'Price high → low',
    'Newest',
  ]);
  await sort.selectOption('price');
  await page.waitForURL(/[?&]sort=price(&|$)/);
  await page.waitForFunction(
    ([sel, first, second]) => {
      const ids = [...document.querySelectorAll(`${sel} [data-coupon-id]`)].map((e) => Number(e.dataset.couponId));
      return ids.includes(first) && ids.includes(second) && ids.indexOf(first) < ids.indexOf(second);
    },
    [results, tea.id, coffee.id],
  );

  // Status Live: only the coffee. Back shows the tea again, forward hides it.
  await page.locator('#search-filters').getByText('Live', { exact: true }).click();
  await page.waitForURL(/[?&]status=live(&|$)/);
  await result(page, tea.id).waitFor({ state: 'detached' });
  await result(page, coffee.id).waitFor();
  assert.ok(await page.getByRole('radio', { name: 'Live', exact: true }).isChecked());
  await page.goBack();
  await result(page, tea.id).waitFor();
  assert.ok(await page.getByRole('radio', { name: 'All', exact: true }).isChecked());
  await page.goForward();
  await result(page, tea.id).waitFor({ state: 'detached' });
  assert.deepEqual(await resultIds(page), [coffee.id]);

  // Prices in dollars, sent in cents. A range the server refuses: its message is at the field.
  await page.getByLabel('Min price (USD)').fill('5');
  await page.getByLabel('Max price (USD)').fill('2');
  await page.getByRole('button', { name: 'Apply prices' }).click();
  await page.waitForURL(/min_price=500&max_price=200/);
  await page.locator('[data-field="max_price"]').filter({ hasText: 'must not be below' }).waitFor();
  assert.equal(await page.getByLabel('Max price (USD)').getAttribute('aria-invalid'), 'true');
  // Up to $10: nothing live matches.
  await page.getByLabel('Max price (USD)').fill('10');
  await page.getByRole('button', { name: 'Apply prices' }).click();
  await page.waitForURL(/max_price=1000/);
  await page.getByTestId('no-results').filter({ hasText: 'No coupons match “zanz” with these filters.' }).waitFor();
  await page.getByTestId('result-count').filter({ hasText: 'No results' }).waitFor();
  assert.equal(await page.locator('[data-field="max_price"]').count(), 0);
  // Up to $20.50: the coffee at $12.99.
  await page.getByLabel('Max price (USD)').fill('20.50');
  await page.getByLabel('Max price (USD)').press('Enter');
  await page.waitForURL(/max_price=2050/);
  await result(page, coffee.id).waitFor();
  assert.deepEqual(await resultIds(page), [coffee.id]);
  const url = new URL(page.url());
  assert.deepEqual(Object.fromEntries(url.searchParams), {
    q: 'zanz',
    status: 'live',
    min_price: '500',
    max_price: '2050',
    sort: 'price',
  });

  // Open it and buy it: PENDING, then PAID.
  await result(page, coffee.id).getByRole('link', { name: coffee.name }).click();
  await page.waitForURL(`${BASE_URL}/coupons/${coffee.id}`);
  await page.getByTestId('live-stock').filter({ hasText: '20 of 20 left' }).waitFor();
  await page.waitForFunction(() => document.querySelector('[data-testid="buy"]')?.disabled === false);
  await page.getByTestId('buy').click();
  await page.waitForURL(/\/orders\?placed=/);
  const orderId = new URL(page.url()).searchParams.get('placed');
  await page.locator(`[data-order-id="${orderId}"][data-status="PAID"]`).waitFor();
  await page.locator(`[data-order-id="${orderId}"]`).getByText(coffee.name).waitFor();
  const log = await page.evaluate(() => window.__statusLog);
  assert.deepEqual(log[orderId], ['PENDING', 'PAID'], 'PENDING first, then PAID');

  // Words the server refuses (over 100 characters, from an edited link): said at the top.
  await page.goto(`/?q=${'x'.repeat(101)}`);
  await page.locator('[role="alert"][data-field="q"]').filter({ hasText: 'at most 100 characters' }).waitFor();

  // A busy server: the page says so and tries again when asked.
  await page.route('**/api/coupons/search?*', (route) =>
    route.fulfill({
      status: 503,
      headers: { 'Retry-After': '1', 'Content-Type': 'application/json' },
      body: JSON.stringify({ error: { code: 'SERVER_BUSY', message: 'busy' } }),
    }),
  );
  await page.goto('/?q=zanz');
  const busy = page.getByRole('alert').filter({ hasText: 'very busy' });
  await busy.waitFor();
  await page.unroute('**/api/coupons/search?*');
  await busy.getByRole('button', { name: 'Try again' }).click();
  await result(page, tea.id).waitFor();
  await busy.waitFor({ state: 'detached' });
  assertNoPageErrors(page);
});

test('on a phone the search box sits in the menu and the filters behind a toggle', async (t) => {
  const browser = await openBrowser();
  t.after(browser.close);
  const page = await newPage(browser.context);
  await page.setViewportSize({ width: 390, height: 844 });

  await page.goto('/');
  const box = page.getByLabel('Search coupons');
  assert.equal(await box.isVisible(), false, 'the search box is in the collapsed menu');
  await page.getByRole('button', { name: 'Toggle navigation' }).click();
  await box.fill('zanzibar');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.waitForURL(/\?q=zanzibar$/);
  await result(page, coffee.id).waitFor();
  await result(page, tea.id).waitFor();
  assert.equal(await box.isVisible(), false, 'the menu closes on search');

  // Filters are behind a toggle; cards stack in one column; nothing scrolls sideways.
  const status = page.getByRole('group', { name: 'Sale status' });
  assert.equal(await status.isVisible(), false);
  const toggle = page.getByRole('button', { name: /^Filters/ });
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
  await toggle.click();
  await status.waitFor();
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
  await page.getByLabel('Sort by').waitFor();
  const [a, b] = await Promise.all([coffee, tea].map((c) => result(page, c.id).boundingBox()));
  assert.equal(a.x, b.x, 'the cards stack in one column');
  assert.ok(a.width > 300, `a card is ${a.width}px wide`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the results scroll sideways by ${overflow}px on a phone`);
  await page.locator('#search-filters').getByText('Live', { exact: true }).click();
  await page.waitForURL(/status=live/);
  await page.getByRole('button', { name: 'Filters (1)' }).waitFor();
  await result(page, tea.id).waitFor({ state: 'detached' });
  await result(page, coffee.id).waitFor();
  await screenshot(page, 'search-phone');
  assertNoPageErrors(page);
});
