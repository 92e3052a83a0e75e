// The call's buttons and their state: microphone, camera, camera switch, screen share, the
// practitioner's camera requests and the patient's answer, and leaving the call.
import { $, note, role, setStatus, t } from "./page.js";
import * as media from "./media.js";
import * as peer from "./peer.js";
import * as signaling from "./signaling.js";

let pendingRequest = null, lastAsk = null;
const requestBox = $("camera-request");

function bind(id, fn) { const el = $(id); if (el) el.addEventListener("click", fn); return el; }

// A toggle carries one state signal: its label stays ("Mute") and aria-pressed says whether it is on
// (a label that also flipped to "Unmute" would be read as "Unmute, pressed"). The icon and the button's
// colour show it to the eye. The other side is told.
function muteButton(id, kind) {
  bind(id, function () {
    const on = media.toggle(kind);
    this.setAttribute("aria-pressed", String(!on));
    signaling.send({ type: "mute", kind: kind, muted: !on });
  });
}

// Stop everything on this page: no reconnection, no camera, no connection to the worker.
export function leave() {
  signaling.end();
  peer.close();
  media.stop();
  signaling.close();
}

// The patient sees the practitioner's request over the video, in a modal dialog that takes the
// focus (its Accept button), and may refuse it.
export function showRequest(msg) {
  if (!requestBox) return;
  pendingRequest = msg;
  $("camera-request-text").textContent = msg.facing ? t("askBack") : t("askZoom");
  if (!requestBox.open) requestBox.showModal();
  $("btn-camera-accept").focus();
}

// "Could not" is not "would not": the practitioner is told when the device has no such camera or zoom.
function answerRequest(accepted) {
  const msg = pendingRequest;
  if (requestBox.open) requestBox.close();
  pendingRequest = null;
  if (!msg) return;
  if (!accepted) { signaling.send({ type: "camera-reply", accepted: false, reason: "refused" }); return; }
  const done = msg.facing ? media.useCamera(msg.facing) : Promise.resolve(media.zoom(msg.zoom));
  done.then(function (ok) {
    if (!ok && !msg.facing) note(t("thisCannotZoom"));
    signaling.send(ok ? { type: "camera-reply", accepted: true }
                      : { type: "camera-reply", accepted: false, reason: "unsupported" });
  });
}

export function showReply(msg) {
  if (msg.accepted) note(t("accepted"));
  else if (msg.reason === "unsupported") note(lastAsk === "zoom" ? t("cannotZoom") : t("noBackCamera"));
  else note(t("refused"));
}

function shareButton() {
  const button = $("btn-screen");
  if (!button || !media.canShare()) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    if (media.sharing()) { media.stopShare(); return; }
    media.share(function () { button.setAttribute("aria-pressed", "false"); })
      .then(function (started) { if (started) button.setAttribute("aria-pressed", "true"); });
  });
}

function ask(kind, msg) { lastAsk = kind; note(""); signaling.send(msg); }

export function init() {
  muteButton("btn-mic", "audio");
  muteButton("btn-cam", "video");
  bind("btn-flip", function () { media.flip(); });
  shareButton();
  bind("btn-ask-back", function () { ask("back", { type: "camera-request", facing: "environment" }); });
  bind("btn-ask-zoom", function () { ask("zoom", { type: "camera-request", zoom: 2 }); });
  bind("btn-camera-accept", function () { answerRequest(true); });
  bind("btn-camera-refuse", function () { answerRequest(false); });
  // Escape closes the request's dialog: that is a refusal.
  if (requestBox) requestBox.addEventListener("cancel", function (e) { e.preventDefault(); answerRequest(false); });
  // The practitioner's end is for both sides: a dialog asks first (a <dialog> keeps focus and Escape cancels).
  const endDialog = $("end-dialog");
  bind("btn-hangup", function () {
    if (endDialog && endDialog.showModal) { endDialog.showModal(); return; }
    signaling.send({ type: "bye" });
    if (role === "patient") { leave(); setStatus("youLeft"); }
  });
  bind("btn-end-cancel", function () { endDialog.close(); });
  bind("btn-end-confirm", function () { endDialog.close(); signaling.send({ type: "bye" }); });
}
