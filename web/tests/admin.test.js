// (c) Shoppers cannot reach the admin page. (d) An admin creates a coupon with an image
// on the admin page, edits and deletes coupons, and the new one shows in the shop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMIN,
  api,
  apiCreateCoupon,
  apiAdminToken,
  apiRegister,
  assertNoPageErrors,
  couponCard,
  makePng,
  newPage,
  openBrowser,
  screenshot,
  uiLogin,
  uniq,
  waitFor,
} from './helpers.js';

let browser;
test.before(async () => {
  browser = await openBrowser();
});
test.after(async () => {
  await browser?.close();
});

test('a shopper cannot reach the admin page', async () => {
  const page = await newPage(browser.context);
  // Signed out: asked to log in first, then turned away.
  await page.goto('/admin');
  await page.waitForURL(/\/login\?next=(%2F|\/)admin/);
  const shopper = await apiRegister('nosy');
  await page.getByLabel('E-mail').fill(shopper.email);
  await page.getByLabel('Password').fill(shopper.password);
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await page.waitForURL(/\/not-allowed/);
  await page.getByTestId('not-allowed').getByRole('heading', { name: 'Not allowed' }).waitFor();
  assert.equal(await page.locator('#coupon-form').count(), 0);
  assert.equal(await page.getByRole('link', { name: 'Admin' }).count(), 0);
  await screenshot(page, 'not-allowed');

  // Typing the address again changes nothing; nor does the API let them in.
  await page.goto('/admin');
  await page.waitForURL(/\/not-allowed/);
  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('flash-sale.session')).token);
  const r = await api('POST', '/api/admin/coupons', { token, body: {} });
  assert.equal(r.status, 403);
  assertNoPageErrors(page);
  await page.close();
});

test('an admin creates a coupon with an image, edits and deletes coupons', async () => {
  const adminToken = await apiAdminToken();
  const doomed = await apiCreateCoupon(adminToken, { name: uniq('Expired promo') });

  const page = await newPage(browser.context);
  await uiLogin(page, ADMIN);
  await page.getByRole('link', { name: 'Admin' }).click();
  await page.waitForURL(/\/admin$/);
  await page.locator(`[data-testid="admin-coupons"] [data-coupon-id="${doomed.id}"]`).waitFor();

  // Create, with an image.
  const name = uniq('Sunset cruise');
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Description').fill('Two hours on the bay at golden hour, drinks included.');
  await page.getByLabel('Price (USD)').fill('24.50');
  await page.getByLabel('Quantity').fill('30');
  await page.getByLabel('Per shopper').fill('2');
  await page.getByLabel('Image', { exact: true }).setInputFiles({ name: 'cruise.png', mimeType: 'image/png', buffer: makePng() });
  await page.getByRole('img', { name: 'Preview of the chosen image' }).waitFor();
  await page.getByRole('button', { name: 'Create coupon' }).click();
  await page.getByTestId('admin-notice').filter({ hasText: `Created “${name}”` }).waitFor();
  const item = page.locator('[data-testid="admin-coupons"] li').filter({ hasText: name });
  const id = await item.getAttribute('data-coupon-id');
  assert.match(await item.locator('img').getAttribute('src'), /\/objects\//);
  const created = (await api('GET', `/api/coupons/${id}`)).body;
  assert.equal(created.price_cents, 2450);
  assert.equal(created.total_quantity, 30);
  assert.equal(created.per_user_limit, 2);
  assert.ok(created.image_url, 'the coupon has no image_url');

  // Invalid input is explained next to the form.
  await page.getByLabel('Name').fill(uniq('Backwards'));
  await page.getByLabel('Price (USD)').fill('1');
  await page.getByLabel('Sale ends').fill('2020-01-01T00:00');
  await page.getByRole('button', { name: 'Create coupon' }).click();
  await page.getByTestId('form-error').filter({ hasText: 'Sale end must be after' }).waitFor();
  await page.getByRole('button', { name: 'New coupon' }).click();

  // Edit the price.
  await page.getByRole('button', { name: `Edit ${name}` }).click();
  await page.getByRole('heading', { name: `Edit “${name}”` }).waitFor();
  await page.getByLabel('Price (USD)').fill('19.99');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByTestId('admin-notice').filter({ hasText: `Saved “${name}”` }).waitFor();
  await item.getByText('$19.99').waitFor();

  // Soft-delete another one.
  await page.getByRole('button', { name: `Delete ${doomed.name}` }).click();
  await page.locator(`[data-coupon-id="${doomed.id}"]`).getByRole('button', { name: 'Delete', exact: true }).click();
  await page.getByTestId('admin-notice').filter({ hasText: `Deleted “${doomed.name}”` }).waitFor();
  assert.equal(await page.locator(`[data-testid="admin-coupons"] [data-coupon-id="${doomed.id}"]`).count(), 0);
  assert.equal((await api('GET', `/api/coupons/${doomed.id}`)).status, 404);
  await screenshot(page, 'admin');

  // The shop shows the new coupon with its image.
  await page.getByRole('link', { name: 'Coupons', exact: true }).click();
  const card = await couponCard(page, id);
  // The list page may still hold the pre-edit copy for a moment (page cache).
  await waitFor('the edited price in the list', async () => {
    if ((await card.getByText('$19.99').count()) > 0) return true;
    await page.getByRole('button', { name: 'Refresh' }).click();
    return false;
  }, 15_000);
  const img = card.locator('img');
  await img.waitFor();
  assert.match(await img.getAttribute('src'), /\/objects\//);
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    return el && el.complete && el.naturalWidth > 0;
  }, `[data-testid="coupon-list"] [data-coupon-id="${id}"] img`);
  await screenshot(page, 'list');
  assertNoPageErrors(page);
  await page.close();
});
