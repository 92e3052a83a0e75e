// The call's first steps, run from the page's <head>: the camera and the signaling socket
// open while the rest of the page loads (both take a few hundred milliseconds on a phone).
// call.js takes them over through window.cabinetCallStart; without it, it opens its own.
(function () {
  "use strict";
  var d = document.currentScript && document.currentScript.dataset;
  if (!d || !d.signal || !window.RTCPeerConnection || !navigator.mediaDevices) return;
  var start = window.cabinetCallStart = { messages: [], openedAt: null };
  var video = d.audioOnly === "1" ? false : { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } };
  start.media = navigator.mediaDevices.getUserMedia({ audio: true, video: video });
  start.media.catch(function () { /* call.js explains the failure and falls back */ });
  var ws = start.ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + d.signal);
  ws.onopen = function () { start.openedAt = Math.round(performance.now()); };
  ws.onmessage = function (e) { start.messages.push(e); };   // kept in order until call.js reads them
})();
