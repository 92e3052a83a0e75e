// The call's first steps, run from the page's <head>: the camera and the signaling socket
// open while the rest of the page loads (both take a few hundred milliseconds on a phone).
// The call's modules (js/call/) take them over through window.cabinetCallStart, and open later ones
// (a reconnection, another camera) with the same two helpers. A classic script, not a module: it runs
// before the parser goes on to the stylesheets, and modules have no document.currentScript.
(function () {
  "use strict";
  var d = document.currentScript.dataset;
  // The camera, microphone and speaker the person chose (device check or call), when still there.
  var chosen = {};
  try { chosen = JSON.parse(window.localStorage.getItem("cabinet.devices") || "{}") || {}; } catch (e) { chosen = {}; }
  var start = window.cabinetCallStart = {
    messages: [], openedAt: null, closed: null, media: null, ws: null, peer: null, chosen: chosen,
    video: function (facing) {      // getUserMedia's video constraints (false: an audio-only visit)
      if (d.audioOnly === "1") return false;
      var video = { facingMode: facing, width: { ideal: 640 }, height: { ideal: 480 } };
      if (chosen.videoinput && facing === "user") video.deviceId = { ideal: chosen.videoinput };
      return video;
    },
    audio: function () { return chosen.audioinput ? { deviceId: { ideal: chosen.audioinput } } : true; },
    socket: function () {
      return new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + d.signal);
    }
  };
  if (!window.RTCPeerConnection || !navigator.mediaDevices) return;
  // The call will run: its chat panel may start hidden (without this, it shows, for the file form).
  document.documentElement.classList.add("call-js");
  // The waiting room's stream, when this page was swapped into it (js/waiting-call.js): still live,
  // it saves the camera's start-up, the longest step of the call's set-up.
  var warm = window.cabinetWarmMedia;
  window.cabinetWarmMedia = null;
  function ask() { return navigator.mediaDevices.getUserMedia({ audio: start.audio(), video: start.video("user") }); }
  start.media = warm ? warm.then(function (s) {
    var live = s.getTracks().length && s.getTracks().every(function (tr) { return tr.readyState === "live"; });
    return live ? s : ask();
  }, ask) : ask();
  start.media.catch(function () { /* js/call/media.js explains the failure and falls back */ });
  // The socket the page this one was swapped into opened already (js/call-swap.js), if still usable.
  var warmSocket = window.cabinetWarmSocket;
  window.cabinetWarmSocket = null;
  var ws, taken = warmSocket && warmSocket.path === d.signal && warmSocket.ws.readyState <= 1;
  if (taken) {
    // Its handler keeps queueing into the same list, and drives its peer connection (start.peer)
    // until js/call/peer.js adopts it.
    ws = start.ws = warmSocket.ws;
    start.messages = warmSocket.messages;
    start.openedAt = warmSocket.openedAt;
    start.peer = warmSocket.peer;
  } else {
    ws = start.ws = start.socket();
    ws.onmessage = function (e) { start.messages.push(e); };   // kept in order until js/call/signaling.js reads them
  }
  ws.onopen = function () { start.openedAt = Math.round(performance.now()); };
  ws.onclose = function (e) { start.closed = e; };          // its code may be a refusal the page must obey
})();
