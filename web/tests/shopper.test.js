// (a) A shopper registers, logs in, browses, buys, and watches the order go from
// PENDING to PAID on "My orders" without reloading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE_URL,
  api,
  apiCreateCoupon,
  apiAdminToken,
  apiRegister,
  assertNoPageErrors,
  couponCard,
  newPage,
  openBrowser,
  recordOrderStatuses,
  screenshot,
  uiLogin,
  uniq,
} from './helpers.js';

test('register, log in, browse, buy, and see PENDING then PAID live', async (t) => {
  const adminToken = await apiAdminToken();
  const coupon = await apiCreateCoupon(adminToken, {
    name: uniq('Pizza for two'),
    description: 'Two large pizzas of your choice.',
    price_cents: 1299,
    total_quantity: 50,
    per_user_limit: 5,
  });

  const browser = await openBrowser();
  t.after(browser.close);
  const page = await newPage(browser.context);
  await page.addInitScript(recordOrderStatuses);

  // Register, then log in with the new account.
  const email = `shopper-${Date.now()}@example.com`;
  const password = 'correct horse battery';
  await page.goto('/');
  await page.getByRole('link', { name: 'Register' }).click();
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByTestId('form-error').filter({ hasText: 'at least 8 characters' }).waitFor();
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL(/\/login\?/);
  await page.getByText('Your account is ready').waitFor();
  assert.equal(await page.getByLabel('E-mail').inputValue(), email);
  await page.getByLabel('Password').fill('wrong password');
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await page.getByTestId('form-error').filter({ hasText: 'Wrong e-mail or password' }).waitFor();
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await page.waitForURL(`${BASE_URL}/`);
  await page.getByTestId('user-email').filter({ hasText: email }).waitFor();

  // Browse: pages of four, then the whole first page.
  await page.goto('/?size=4');
  await page.locator('[data-testid="coupon-list"] [data-coupon-id]').nth(3).waitFor();
  const firstPage = await page.locator('[data-coupon-id]').evaluateAll((els) => els.map((e) => e.dataset.couponId));
  await page.getByRole('button', { name: 'Next »' }).click();
  await page.waitForURL(/page=2/);
  await page.waitForFunction(
    (first) => {
      const ids = [...document.querySelectorAll('[data-coupon-id]')].map((e) => e.dataset.couponId);
      return ids.length > 0 && !ids.some((id) => first.includes(id));
    },
    firstPage,
  );
  await page.getByRole('link', { name: 'Coupons', exact: true }).click();
  const card = await couponCard(page, coupon.id);
  await card.getByText('$12.99').waitFor();
  await card.getByText('may be delayed').waitFor();
  await card.getByText(/Ends in/).waitFor();
  await screenshot(page, 'list-shopper');

  // The coupon page: live stock, an enabled Buy button.
  await card.getByRole('link', { name: coupon.name }).click();
  await page.waitForURL(`${BASE_URL}/coupons/${coupon.id}`);
  await page.getByTestId('live-stock').filter({ hasText: '50 of 50 left' }).waitFor();
  const buy = page.getByTestId('buy');
  await page.waitForFunction(() => document.querySelector('[data-testid="buy"]')?.disabled === false);
  assert.equal((await buy.textContent()).trim(), 'Buy now');
  await screenshot(page, 'detail');

  // A double click is one purchase intent: one order.
  await page.evaluate(() => (window.__sameDocument = true));
  await buy.dblclick();
  await page.waitForURL(/\/orders\?placed=/);
  const orderId = new URL(page.url()).searchParams.get('placed');
  const row = page.locator(`[data-order-id="${orderId}"]`);
  await row.waitFor();
  // Pushed live; a push Redis pub/sub dropped is caught by the page's own safety poll
  // (every 15 s with a socket), which is what a shopper would then see.
  await page
    .locator(`[data-order-id="${orderId}"][data-status="PAID"]`)
    .waitFor({ timeout: 20000 });
  await row.getByText('Paid').waitFor();
  await row.getByText(coupon.name).waitFor();

  const seen = await page.evaluate(() => ({ log: window.__statusLog, same: window.__sameDocument }));
  assert.equal(seen.same, true, 'the orders page was reloaded');
  assert.deepEqual(seen.log[orderId], ['PENDING', 'PAID'], 'PENDING first, then PAID');
  assert.equal(await page.locator('[data-testid="orders"] [data-order-id]').count(), 1);
  await page.getByTestId('live-state').and(page.locator('[data-state="open"]')).waitFor();
  await screenshot(page, 'orders');

  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('flash-sale.session')).token);
  const orders = await api('GET', '/api/orders', { token });
  assert.equal(orders.body.items.length, 1, 'a double click bought twice');
  assert.equal(orders.body.items[0].status, 'PAID');

  // Phone width: the list fits without sideways scrolling.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto('/');
  await couponCard(page, coupon.id);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the list scrolls sideways by ${overflow}px on a phone`);
  await screenshot(page, 'list-phone');
  await page.getByRole('button', { name: 'Toggle navigation' }).click();
  await page.getByRole('link', { name: 'My orders' }).waitFor();
  await page.setViewportSize({ width: 1280, height: 860 });

  // Log out: the orders page asks to log in.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('link', { name: 'Log in' }).waitFor();
  await page.goto('/orders');
  await page.waitForURL(/\/login\?next=(%2F|\/)orders/);
  assertNoPageErrors(page);
});

test('without a socket the orders page polls; an expired session asks to log in again', async (t) => {
  const adminToken = await apiAdminToken();
  const coupon = await apiCreateCoupon(adminToken, { name: uniq('Car wash'), total_quantity: 20, per_user_limit: 2 });
  const browser = await openBrowser();
  t.after(browser.close);
  const page = await newPage(browser.context);
  // Every WebSocket is refused: the page must fall back to polling.
  await page.routeWebSocket(/\/ws$/, (ws) => ws.close({ code: 1011, reason: 'test: no sockets' }));
  const shopper = await apiRegister('offline');
  await uiLogin(page, shopper);

  await page.goto(`/coupons/${coupon.id}`);
  await page.waitForFunction(() => document.querySelector('[data-testid="buy"]')?.disabled === false);
  await page.getByTestId('buy').click();
  await page.waitForURL(/\/orders\?placed=/);
  const orderId = new URL(page.url()).searchParams.get('placed');
  await page.locator('[data-testid="live-state"]:not([data-state="open"])').waitFor();
  await page.locator(`[data-order-id="${orderId}"][data-status="PAID"]`).waitFor();
  await page.getByText('Live updates offline').waitFor();

  // The server stops accepting the token (here: it was tampered with).
  await page.evaluate(() => {
    const saved = JSON.parse(sessionStorage.getItem('flash-sale.session'));
    saved.token = `${saved.token.slice(0, -4)}AAAA`;
    sessionStorage.setItem('flash-sale.session', JSON.stringify(saved));
  });
  await page.goto(`/coupons/${coupon.id}`);
  await page.waitForFunction(() => document.querySelector('[data-testid="buy"]')?.disabled === false);
  await page.getByTestId('buy').click();
  await page.locator('[data-testid="buy-error"][data-code="UNAUTHORIZED"]').waitFor();
  await page.getByRole('alert').filter({ hasText: 'Your session has expired. Please log in again.' }).first().waitFor();
  await page.getByRole('button', { name: 'Log in again' }).first().click();
  await page.waitForURL(/\/login\?/);
  await page.getByText('Your session has expired').waitFor();
  await page.getByLabel('E-mail').fill(shopper.email);
  await page.getByLabel('Password').fill(shopper.password);
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await page.waitForURL(new RegExp(`/coupons/${coupon.id}$`));
  assertNoPageErrors(page);
});

test('a shopper waiting for a sale stays logged in; logging out revokes the session', async (t) => {
  const browser = await openBrowser();
  t.after(browser.close);
  const page = await newPage(browser.context);
  const shopper = await apiRegister('waiting');
  await uiLogin(page, shopper);
  const stored = () => page.evaluate(() => JSON.parse(sessionStorage.getItem('flash-sale.session')));
  const first = await stored();
  assert.ok(first.refreshToken, 'Keycloak issues a refresh token');

  // The access token is about to expire: the page exchanges it before it does.
  await page.evaluate(() => {
    const saved = JSON.parse(sessionStorage.getItem('flash-sale.session'));
    saved.expiresAt = Date.now() + 10_000;
    sessionStorage.setItem('flash-sale.session', JSON.stringify(saved));
  });
  await page.reload();
  await page.waitForFunction(
    (old) => JSON.parse(sessionStorage.getItem('flash-sale.session') || '{}').token !== old,
    first.token,
  );
  const renewed = await stored();
  assert.ok(renewed.expiresAt > Date.now() + 60_000, 'a full lifetime again');
  const me = await page.evaluate(async (token) => {
    const response = await fetch('/api/me', { headers: { Authorization: `Bearer ${token}` } });
    return { status: response.status, body: await response.json() };
  }, renewed.token);
  assert.equal(me.status, 200);
  assert.equal(me.body.email, shopper.email);
  await page.getByRole('button', { name: 'Log out' }).waitFor();

  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('link', { name: 'Log in' }).waitFor();
  const refused = await page.evaluate(async (refreshToken) => {
    // The logout request is on its way when the button has done its part.
    for (let i = 0; i < 20; i++) {
      const response = await fetch('/api/auth/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: refreshToken }),
      });
      if (response.status === 401) return (await response.json()).error.code;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return 'still refreshable';
  }, renewed.refreshToken);
  assert.equal(refused, 'INVALID_REFRESH_TOKEN');
  assertNoPageErrors(page);
});
