// The websocket to the bridge (docs/signaling.md): message framing, the takeover of the socket
// call-early.js opened, and reconnection with backoff.
import { counters, early, mark, setStatus } from "./page.js";

let ws = null, attempt = 0, ended = false;
let receive = function () {};

export function send(msg) {
  msg.v = 1;
  if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg));
}
export function isOpen() { return !!ws && ws.readyState === 1; }

// The call is over on this page (left, ended, or opened in another tab): never reconnect.
export function end() { ended = true; }
export function hasEnded() { return ended; }
export function close() { if (ws) ws.close(); }

function onMessage(e) {
  let msg;
  try { msg = JSON.parse(e.data); } catch (err) { return; }
  receive(msg);
}

function onClose() {
  if (ended) return;
  setStatus("reconnecting");
  attempt += 1;
  setTimeout(connect, Math.min(5000, 250 * Math.pow(2, attempt)));
}

function connect() {
  if (ended) return;
  const taken = early.ws;     // the socket call-early.js opened, once
  early.ws = null;
  ws = taken || early.socket();
  ws.onopen = function () { attempt = 0; mark("socket"); };
  ws.onmessage = onMessage;
  ws.onclose = onClose;
  if (!taken) return;
  if (early.openedAt !== null) counters.marks.socket = early.openedAt;
  // What came before this module ran, in order: nothing else runs between the swap and this.
  early.messages.splice(0).forEach(onMessage);
  if (ws.readyState === 3) onClose();              // it closed before we were listening
}

// Each message, parsed, goes to handle(msg) in the order it came. The ping is the protocol's keep-alive.
export function start(handle) {
  receive = handle;
  setInterval(function () { send({ type: "ping" }); }, 20000);
  connect();
}
