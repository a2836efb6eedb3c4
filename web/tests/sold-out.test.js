// (b) Buying a coupon that someone else just sold out shows the sold-out message; the
// other purchase rejections have their own words too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  api,
  apiCreateCoupon,
  apiAdminToken,
  apiLogin,
  apiPurchase,
  apiRegister,
  assertNoPageErrors,
  newPage,
  openBrowser,
  screenshot,
  uiLogin,
  uniq,
  waitFor,
} from './helpers.js';

test('a sold-out coupon says so, also when the stock on screen was stale', async (t) => {
  const adminToken = await apiAdminToken();
  const lastOne = await apiCreateCoupon(adminToken, {
    name: uniq('Last one'),
    total_quantity: 1,
    per_user_limit: 1,
  });
  const later = await apiCreateCoupon(adminToken, {
    name: uniq('Tomorrow'),
    sale_starts_at: new Date(Date.now() + 86_400_000).toISOString(),
    sale_ends_at: new Date(Date.now() + 2 * 86_400_000).toISOString(),
  });
  // Someone else takes the only unit.
  const rival = await apiRegister('rival');
  const bought = await apiPurchase(await apiLogin(rival), lastOne.id);
  assert.equal(bought.status, 202, JSON.stringify(bought.body));
  await waitFor('stock 0', async () => (await api('GET', `/api/coupons/${lastOne.id}/stock`)).body.remaining === 0);

  const browser = await openBrowser();
  t.after(browser.close);
  const page = await newPage(browser.context);
  await uiLogin(page, await apiRegister('late'));

  await page.goto(`/coupons/${lastOne.id}`);
  await page.getByTestId('sold-out').waitFor();
  const buy = page.getByTestId('buy');
  assert.equal(await buy.isDisabled(), true);
  assert.equal((await buy.textContent()).trim(), 'Sold out');

  // The race a shopper can lose: the page still showed one left when they pressed Buy.
  await page.route(`**/api/coupons/${lastOne.id}/stock`, (route) =>
    route.fulfill({ json: { coupon_id: lastOne.id, remaining: 1 } }),
  );
  await page.waitForFunction(() => document.querySelector('[data-testid="buy"]')?.disabled === false, null, {
    timeout: 5_000,
  });
  await buy.click();
  const error = page.locator('[data-testid="buy-error"][data-code="SOLD_OUT"]');
  await error.waitFor();
  assert.match(await error.textContent(), /sold out/i);
  // The next poll brings the real stock back: nothing left, nothing to press.
  await page.unroute(`**/api/coupons/${lastOne.id}/stock`);
  await page.getByTestId('live-stock').filter({ hasText: '0 of 1 left' }).waitFor();
  assert.equal(await buy.isDisabled(), true);
  await screenshot(page, 'detail-sold-out');

  // Not started yet: a countdown and no way to buy.
  await page.goto(`/coupons/${later.id}`);
  await page.getByText(/Starts in \d/).waitFor();
  assert.equal(await page.getByTestId('buy').isDisabled(), true);
  assert.equal((await page.getByTestId('buy').textContent()).trim(), 'Not on sale yet');
  assertNoPageErrors(page);
});

test('a second purchase over the per-shopper limit is explained', async (t) => {
  const adminToken = await apiAdminToken();
  const coupon = await apiCreateCoupon(adminToken, {
    name: uniq('One each'),
    total_quantity: 20,
    per_user_limit: 1,
  });
  const browser = await openBrowser();
  t.after(browser.close);
  const page = await newPage(browser.context);
  await uiLogin(page, await apiRegister('greedy'));

  await page.goto(`/coupons/${coupon.id}`);
  await page.waitForFunction(() => document.querySelector('[data-testid="buy"]')?.disabled === false);
  await page.getByTestId('buy').click();
  await page.waitForURL(/\/orders\?placed=/);
  await page.goBack();
  await page.waitForFunction(() => document.querySelector('[data-testid="buy"]')?.disabled === false);
  await page.getByTestId('buy').click();
  const error = page.locator('[data-testid="buy-error"][data-code="PURCHASE_LIMIT_REACHED"]');
  await error.waitFor();
  assert.match(await error.textContent(), /purchase limit/);
  assertNoPageErrors(page);
});
