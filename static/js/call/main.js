// The call page's entry (an ES module, loaded natively): starts each concern and turns each
// message from the bridge (docs/signaling.md) into what the page does.
import { early, endedUrl, mark, note, presenceChanged, role, root, setStatus, t } from "./page.js";
import * as chat from "./chat.js";
import * as controls from "./controls.js";
import * as devices from "./devices.js";
import * as media from "./media.js";
import * as peer from "./peer.js";
import * as quality from "./quality.js";
import * as screen from "./screen.js";
import * as signaling from "./signaling.js";

function handle(msg) {
  switch (msg.type) {
    case "history": msg.items.forEach(chat.addItem); break;
    case "chat": case "file": chat.addItem(msg); screen.unread(msg); break;
    case "ready": mark("ready"); presenceChanged("self", "ready"); peer.offer(); break;
    case "answer": peer.answer(msg.sdp); break;
    case "peer-state": peerState(msg); break;
    case "mute": if (msg.kind === "audio") note(msg.muted ? t("otherMuted") : ""); break;
    case "camera-request": if (role === "patient") controls.showRequest(msg); break;
    case "camera-reply": controls.showReply(msg); break;
    case "bye":
      if (msg.from === "practitioner" && role === "patient") finish(endedUrl);
      else presenceChanged("other", "left");
      break;
    case "handed-over": signaling.end(); setStatus("handedOver"); break;
    case "ended": finish(role === "practitioner" ? (msg.next || endedUrl) : endedUrl); break;
    case "error":
      if (msg.code === "relay-unavailable") setStatus("unavailable");
      else if (msg.code === "relay-full") setStatus("full");      // the bridge asks again by itself
      else if (msg.code === "replaced") { signaling.end(); setStatus("replaced"); }
      break;
  }
}

// Each side's state, as the worker sees it: the status line says what is true for both together.
function peerState(msg) {
  if (msg.role === role) {
    if (msg.state === "connected") presenceChanged("self", "connected");
    else if (msg.state === "reconnecting") presenceChanged("self", "reconnecting");
    else if (msg.state === "failed") peer.restartSoon(200);
    return;
  }
  presenceChanged("other", msg.state);
}

function finish(url) {
  controls.leave();
  window.location.assign(url);
}

// The server closed the socket with a code that says why (webapp/events.py CALL_CLOSES): the
// visit ended, or this page may not (or no longer) be in the call. No reconnection follows.
function obey(action) {
  if (action === "ended") finish(endedUrl);
  else if (action === "reload") { controls.leave(); window.location.reload(); }
  else if (action === "replaced") setStatus("replaced");
  else if (action === "handed-over") setStatus("handedOver");
}

if (root && early && window.RTCPeerConnection) {
  mark("script");
  chat.init();
  controls.init();
  screen.init();
  devices.init();
  quality.start();
  // Camera, peer connection and websocket start together; the peer connection before the
  // socket, since the early messages it replays may ask for the offer.
  setStatus("connecting");
  media.open();
  peer.start();
  signaling.start(handle, obey);
}
