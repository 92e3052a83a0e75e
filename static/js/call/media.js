// Local media: the camera and microphone (usually asked for by call-early.js), the track each
// sender carries, muting, camera switch, zoom and screen share.
import { $, afterLoad, early, mark, note, setStatus, t } from "./page.js";

const localVideo = $("local-video");
const enabled = { audio: true, video: true };
let stream = null, screenTrack = null, onShareStopped = null, facing = "user", senders = {};

export function localStream() { return stream; }

export function track(kind) {
  if (kind === "video" && screenTrack) return screenTrack;
  return stream ? stream.getTracks().filter(function (tr) { return tr.kind === kind; })[0] || null : null;
}

// Each new peer connection hands over its senders: the camera, once open, or another one goes there.
export function useSenders(next) { senders = next; }

// Local media, with clear messages when a permission or a device is missing.
function getMedia() {
  const video = early.video(facing);
  const asked = early.media || navigator.mediaDevices.getUserMedia({ audio: early.audio(), video: video });
  return asked.catch(function (err) {
    if (!video || err.name === "NotAllowedError" || err.name === "SecurityError") throw err;
    return navigator.mediaDevices.getUserMedia({ audio: true, video: false }).then(function (s) {
      note(t("noCamera"));
      return s;
    });
  }).catch(function (err) {
    setStatus(err.name === "NotAllowedError" || err.name === "SecurityError" ? "denied"
      : err.name === "NotReadableError" ? "busy" : "missing");
    return new MediaStream();     // still join: hear and see the other side
  });
}

// The peer connection does not wait for this: its senders get the tracks when they come.
export function open() {
  return getMedia().then(function (s) {
    stream = s;
    mark("media");
    if (localVideo && s.getVideoTracks().length) afterLoad(function () { localVideo.srcObject = s; });
    Object.keys(senders).forEach(function (kind) {
      const tr = track(kind);      // (a connection made before this page may hold a stopped camera)
      if (tr && senders[kind].track !== tr) senders[kind].replaceTrack(tr);
    });
  });
}

// Mute or unmute by disabling the track: the sender keeps it, so no new offer. Returns the new state.
export function toggle(kind) {
  enabled[kind] = !enabled[kind];
  const tr = track(kind);
  if (tr) tr.enabled = enabled[kind];
  return enabled[kind];
}

export function stop() {
  if (stream) stream.getTracks().forEach(function (tr) { tr.stop(); });
}

// Switch the camera: stop the old one first (many phones cannot open both), replace the track.
export function useCamera(wanted) {
  const old = stream && stream.getVideoTracks()[0];
  if (old) old.stop();
  return navigator.mediaDevices.getUserMedia({ video: { facingMode: { exact: wanted } } }).then(function (s) {
    const fresh = s.getVideoTracks()[0];
    if (old) stream.removeTrack(old);
    stream.addTrack(fresh);
    fresh.enabled = enabled.video;
    facing = wanted;
    if (!screenTrack && senders.video) senders.video.replaceTrack(fresh);
    localVideo.srcObject = stream;
    return true;
  }).catch(function () {
    note(t("noOtherCamera"));
    if (old) {   // bring the previous camera back
      return navigator.mediaDevices.getUserMedia({ video: { facingMode: facing } }).then(function (s) {
        const back = s.getVideoTracks()[0];
        stream.removeTrack(old); stream.addTrack(back);
        if (!screenTrack && senders.video) senders.video.replaceTrack(back);
        localVideo.srcObject = stream;
        return false;
      }, function () { return false; });
    }
    return false;
  });
}

export function flip() { return useCamera(facing === "user" ? "environment" : "user"); }

export function zoom(factor) {
  const tr = stream && stream.getVideoTracks()[0];
  const caps = tr && tr.getCapabilities ? tr.getCapabilities() : {};
  if (!caps.zoom) return false;
  const value = Math.min(caps.zoom.max, Math.max(caps.zoom.min, caps.zoom.min * factor));
  tr.applyConstraints({ advanced: [{ zoom: value }] }).catch(function () { /* refused by the device */ });
  return true;
}

// Phones and tablets (a touch screen and no hover) cannot share their screen, even where the
// browser has the function: no button that can only fail.
export function canShare() {
  const touchOnly = window.matchMedia && window.matchMedia("(pointer: coarse) and (hover: none)").matches;
  return !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia) && !touchOnly;
}

// The devices of one kind (videoinput, audioinput, audiooutput); their names once the camera is allowed.
export function devices(kind) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return Promise.resolve([]);
  return navigator.mediaDevices.enumerateDevices().then(function (all) {
    return all.filter(function (dev) { return dev.kind === kind; });
  }, function () { return []; });
}

export function deviceId(kind) {
  const tr = track(kind);
  const settings = tr && tr.getSettings ? tr.getSettings() : {};
  return settings.deviceId || "";
}

// Another microphone or camera, chosen by the person: the old one stops first (phones cannot
// open two cameras), the new track keeps the mute state and goes on the same sender.
export function useDevice(kind, id) {
  const old = stream && (kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks())[0];
  if (kind === "video" && old) old.stop();
  const wanted = {};
  wanted[kind] = { deviceId: { exact: id } };
  return navigator.mediaDevices.getUserMedia(wanted).then(function (s) {
    const fresh = (kind === "audio" ? s.getAudioTracks() : s.getVideoTracks())[0];
    if (old) { old.stop(); stream.removeTrack(old); }
    stream.addTrack(fresh);
    fresh.enabled = enabled[kind];
    if (senders[kind] && !(kind === "video" && screenTrack)) senders[kind].replaceTrack(fresh);
    if (kind === "video" && localVideo) localVideo.srcObject = stream;
    return true;
  }).catch(function () { return false; });
}
export function sharing() { return screenTrack !== null; }

// The screen replaces the camera on the same sender: no new m-line, no new offer. Resolves to
// whether sharing started; stopped() runs when it ends, from the button or the browser's own bar.
export function share(stopped) {
  return navigator.mediaDevices.getDisplayMedia({ video: true }).then(function (s) {
    screenTrack = s.getVideoTracks()[0];
    screenTrack.onended = stopShare;
    onShareStopped = stopped;
    if (senders.video) senders.video.replaceTrack(screenTrack);
    return true;
  }).catch(function () { return false; });     // the user cancelled
}

export function stopShare() {
  if (!screenTrack) return;
  screenTrack.onended = null;
  screenTrack.stop();
  screenTrack = null;
  if (senders.video) senders.video.replaceTrack(track("video"));
  if (onShareStopped) onShareStopped();
}
