// One WebSocket per signed-in tab for payment results. Browsers cannot set headers on a
// socket, so the token travels as the subprotocol pair ["bearer", token]. The socket
// reconnects with backoff and jitter (so the sockets of a restarting instance do not all
// return in the same instant); while it is down the orders page polls instead. The same
// socket tells a waiting shopper of their turn (`waiting_room` messages, see onWaitingRoom).
import { reactive, watch } from 'vue';
import { session } from './session.js';
import { applyUpdate, refreshOrders, orders, hasPending } from './orders.js';

/** 'off' (signed out) | 'connecting' | 'open' | 'down' (waiting to reconnect) */
export const live = reactive({ state: 'off' });

let socket = null;
let attempt = 0;
let timer = null;

// Listeners of waiting-room turns: called with {coupon_id, state} for a push, and with
// null when the socket (re)opens, since pushes sent while it was down are lost.
const roomListeners = new Set();

/** Calls `listener` on every waiting-room push (and with null on reconnect); returns the unsubscribe. */
export function onWaitingRoom(listener) {
  roomListeners.add(listener);
  return () => roomListeners.delete(listener);
}

function tellRooms(message) {
  for (const listener of roomListeners) {
    try {
      listener(message);
    } catch {
      // One page's trouble is not the socket's.
    }
  }
}

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

function catchUp() {
  // Updates sent while we had no socket are not replayed: ask for the list instead.
  if (orders.loaded || hasPending()) refreshOrders().catch(() => {});
}

function connect() {
  clearTimeout(timer);
  if (!session.token) return;
  live.state = 'connecting';
  let ws;
  try {
    ws = new WebSocket(socketUrl(), ['bearer', session.token]);
  } catch {
    reconnectLater();
    return;
  }
  socket = ws;
  ws.onopen = () => {
    attempt = 0;
    live.state = 'open';
    catchUp();
    tellRooms(null);
  };
  ws.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === 'payment_update') {
      if (!applyUpdate(message)) catchUp();
    } else if (message.type === 'waiting_room') {
      tellRooms(message);
    }
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    socket = null;
    // 1012 "service restart": the instance is going away, another one answers now.
    if (event.code === 1012) attempt = 0;
    reconnectLater();
  };
}

function reconnectLater() {
  if (!session.token) {
    live.state = 'off';
    return;
  }
  live.state = 'down';
  const ceiling = Math.min(15000, 1000 * 2 ** attempt++);
  timer = setTimeout(connect, ceiling / 2 + Math.random() * (ceiling / 2));
}

function disconnect() {
  clearTimeout(timer);
  const ws = socket;
  socket = null;
  attempt = 0;
  if (ws) ws.close(1000);
  live.state = 'off';
}

watch(
  () => session.token,
  (token) => {
    disconnect();
    if (token) connect();
  },
  { immediate: true },
);
