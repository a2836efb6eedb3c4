// The signed-in shopper: the bearer token lives in sessionStorage (one tab, gone when the
// tab closes); `user` is what GET /api/me said about it.
import { reactive } from 'vue';

const KEY = 'flash-sale.session';

export const session = reactive({
  token: null,
  expiresAt: 0,
  /** {user_id, email, roles} once /api/me answered */
  user: null,
  /** Set when the server rejected the token: pages ask to log in again. */
  expired: false,
});

function restore() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (saved && saved.token && saved.expiresAt > Date.now()) {
      session.token = saved.token;
      session.expiresAt = saved.expiresAt;
      session.user = saved.user || null;
    }
  } catch {
    sessionStorage.removeItem(KEY);
  }
}
restore();

function persist() {
  if (session.token) {
    sessionStorage.setItem(
      KEY,
      JSON.stringify({ token: session.token, expiresAt: session.expiresAt, user: session.user }),
    );
  } else {
    sessionStorage.removeItem(KEY);
  }
}

export function startSession(tokenResponse) {
  session.token = tokenResponse.access_token;
  session.expiresAt = Date.now() + (tokenResponse.expires_in || 0) * 1000;
  session.user = null;
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
  session.user = null;
  session.expired = expired;
  persist();
}

export const isLoggedIn = () => Boolean(session.token);
export const isAdmin = () => Boolean(session.user && session.user.roles?.includes('admin'));
