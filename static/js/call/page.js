// The call page's floor, below every other module: #call's data- attributes (strings translated
// by the server), the status line, the note about the other side, and the marks the bench reads.
export const root = document.getElementById("call");
export const early = window.cabinetCallStart;     // call-early.js, from the page's head

const d = root ? root.dataset : {};
export const role = d.role;
export const audioOnly = d.audioOnly === "1";
export const endedUrl = d.endedUrl;
export const iceServers = (function () {
  try { return JSON.parse(d.ice || "[]"); } catch (e) { return []; }
})();
// What a close code from the server asks of the page (webapp/events.py CALL_CLOSES, docs/signaling.md).
export const closes = (function () {
  try { return JSON.parse(d.closes || "{}"); } catch (e) { return {}; }
})();

export function t(key) { return d["t" + key.charAt(0).toUpperCase() + key.slice(1)] || ""; }
export function $(id) { return document.getElementById(id); }

// Every concern writes here (the socket, the camera, the connection), so it sits on this floor.
const statusEl = $("call-status"), peerNote = $("call-peer-note");
export function setStatus(key, extra) {
  statusEl.textContent = t(key) + (extra ? " " + extra : "");
  statusEl.setAttribute("data-state", key);
}
// The note is a live region that stays in the page (hidden only to the eye while empty): a region
// that appears together with its words is not announced by every screen reader.
export function note(text) { peerNote.textContent = text; }

// Who is in the call, as the worker tells it: the status line says what is true for both sides
// together ("Connected" only while the other side is there too, never over a black video).
const presence = { self: "new", other: "absent" };
const listeners = [];
export function onPresence(fn) { listeners.push(fn); }
export function bothConnected() { return presence.self === "connected" && presence.other === "connected"; }
export function presenceChanged(who, state) {
  if (presence[who] === state) return;
  presence[who] = state;
  const s = presence.self, o = presence.other;
  if (s === "reconnecting") setStatus("reconnecting");
  else if (o === "left") setStatus("otherLeft");
  else if (o === "lost" || o === "failed") setStatus("otherLost");     // their media stopped
  else if (o === "reconnecting") setStatus("otherReconnecting");
  else if (s === "connected" && o === "connected") setStatus("connected");
  else if (o === "absent") setStatus("waiting");
  else setStatus("connecting");
  listeners.forEach(function (fn) { fn(presence); });
}

// What window.cabinetCall.stats() answers (browser tests, bench/call_start.py).
export const counters = { framesDecoded: 0, audioPackets: 0, state: "new", answers: 0, marks: {} };
// Milliseconds since the page started, for the benchmark: when each step of the set-up happened.
export function mark(name) { if (!(name in counters.marks)) counters.marks[name] = Math.round(performance.now()); }

// A video element without a frame yet holds the page's load event: attach streams after it.
export function afterLoad(fn) {
  if (document.readyState === "complete") fn();
  else window.addEventListener("load", fn, { once: true });
}
