// The call's buttons and their state: microphone, camera, camera switch, screen share, the
// practitioner's camera requests and the patient's answer, and leaving the call.
import { $, role, setStatus, t } from "./page.js";
import * as media from "./media.js";
import * as peer from "./peer.js";
import * as signaling from "./signaling.js";

let pendingRequest = null;
const requestBox = $("camera-request");

function bind(id, fn) { const el = $(id); if (el) el.addEventListener("click", fn); return el; }

// The label says what a press does next; aria-pressed says whether it is off; the other side is told.
function muteButton(id, kind, offLabel, onLabel) {
  bind(id, function () {
    const on = media.toggle(kind);
    this.textContent = on ? t(offLabel) : t(onLabel);
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

// The patient sees the practitioner's request and may refuse it.
export function showRequest(msg) {
  if (!requestBox) return;
  pendingRequest = msg;
  $("camera-request-text").textContent = msg.facing ? t("askBack") : t("askZoom");
  requestBox.hidden = false;
}

function answerRequest(accepted) {
  const msg = pendingRequest;
  requestBox.hidden = true;
  pendingRequest = null;
  if (!msg) return;
  if (!accepted) { signaling.send({ type: "camera-reply", accepted: false }); return; }
  const done = msg.facing ? media.useCamera(msg.facing) : Promise.resolve(media.zoom(msg.zoom));
  done.then(function (ok) { signaling.send({ type: "camera-reply", accepted: !!ok }); });
}

function shareButton() {
  const button = $("btn-screen");
  if (!button || !media.canShare()) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    if (media.sharing()) { media.stopShare(); return; }
    media.share(function () { button.textContent = t("share"); }).then(function (started) {
      if (started) button.textContent = t("stopShare");
    });
  });
}

export function init() {
  muteButton("btn-mic", "audio", "mute", "unmute");
  muteButton("btn-cam", "video", "cameraOff", "cameraOn");
  bind("btn-flip", function () { media.flip(); });
  shareButton();
  bind("btn-ask-back", function () { signaling.send({ type: "camera-request", facing: "environment" }); });
  bind("btn-ask-zoom", function () { signaling.send({ type: "camera-request", zoom: 2 }); });
  bind("btn-camera-accept", function () { answerRequest(true); });
  bind("btn-camera-refuse", function () { answerRequest(false); });
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
