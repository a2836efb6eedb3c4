// Formatting helpers and one shared clock that ticks every second (countdowns, sale windows).
import { ref } from 'vue';

export const CURRENCY = 'USD';
const money = new Intl.NumberFormat(undefined, { style: 'currency', currency: CURRENCY });

/** Integer cents → "$12.50". */
export const formatPrice = (cents) => money.format(cents / 100);

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export const formatDateTime = (iso) => dateTime.format(new Date(iso));

const clock = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
});
/** ISO time → "14:03:59" (local time). */
export const formatClock = (iso) => clock.format(new Date(iso));

/** Milliseconds → "2d 03:04:05" / "03:04:05". */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(total / 86400);
  const pad = (n) => String(n).padStart(2, '0');
  const hms = `${pad(Math.floor((total % 86400) / 3600))}:${pad(Math.floor((total % 3600) / 60))}:${pad(total % 60)}`;
  return days > 0 ? `${days}d ${hms}` : hms;
}

/** Date.now(), refreshed every second. */
export const now = ref(Date.now());
setInterval(() => {
  now.value = Date.now();
}, 1000);

/** 'upcoming' | 'open' | 'ended' for the sale window [starts, ends). */
export function saleState(coupon, at = now.value) {
  if (at < Date.parse(coupon.sale_starts_at)) return 'upcoming';
  if (at < Date.parse(coupon.sale_ends_at)) return 'open';
  return 'ended';
}

// Order ids are UUIDv7: the first digits are a timestamp, the last ones random.
export const shortId = (id) => String(id).slice(-8);

/** Seconds of waiting → "about 40 s" / "about 3 min". */
export function formatWait(secs) {
  if (secs >= 90) return `about ${Math.round(secs / 60)} min`;
  return `about ${Math.max(1, Math.ceil(secs))} s`;
}

/** Milliseconds → "1:05" (minutes and seconds). */
export function formatMinSec(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, '0')}`;
}
