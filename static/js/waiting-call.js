// The waiting room opens the camera and microphone while the patient waits, and shows the picture,
// so the call starts without waiting for them: when the practitioner lets the patient in, the call
// page is fetched and swapped into this one (js/call-swap.js: no new page load, so the camera stays
// open) and its scripts run with the stream already there (js/call-early.js takes it as
// window.cabinetWarmMedia). Without it (an old browser, a failed fetch) live.js simply loads the call page.
(function () {
  "use strict";
  var d = document.currentScript.dataset;
  if (!window.RTCPeerConnection || !navigator.mediaDevices || !window.cabinetSwapCall) return;

  var warm = window.cabinetWarmMedia = window.cabinetCallMedia(d.audioOnly === "1");
  warm.then(function (stream) {
    var preview = document.getElementById("waiting-preview");
    if (!preview || !stream.getVideoTracks().length) return;
    preview.querySelector("video").srcObject = stream;
    preview.hidden = false;
  }, function () { window.cabinetWarmMedia = null; /* the call page asks again and explains */ });

  // Swap the call page in; false when this page cannot, and live.js loads it instead.
  var entering = false;
  window.cabinetEnterCall = function (url) {
    if (entering) return true;          // the status came again (poll, socket) while swapping
    if (!window.cabinetWarmMedia || !window.htmx) return false;
    entering = true;
    // Admitted: the socket and the peer connection start while the page comes.
    window.cabinetOpenSignal(d.signal, { ice: d.ice, audioOnly: d.audioOnly === "1", media: window.cabinetWarmMedia });
    window.cabinetSwapCall(fetch(url, { credentials: "same-origin" }), url)
      .catch(function () { window.location.assign(url); });
    return true;
  };
})();
