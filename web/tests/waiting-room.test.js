// (f) A sale with a waiting room: two shoppers join before the opening (each sees that
// a draw will place them), the draw gives them places 1 and 2, they are let in one a
// second, the first buys with the admission pass (PENDING, then PAID) and the second's
// missed turn is explained; on a phone the panel fits. The admin sets the rate in the
// form and reads the room's counts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMIN,
  api,
  apiAdminToken,
  apiCreateCoupon,
  apiLogin,
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

const OPENS_IN_MS = 9_000;
const panel = (page) => page.getByTestId('waiting-room');
const inState = (page, state) => page.locator(`[data-testid="waiting-room"][data-state="${state}"]`);

/**
 * Records every state the waiting-room panel shows, however briefly, in
 * `window.__roomLog` ({state, number, ahead, text, at}; an init script: runs in the page).
 */
function recordRoom() {
  window.__roomLog = [];
  const record = (el) => {
    const entry = {
      state: el.dataset.state,
      number: el.dataset.queueNumber,
      ahead: el.dataset.ahead,
      text: el.querySelector('[data-testid="queue-status"]')?.textContent.trim() ?? '',
    };
    const last = window.__roomLog[window.__roomLog.length - 1];
    if (last && ['state', 'number', 'ahead', 'text'].every((k) => last[k] === entry[k])) return;
    window.__roomLog.push({ ...entry, at: Date.now() });
  };
  const panelSelector = '[data-testid="waiting-room"]';
  new MutationObserver(() => {
    const el = document.querySelector(panelSelector);
    if (el) record(el);
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
}

// The coupons of this file, deleted at its end: left behind, they would push other
// files' coupons off the first page of the browse list.
let adminToken, shoppers, coupon;
const created = [];
before(async () => {
  adminToken = await apiAdminToken();
  shoppers = await Promise.all([apiRegister('queue-a'), apiRegister('queue-b')]);
});
after(async () => {
  await Promise.all(created.map((id) => api('DELETE', `/api/admin/coupons/${id}`, { token: adminToken })));
});

test('two shoppers join before the opening, are drawn into places 1 and 2 and let in one a second', async (t) => {
  const browsers = await Promise.all([openBrowser(), openBrowser()]);
  t.after(() => Promise.all(browsers.map((b) => b.close())));
  const pages = await Promise.all(browsers.map((b) => newPage(b.context)));
  const phone = pages[1];
  for (const page of pages) {
    await page.addInitScript(recordRoom);
    await page.addInitScript(recordOrderStatuses);
  }
  // Logged in first: the time to the opening is for joining.
  await Promise.all(pages.map((page, i) => uiLogin(page, shoppers[i])));
  await phone.setViewportSize({ width: 390, height: 844 });

  const opensAt = Date.now() + OPENS_IN_MS;
  coupon = await apiCreateCoupon(adminToken, {
    name: uniq('Concert tickets'),
    description: 'Front row, one per fan.',
    price_cents: 4900,
    total_quantity: 5,
    per_user_limit: 1,
    sale_starts_at: new Date(opensAt).toISOString(),
    sale_ends_at: new Date(opensAt + 3_600_000).toISOString(),
    waiting_room_per_sec: 1,
  });
  created.push(coupon.id);
  assert.equal(coupon.waiting_room_per_sec, 1);

  // Before the opening: the panel instead of Buy, with the fair draw explained.
  await Promise.all(pages.map((page) => page.goto(`/coupons/${coupon.id}`)));
  for (const page of pages) {
    await inState(page, 'join').waitFor();
    assert.match(await page.getByTestId('waiting-room-intro').textContent(), /random place in a fair draw/);
    await page.getByText(/Starts in \d/).waitFor();
  }
  await Promise.all(pages.map((page) => page.getByRole('button', { name: 'Join the queue' }).click()));
  const drawing = "You're in. At the opening a draw gives you your place.";
  for (const page of pages) {
    await inState(page, 'drawing').waitFor();
    await page.getByTestId('queue-status').filter({ hasText: drawing }).waitFor();
    assert.equal(await page.getByTestId('buy').isDisabled(), true);
  }
  // Coming back to the page shows the place taken (one place per account).
  await phone.reload();
  await inState(phone, 'drawing').waitFor();
  assert.ok(Date.now() < opensAt - 500, `the setup took too long: ${opensAt - Date.now()} ms left before the opening`);

  // After the opening: places 1 and 2 from the draw, admitted in that order, a second apart.
  await Promise.all(pages.map((page) => inState(page, 'admitted').waitFor({ timeout: 20_000 })));
  const logs = await Promise.all(pages.map((page) => page.evaluate(() => window.__roomLog)));
  const numbers = await Promise.all(pages.map((page) => panel(page).getAttribute('data-queue-number')));
  assert.deepEqual([...numbers].sort(), ['1', '2'], `places ${numbers}`);
  const firstIndex = numbers.indexOf('1');
  const [first, second] = [pages[firstIndex], pages[1 - firstIndex]];
  const [firstLog, secondLog] = [logs[firstIndex], logs[1 - firstIndex]];
  const admittedAt = (log) => log.find((e) => e.state === 'admitted').at;
  const waited = secondLog.filter((e) => e.state === 'waiting');
  assert.ok(waited.length > 0, `the second never showed its place while waiting: ${JSON.stringify(secondLog)}`);
  for (const e of waited) {
    assert.equal(e.number, '2');
    assert.match(e.text, /^You're number 2 in the queue: (1 ahead of you|you're next)\.$/);
  }
  assert.ok(
    waited[0].at < admittedAt(secondLog) && admittedAt(firstLog) < admittedAt(secondLog),
    'number 1 was let in first',
  );
  const gap = admittedAt(secondLog) - admittedAt(firstLog);
  assert.ok(gap >= 400 && gap <= 3_000, `one a second: the second was let in ${gap} ms after the first`);
  t.diagnostic(`second admitted ${gap} ms after the first; second's log: ${JSON.stringify(secondLog)}`);

  // Admitted: Buy works for a while, the countdown says how long.
  for (const page of pages) {
    await page.getByTestId('queue-status').filter({ hasText: "It's your turn!" }).waitFor();
    assert.match(await page.getByTestId('pass-countdown').textContent(), /held for \d:\d\d/);
    await page.waitForFunction(() => document.querySelector('[data-testid="buy"]')?.disabled === false);
  }
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the coupon page scrolls sideways by ${overflow}px on a phone`);
  await screenshot(phone, 'waiting-room-phone');

  // Number 1 buys with the pass: PENDING, then PAID.
  await first.evaluate(() => (window.__sameDocument = true));
  const sent = first.waitForRequest((r) => r.url().endsWith(`/api/coupons/${coupon.id}/purchase`));
  await first.getByTestId('buy').click();
  assert.ok((await sent).headers()['x-admission-pass'], 'the purchase carried no X-Admission-Pass');
  await first.waitForURL(/\/orders\?placed=/);
  const orderId = new URL(first.url()).searchParams.get('placed');
  await first.locator(`[data-order-id="${orderId}"][data-status="PAID"]`).waitFor();
  await first.locator(`[data-order-id="${orderId}"]`).getByText(coupon.name).waitFor();
  const seen = await first.evaluate(() => ({ log: window.__statusLog, same: window.__sameDocument }));
  assert.equal(seen.same, true, 'the orders page was reloaded');
  assert.deepEqual(seen.log[orderId], ['PENDING', 'PAID'], 'PENDING first, then PAID');

  // Number 2 presses Buy too late (the server's answer is simulated): the missed turn is explained.
  await second.route(`**/api/coupons/${coupon.id}/purchase`, (route) =>
    route.fulfill({
      status: 409,
      json: { error: { code: 'ADMISSION_PASS_EXPIRED', message: 'admission pass expired' } },
    }),
  );
  await second.getByTestId('buy').click();
  await second.locator('[data-testid="buy-error"][data-code="ADMISSION_PASS_EXPIRED"]').filter({ hasText: 'turn to buy has passed' }).waitFor();
  await inState(second, 'missed').waitFor();
  await second.getByTestId('queue-status').filter({ hasText: 'Your turn has passed' }).waitFor();
  assert.equal(await second.getByTestId('buy').isDisabled(), true);
  await second.unroute(`**/api/coupons/${coupon.id}/purchase`);

  // Later arrivals queue behind the draw; without a pass there is no purchase.
  const late = await apiLogin(await apiRegister('queue-late'));
  const joined = await api('POST', `/api/coupons/${coupon.id}/queue`, { token: late });
  assert.equal(joined.status, 200, JSON.stringify(joined.body));
  assert.equal(joined.body.queue_number, 3);
  const refused = await api('POST', `/api/coupons/${coupon.id}/purchase`, {
    token: late,
    headers: { 'Idempotency-Key': `late-${coupon.id}` },
  });
  assert.equal(refused.status, 409);
  assert.equal(refused.body.error.code, 'ADMISSION_PASS_REQUIRED');
  for (const page of pages) assertNoPageErrors(page);
});

test('the admin sets a waiting room in the form and reads its counts; the shop shows a badge', async (t) => {
  assert.ok(coupon, 'the first test created the coupon');
  const browser = await openBrowser();
  t.after(browser.close);
  const page = await newPage(browser.context);
  await uiLogin(page, ADMIN);
  await page.goto('/admin');
  const item = page.locator(`[data-testid="admin-coupons"] [data-coupon-id="${coupon.id}"]`);
  await item.getByText('waiting room 1/s').waitFor();

  // The room's counts: two drawn, three queued, the seed of the draw.
  await page.getByRole('button', { name: `Waiting room of ${coupon.name}` }).click();
  const stats = item.getByTestId('room-stats');
  await stats.locator('[data-stat="drawn"]').filter({ hasText: /^2$/ }).waitFor();
  assert.equal((await stats.locator('[data-stat="queued"]').textContent()).trim(), '3');
  assert.match((await stats.locator('[data-stat="admitted"]').textContent()).trim(), /^[23]$/);
  assert.equal((await stats.locator('[data-stat="sold_out"]').textContent()).trim(), 'no');
  assert.match((await stats.locator('[data-stat="seed"]').textContent()).trim(), /^\d+$/);

  // Open sale: the rate is fixed.
  await page.getByRole('button', { name: `Edit ${coupon.name}` }).click();
  const rate = page.getByLabel('Waiting room (admissions per second)');
  assert.equal(await rate.inputValue(), '1');
  assert.equal(await rate.getAttribute('readonly'), '');
  await page.getByRole('button', { name: 'Cancel' }).click();

  // A new sale tomorrow with a room of 250 a second; out of range is explained; then none.
  const name = uniq('Sneaker drop');
  const day = (n) => new Date(Date.now() + n * 86_400_000).toISOString().slice(0, 16);
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Price (USD)').fill('120');
  await page.getByLabel('Quantity').fill('100');
  await page.getByLabel('Sale starts').fill(day(1));
  await page.getByLabel('Sale ends').fill(day(2));
  await rate.fill('0');
  await page.getByRole('button', { name: 'Create coupon' }).click();
  await page.getByTestId('form-error').filter({ hasText: 'from 1 to 10000' }).waitFor();
  await rate.fill('250');
  await page.getByRole('button', { name: 'Create coupon' }).click();
  await page.getByTestId('admin-notice').filter({ hasText: `Created “${name}”` }).waitFor();
  const drop = page.locator('[data-testid="admin-coupons"] li').filter({ hasText: name });
  const id = Number(await drop.getAttribute('data-coupon-id'));
  created.push(id);
  assert.equal((await api('GET', `/api/coupons/${id}`)).body.waiting_room_per_sec, 250);
  await page.getByRole('button', { name: `Edit ${name}` }).click();
  assert.equal(await rate.inputValue(), '250');
  await rate.fill('');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByTestId('admin-notice').filter({ hasText: `Saved “${name}”` }).waitFor();
  assert.equal((await api('GET', `/api/coupons/${id}`)).body.waiting_room_per_sec, null);
  assert.equal(await page.getByRole('button', { name: `Waiting room of ${name}` }).count(), 0);

  // The shop's list marks the sale with a waiting room (a page of 100: other files' coupons
  // may fill the first page of 12 while they run).
  await page.goto('/?size=100');
  const card = await couponCard(page, coupon.id);
  await card.getByTestId('waiting-room-badge').filter({ hasText: 'Waiting room' }).waitFor();
  assertNoPageErrors(page);
});
