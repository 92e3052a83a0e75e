// The websocket to the bridge (docs/signaling.md): message framing, the takeover of the socket
// call-early.js opened, and reconnection with a backoff that grows across attempts.
import { closes, counters, early, mark, setStatus } from "./page.js";

// A dropped socket is tried again after 0.5 s, 1, 2, 4, 8, then every 10 s (each with jitter).
// The count starts again only once a socket has stayed open HEALTHY_MS: a socket the server
// opens and then drops at once must not bring the fastest retry back each time.
const FIRST_DELAY_MS = 500, MAX_DELAY_MS = 10000, HEALTHY_MS = 15000;

let ws = null, attempt = 0, ended = false, healthyTimer = null;
let receive = function () {}, refused = function () {};

export function send(msg) {
  msg.v = 1;
  if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg));
}
export function isOpen() { return !!ws && ws.readyState === 1; }

// The call is over on this page (left, ended, or opened in another tab): never reconnect.
export function end() { ended = true; }
export function hasEnded() { return ended; }
export function close() { if (ws) ws.close(); }

// The wait before the next attempt: doubling, capped, and drawn between 75% and 100% of it, so
// pages dropped together by a server restart do not all come back in the same instant.
export function delay(n) {
  const full = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * Math.pow(2, n));
  return Math.round(full * (0.75 + 0.25 * Math.random()));
}

function onMessage(e) {
  let msg;
  try { msg = JSON.parse(e.data); } catch (err) { return; }
  receive(msg);
}

// A refusal or an end (a 4xxx code the server documents) is obeyed, never retried, except
// "retry" (too many pages: a slot frees soon). Anything else is a dropped connection.
function onClose(e) {
  clearTimeout(healthyTimer);
  if (ended) return;
  const action = e ? closes[String(e.code)] : undefined;
  if (action && action !== "retry") {
    ended = true;
    refused(action);
    return;
  }
  setStatus("reconnecting");
  setTimeout(connect, delay(attempt));
  attempt += 1;
}

function onOpen() {
  mark("socket");
  clearTimeout(healthyTimer);
  healthyTimer = setTimeout(function () { attempt = 0; }, HEALTHY_MS);
}

function connect() {
  if (ended) return;
  const taken = early.ws;     // the socket call-early.js opened, once
  early.ws = null;
  ws = taken || early.socket();
  ws.onopen = onOpen;
  ws.onmessage = onMessage;
  ws.onclose = onClose;
  if (!taken) return;
  if (early.openedAt !== null) { counters.marks.socket = early.openedAt; onOpen(); }
  // What came before this module ran, in order: nothing else runs between the swap and this.
  early.messages.splice(0).forEach(onMessage);
  if (ws.readyState === 3) onClose(early.closed);    // it closed before we were listening
}

// Each message, parsed, goes to handle(msg) in the order it came; a refusal's action (what the
// close code asks: "ended", "reload", "replaced"...) to obey(action). The ping is the protocol's keep-alive.
export function start(handle, obey) {
  receive = handle;
  refused = obey;
  setInterval(function () { send({ type: "ping" }); }, 20000);
  connect();
}
