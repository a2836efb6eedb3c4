// The signed-in shopper: the bearer token (and, with Keycloak, the refresh token) lives in
// sessionStorage (one tab, gone when the tab closes); `user` is what GET /api/me said.
import { reactive } from 'vue';

const KEY = 'flash-sale.session';

export const session = reactive({
  token: null,
  expiresAt: 0,
  /** Exchanged for a new token before `expiresAt` (null with the built-in issuer). */
  refreshToken: null,
  refreshExpiresAt: 0,
  /** {user_id, email, roles} once /api/me answered */
  user: null,
  /** Set when the server rejected the token: pages ask to log in again. */
  expired: false,
});

function restore() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    const usable = saved && saved.token &&
      (saved.expiresAt > Date.now() || (saved.refreshToken && saved.refreshExpiresAt > Date.now()));
    if (usable) Object.assign(session, saved);
  } catch {
    sessionStorage.removeItem(KEY);
  }
}
restore();

function persist() {
  if (session.token) {
    const { token, expiresAt, refreshToken, refreshExpiresAt, user } = session;
    sessionStorage.setItem(
      KEY,
      JSON.stringify({ token, expiresAt, refreshToken, refreshExpiresAt, user }),
    );
  } else {
    sessionStorage.removeItem(KEY);
  }
}

/** A token from login (`keepUser` false) or from a refresh of the same session. */
export function startSession(tokenResponse, { keepUser = false } = {}) {
  const now = Date.now();
  session.token = tokenResponse.access_token;
  session.expiresAt = now + (tokenResponse.expires_in || 0) * 1000;
  session.refreshToken = tokenResponse.refresh_token || null;
  session.refreshExpiresAt = session.refreshToken
    ? now + (tokenResponse.refresh_expires_in || tokenResponse.expires_in || 0) * 1000
    : 0;
  if (!keepUser) session.user = null;
  session.expired = false;
  persist();
}

export function setUser(user) {
  session.user = user;
  persist();
}

/** Forgets the token; `expired` tells the pages why. */
export function endSession({ expired = false } = {}) {
  session.token = null;
  session.expiresAt = 0;
  session.refreshToken = null;
  session.refreshExpiresAt = 0;
  session.user = null;
  session.expired = expired;
  persist();
}

export const isLoggedIn = () => Boolean(session.token);
export const isAdmin = () => Boolean(session.user && session.user.roles?.includes('admin'));
