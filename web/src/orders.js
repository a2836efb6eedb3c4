// The shopper's orders, shared by the pages and kept current by the live socket
// (live.js) or, when the socket is down, by polling.
import { reactive } from 'vue';
import { listOrders, getCoupon } from './api.js';

export const orders = reactive({ items: [], loaded: false });

/** Name and price of the coupons in the order list, fetched once per id. */
export const couponInfo = reactive({});

export function rememberCoupon(coupon) {
  couponInfo[coupon.id] = { name: coupon.name, price_cents: coupon.price_cents };
}

async function describe(id) {
  if (id in couponInfo) return;
  couponInfo[id] = null;
  try {
    rememberCoupon(await getCoupon(id));
  } catch (e) {
    // Deleted since: keep the number. Anything else: try again next time.
    if (e.code === 'COUPON_NOT_FOUND') couponInfo[id] = { name: `Coupon #${id}`, price_cents: null };
    else delete couponInfo[id];
  }
}

export function upsertOrder(order) {
  const i = orders.items.findIndex((o) => o.order_id === order.order_id);
  if (i >= 0) {
    // A late PENDING answer must not undo a PAID/FAILED we already know.
    const known = orders.items[i];
    const status = known.status !== 'PENDING' && order.status === 'PENDING' ? known.status : order.status;
    orders.items[i] = { ...known, ...order, status };
  } else {
    orders.items.unshift({ created_at: new Date().toISOString(), ...order });
  }
  describe(order.coupon_id);
}

export async function refreshOrders() {
  const { items } = await listOrders();
  const known = new Map(orders.items.map((o) => [o.order_id, o]));
  const merged = items.map((o) => {
    const k = known.get(o.order_id);
    return k && k.status !== 'PENDING' && o.status === 'PENDING' ? { ...o, status: k.status } : o;
  });
  // Keep orders we were just told about but the list does not show yet.
  const fresh = new Set(items.map((o) => o.order_id));
  const local = orders.items.filter((o) => !fresh.has(o.order_id));
  orders.items = [...local, ...merged];
  orders.loaded = true;
  for (const o of items) describe(o.coupon_id);
}

/** A payment_update from the socket. Returns false for an order we do not know. */
export function applyUpdate({ order_id, status }) {
  const order = orders.items.find((o) => o.order_id === order_id);
  if (!order) return false;
  order.status = status;
  order.updated_at = new Date().toISOString();
  return true;
}

export function clearOrders() {
  orders.items = [];
  orders.loaded = false;
}

export const hasPending = () => orders.items.some((o) => o.status === 'PENDING');
