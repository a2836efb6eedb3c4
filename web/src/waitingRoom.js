// The shopper's place in a sale's waiting room (POST/GET /api/coupons/{id}/queue), for
// the coupon page. Kept current by the socket's `waiting_room` pushes (live.js) and, as
// pushes are lossy, by polling while the place can still change. A hidden tab does not
// look: the admission pass runs from the first look at the admission, so a tab in the
// background must not start it; it looks as soon as it is shown again.
import { computed, onBeforeUnmount, reactive, watch } from 'vue';
import { getQueue, joinQueue, errorMessage } from './api.js';
import { onWaitingRoom } from './live.js';
import { session } from './session.js';
import { now } from './format.js';

const POLL_MS = 2500;
// Joined before the opening and the sale has opened: the draw is a moment away.
const DRAW_POLL_MS = 1000;
// Answers that will not change by asking again: stop polling.
const FINAL_ERRORS = ['SALE_ENDED', 'NO_WAITING_ROOM', 'COUPON_NOT_FOUND', 'UNAUTHORIZED'];

const jitter = (ms) => ms * (0.8 + 0.4 * Math.random());

/**
 * `couponId`: the coupon; `coupon()`: its JSON once loaded (null before). Nothing is
 * asked for a coupon without a waiting room. Call `refresh()` once the coupon is loaded.
 */
export function useWaitingRoom(couponId, coupon) {
  const id = Number(couponId);
  let timer = null;
  let inFlight = false;
  let again = false;
  let stopped = false;
  let missedLook = false;
  // Answers are taken in the order their requests left (a late look never undoes a join).
  let sent = 0;
  let taken = 0;
  const hasRoom = () => Boolean(coupon()?.waiting_room_per_sec);
  const opensAt = () => Date.parse(coupon()?.sale_starts_at ?? '') || 0;

  const room = reactive({
    /** The last QueueStatus (null: not asked yet, or signed out). */
    status: null,
    receivedAt: 0,
    joining: false,
    /** {code, text} of the last failed join or look; cleared by the next success. */
    error: null,
    /** The purchase said ADMISSION_PASS_EXPIRED: the turn was missed. */
    missed: false,
    state: computed(() => room.status?.state ?? null),
    /** Seconds until the turn, counting down between updates. */
    estimateLeft: computed(() => {
      const s = room.status;
      if (!s || s.estimate_secs === null || s.estimate_secs === undefined) return null;
      return Math.max(0, s.estimate_secs - Math.floor((now.value - room.receivedAt) / 1000));
    }),
    passLeftMs: computed(() => {
      const at = room.status?.pass_expires_at;
      return at ? Date.parse(at) - now.value : null;
    }),
    /** Admitted with a pass still good: the Buy button works. */
    passValid: computed(
      () => room.state === 'admitted' && Boolean(room.status.pass) && room.passLeftMs > 0 && !room.missed,
    ),
    refresh,
    join,
    passRefused,
  });

  function schedule() {
    clearTimeout(timer);
    if (stopped || !room.status) return;
    let delay;
    if (room.state === 'waiting') {
      delay = jitter(POLL_MS);
    } else if (room.state === 'drawing') {
      const untilOpening = opensAt() - Date.now();
      // Look again shortly after the opening (spread over a second), when the draw is held.
      delay =
        untilOpening > 0
          ? Math.min(jitter(POLL_MS), untilOpening + 200 + Math.random() * 800)
          : jitter(DRAW_POLL_MS);
    } else {
      return; // not joined, admitted, sold out: nothing changes by itself
    }
    timer = setTimeout(refresh, delay);
  }

  function accept(seq, status) {
    if (seq < taken) return;
    taken = seq;
    room.status = status;
    room.receivedAt = Date.now();
    room.error = null;
  }

  function fail(e) {
    room.error = { code: e.code, text: errorMessage(e) };
    if (FINAL_ERRORS.includes(e.code) || e.status === 401) clearTimeout(timer);
    else schedule();
  }

  /** Asks where the shopper stands (one request at a time; a push meanwhile asks again). */
  async function refresh() {
    if (stopped || !session.token || !hasRoom()) return;
    if (document.hidden) {
      missedLook = true;
      return;
    }
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    clearTimeout(timer);
    try {
      accept(++sent, await getQueue(id));
      schedule();
    } catch (e) {
      fail(e);
    } finally {
      inFlight = false;
    }
    if (again) {
      again = false;
      refresh();
    }
  }

  async function join() {
    if (room.joining || !session.token || !hasRoom()) return;
    room.joining = true;
    try {
      accept(++sent, await joinQueue(id));
      schedule();
    } catch (e) {
      fail(e);
    } finally {
      room.joining = false;
    }
  }

  /** The purchase refused the pass: expired (the turn is gone) or not accepted (look again). */
  function passRefused(code) {
    if (code === 'ADMISSION_PASS_EXPIRED') room.missed = true;
    refresh();
  }

  const unsubscribe = onWaitingRoom((message) => {
    // A push for this sale, or a reopened socket that may have missed one.
    if (message ? message.coupon_id === id : room.status && room.state !== 'not_joined') refresh();
  });
  function onVisible() {
    if (document.hidden) return;
    if (missedLook || ['drawing', 'waiting'].includes(room.state)) {
      missedLook = false;
      refresh();
    }
  }
  document.addEventListener('visibilitychange', onVisible);
  const unwatch = watch(
    () => session.token,
    (token, before) => {
      if (token && !before) refresh();
      if (!token) {
        clearTimeout(timer);
        room.status = null;
        room.missed = false;
      }
    },
  );

  onBeforeUnmount(() => {
    stopped = true;
    clearTimeout(timer);
    unsubscribe();
    unwatch();
    document.removeEventListener('visibilitychange', onVisible);
  });

  return room;
}
