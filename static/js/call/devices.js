// Choosing the camera, the microphone and (where the browser can: setSinkId) the speaker during
// the call, in a dialog; the lists are filled when it opens, with the devices' names.
import { $, early, t } from "./page.js";
import * as media from "./media.js";

const dialog = $("devices-dialog"), remote = $("remote-video");
const picks = [["pick-camera", "videoinput", "video"], ["pick-microphone", "audioinput", "audio"],
               ["pick-speaker", "audiooutput", null]];

function fill(select, list, current) {
  select.textContent = "";
  list.forEach(function (dev, i) {
    const option = document.createElement("option");
    option.value = dev.deviceId;
    option.textContent = dev.label || (t("defaultDevice") + (i ? " " + (i + 1) : ""));
    option.selected = dev.deviceId === current;
    select.appendChild(option);
  });
}

function open() {
  picks.forEach(function (pick) {
    const select = $(pick[0]);
    if (!select || select.hidden) return;
    media.devices(pick[1]).then(function (list) {
      fill(select, list, pick[2] ? media.deviceId(pick[2]) : remote.sinkId);
    });
  });
  dialog.showModal();
}

// Kept for the next call in this browser (js/call-early.js reads it), as the device check does.
function remember(kind, id) {
  try {
    const chosen = JSON.parse(window.localStorage.getItem("cabinet.devices") || "{}") || {};
    chosen[kind] = id;
    window.localStorage.setItem("cabinet.devices", JSON.stringify(chosen));
  } catch (e) { /* private browsing: this call only */ }
}

export function init() {
  if (!dialog) return;
  if (typeof remote.setSinkId === "function") {
    dialog.querySelectorAll("[data-speaker]").forEach(function (el) { el.hidden = false; });
    const speaker = (early.chosen || {}).audiooutput;
    if (speaker) remote.setSinkId(speaker).catch(function () { /* gone: the default plays */ });
  }
  $("btn-devices").addEventListener("click", open);
  $("btn-devices-close").addEventListener("click", function () { dialog.close(); });
  picks.forEach(function (pick) {
    const select = $(pick[0]);
    if (!select) return;
    select.addEventListener("change", function () {
      remember(pick[1], select.value);
      if (pick[2]) media.useDevice(pick[2], select.value);
      else remote.setSinkId(select.value).catch(function () { /* the browser refused: the old one stays */ });
    });
  });
}
