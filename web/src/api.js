// The HTTP client: JSON in and out, the bearer token when signed in, and one error type
// whose `code` is the server's stable error code. `errorMessage` turns it into words.
import { session, endSession, startSession, setUser } from './session.js';

export class ApiError extends Error {
  constructor(status, code, message, { field = null, retryAfter = null, maxBytes = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
    this.maxBytes = maxBytes;
  }
}

// The catalog answers 503 SERVER_BUSY (Retry-After: 1) to every request but one while
// a cache entry is rebuilt; reads are safe to repeat, so they wait and try again.
const READ_RETRIES = 2;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function request(method, path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send(method, path, options);
    } catch (e) {
      if (method !== 'GET' || e.code !== 'SERVER_BUSY' || attempt >= READ_RETRIES) throw e;
      // Spread the retries so waiting clients do not return all at once.
      await sleep(Math.min(e.retryAfter || 1, 5) * 1000 * (0.3 + 0.7 * Math.random()));
    }
  }
}

async function send(method, path, { body, form, headers = {}, auth = true } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers } };
  const sentToken = auth && session.token;
  if (sentToken) init.headers.Authorization = `Bearer ${session.token}`;
  if (form) {
    init.body = form;
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'NETWORK', 'network error');
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.ok) return data;

  const error = data && data.error ? data.error : {};
  const code = error.code || (response.status >= 500 ? 'SERVER_BUSY' : `HTTP_${response.status}`);
  const retryAfter = Number(response.headers.get('Retry-After')) || null;
  // A token the server no longer accepts: forget it, the pages ask to log in again.
  if (response.status === 401 && sentToken && code === 'UNAUTHORIZED') {
    endSession({ expired: true });
  }
  throw new ApiError(response.status, code, error.message || response.statusText, {
    field: error.field || null,
    retryAfter,
    maxBytes: error.max_bytes || null,
  });
}

const MESSAGES = {
  NETWORK: 'Cannot reach the shop. Check your connection and try again.',
  SERVER_BUSY: 'The shop is very busy right now. Please try again in a moment.',
  INTERNAL: 'Something went wrong on our side. Please try again.',
  UNAUTHORIZED: 'Your session has expired. Please log in again.',
  FORBIDDEN: 'You are not allowed to do this.',
  INVALID_CREDENTIALS: 'Wrong e-mail or password.',
  TOO_MANY_ATTEMPTS: 'Too many login attempts. Please wait a minute and try again.',
  TOO_MANY_REQUESTS: 'You are clicking faster than the shop can answer. Please wait a moment.',
  TOO_MANY_CONNECTIONS: 'Too many open tabs are following results. Close one and reload.',
  EMAIL_TAKEN: 'An account with this e-mail already exists. Log in instead.',
  INVALID_EMAIL: 'Please enter a valid e-mail address.',
  WEAK_PASSWORD: 'That password is too weak: use at least 8 characters.',
  SOLD_OUT: 'Sorry, this coupon is sold out.',
  PURCHASE_LIMIT_REACHED: 'You have reached the purchase limit for this coupon.',
  SALE_NOT_STARTED: 'The sale has not started yet. Please wait for the countdown.',
  SALE_ENDED: 'Sorry, this sale has ended.',
  COUPON_NOT_FOUND: 'This coupon does not exist or is no longer on sale.',
  ORDER_NOT_FOUND: 'This order was not found.',
  INVALID_PAGE: 'That page of the list does not exist.',
  INVALID_SEARCH: 'That search is not valid. Please check the search words and filters.',
  INVALID_REQUEST: 'The request was not understood. Please reload the page and try again.',
  SALE_IN_PROGRESS:
    'The sale has already started: its quantity and per-user limit can no longer change.',
  ADMISSION_PASS_REQUIRED:
    'This sale has a waiting room: join the queue and buy when your turn comes.',
  ADMISSION_PASS_EXPIRED:
    'Your turn to buy has passed: the admission was only valid for a short time after it came.',
  NO_WAITING_ROOM: 'This coupon has no waiting room: buy it directly.',
  UNSUPPORTED_IMAGE: 'Unsupported image: please upload a PNG, JPEG, WebP or GIF file.',
};

const FIELD_LABELS = {
  name: 'Name',
  description: 'Description',
  price_cents: 'Price',
  total_quantity: 'Quantity',
  per_user_limit: 'Per-user limit',
  sale_starts_at: 'Sale start',
  sale_ends_at: 'Sale end',
  image: 'Image',
  waiting_room_per_sec: 'Waiting room',
};

/** A sentence for people, whatever went wrong. */
export function errorMessage(err) {
  if (!(err instanceof ApiError)) return MESSAGES.INTERNAL;
  if (err.code === 'INVALID_COUPON') {
    const label = FIELD_LABELS[err.field] || 'A field';
    const detail = (err.message || 'is invalid')
      .replace(/^[a-z_]+:\s*/, '')
      .replace(/[a-z]+(?:_[a-z]+)+/g, (f) => (FIELD_LABELS[f] || f.replace(/_/g, ' ')).toLowerCase());
    return `${label} ${detail}.`;
  }
  if (err.code === 'SALE_IN_PROGRESS' && err.field === 'waiting_room_per_sec') {
    return 'The sale has already started: its waiting room can no longer change.';
  }
  if (err.code === 'IMAGE_TOO_LARGE') {
    return err.maxBytes
      ? `The image is too large: the limit is ${formatBytes(err.maxBytes)}.`
      : 'The image is too large.';
  }
  if (MESSAGES[err.code]) return MESSAGES[err.code];
  if (err.status === 401) return MESSAGES.UNAUTHORIZED;
  if (err.status === 403) return MESSAGES.FORBIDDEN;
  if (err.status >= 500) return MESSAGES.SERVER_BUSY;
  return err.message || MESSAGES.INTERNAL;
}

function formatBytes(bytes) {
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(0)} MiB` : `${Math.round(bytes / 1024)} KiB`;
}

/** A random UUID, also outside secure contexts (crypto.randomUUID needs https). */
export function newIdempotencyKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// --- endpoints ---------------------------------------------------------------------

export const register = (email, password) =>
  request('POST', '/api/auth/register', { body: { email, password }, auth: false });

export async function login(email, password) {
  const token = await request('POST', '/api/auth/login', {
    body: { email, password },
    auth: false,
  });
  startSession(token);
  scheduleRefresh();
  await loadMe();
}

// A shopper waiting for a sale stays logged in: the token is exchanged shortly before
// it expires, for as long as the provider's session lasts.
let refreshTimer = null;
const REFRESH_MARGIN_MS = 30_000;

export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!session.refreshToken) return;
  const left = session.expiresAt - Date.now();
  const delay = Math.max(1_000, Math.min(left - REFRESH_MARGIN_MS, left * 0.8));
  refreshTimer = setTimeout(refreshSession, delay);
}

export async function refreshSession() {
  const refreshToken = session.refreshToken;
  if (!refreshToken) return;
  try {
    const token = await send('POST', '/api/auth/refresh', {
      body: { refresh_token: refreshToken },
      auth: false,
    });
    startSession(token, { keepUser: true });
    scheduleRefresh();
  } catch (e) {
    if (e.code === 'INVALID_REFRESH_TOKEN') {
      endSession({ expired: true });
    } else if (session.refreshToken === refreshToken) {
      // The shop or the provider is busy: try again soon, the token may still be valid.
      refreshTimer = setTimeout(refreshSession, 5_000);
    }
  }
}

/** Ends the session here and at the provider (the refresh token is revoked). */
export async function logout() {
  const refreshToken = session.refreshToken;
  clearTimeout(refreshTimer);
  endSession();
  if (refreshToken) {
    await send('POST', '/api/auth/logout', {
      body: { refresh_token: refreshToken },
      auth: false,
    }).catch(() => {});
  }
}

// A tab reopened with a stored session picks the schedule up again.
if (session.refreshToken) {
  if (session.expiresAt - Date.now() < REFRESH_MARGIN_MS) refreshSession();
  else scheduleRefresh();
}

export async function loadMe() {
  setUser(await request('GET', '/api/me'));
}

export const listCoupons = (page, size) =>
  request('GET', `/api/coupons?page=${page}&size=${size}`, { auth: false });
/** GET /api/coupons/search; `params` values that are empty, null or undefined are left out. */
export function searchCoupons(params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && String(value).trim() !== '') query.set(key, value);
  }
  const qs = query.toString();
  return request('GET', `/api/coupons/search${qs ? `?${qs}` : ''}`, { auth: false });
}
export const getCoupon = (id) => request('GET', `/api/coupons/${id}`, { auth: false });
export const getStock = (id) => request('GET', `/api/coupons/${id}/stock`, { auth: false });
/** `admissionPass`: for a sale with a waiting room, the pass of the admitted queue status. */
export const purchase = (id, idempotencyKey, admissionPass = null) =>
  request('POST', `/api/coupons/${id}/purchase`, {
    headers: {
      'Idempotency-Key': idempotencyKey,
      ...(admissionPass ? { 'X-Admission-Pass': admissionPass } : {}),
    },
  });
/** A sale's waiting room: join (the same place when joined before) and the caller's place. */
export const joinQueue = (id) => request('POST', `/api/coupons/${id}/queue`);
export const getQueue = (id) => request('GET', `/api/coupons/${id}/queue`);

export const listOrders = () => request('GET', '/api/orders');
export const getOrder = (id) => request('GET', `/api/orders/${id}`);

export const createCoupon = (draft) => request('POST', '/api/admin/coupons', { body: draft });
export const updateCoupon = (id, draft) =>
  request('PUT', `/api/admin/coupons/${id}`, { body: draft });
export const deleteCoupon = (id) => request('DELETE', `/api/admin/coupons/${id}`);
export const getWaitingRoom = (id) => request('GET', `/api/admin/coupons/${id}/waiting-room`);
export function uploadImage(id, file) {
  const form = new FormData();
  form.append('image', file);
  return request('POST', `/api/admin/coupons/${id}/image`, { form });
}
