// The waiting room opens the camera and microphone while the patient waits, and shows the picture,
// so the call starts without waiting for them: when the practitioner lets the patient in, the call
// page is fetched and swapped into this one (no new page load, so the camera stays open) and its
// scripts run with the stream already there (js/call-early.js takes it as window.cabinetWarmMedia).
// Without it (an old browser, a failed fetch) live.js simply loads the call page.
(function () {
  "use strict";
  var d = document.currentScript.dataset;
  if (!window.RTCPeerConnection || !navigator.mediaDevices || !window.fetch || !window.DOMParser) return;

  // The same camera and microphone call-early.js would ask for (the ones chosen at the device check).
  var chosen = {};
  try { chosen = JSON.parse(window.localStorage.getItem("cabinet.devices") || "{}") || {}; } catch (e) { chosen = {}; }
  var video = d.audioOnly === "1" ? false : { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } };
  if (video && chosen.videoinput) video.deviceId = { ideal: chosen.videoinput };
  var audio = chosen.audioinput ? { deviceId: { ideal: chosen.audioinput } } : true;

  var warm = navigator.mediaDevices.getUserMedia({ audio: audio, video: video });
  window.cabinetWarmMedia = warm;
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
    fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok || new URL(response.url).pathname !== new URL(url, location.href).pathname) throw new Error("moved");
      return response.text();
    }).then(function (html) {
      var page = new DOMParser().parseFromString(html, "text/html");
      var early = page.querySelector("script[src*='js/call-early.js']");
      var main = page.querySelector("script[type='module'][src*='js/call/main.js']");
      var content = page.getElementById("main");
      if (!early || !main || !content || !page.getElementById("call")) throw new Error("not the call");
      page.querySelectorAll("head link[rel='stylesheet']").forEach(function (link) {
        if (!document.querySelector("link[rel='stylesheet'][href='" + link.getAttribute("href") + "']")) {
          document.head.appendChild(document.importNode(link, false));
        }
      });
      history.replaceState(null, "", url);
      document.title = page.title;
      document.body.className = page.body.className;
      // htmx swaps it, so the waiting room's socket is closed as it goes (its slot is the call's).
      content.querySelectorAll("script").forEach(function (s) { s.remove(); });
      window.htmx.swap(document.getElementById("main"), content.innerHTML, { swapStyle: "innerHTML" });
      var first = document.createElement("script");
      Object.keys(early.dataset).forEach(function (k) { first.dataset[k] = early.dataset[k]; });
      return new Promise(function (resolve, reject) {
        first.onload = resolve;
        first.onerror = reject;
        first.src = early.getAttribute("src");
        document.head.appendChild(first);
      }).then(function () {
        var modules = document.createElement("script");
        modules.type = "module";
        modules.src = main.getAttribute("src");
        document.body.appendChild(modules);
      });
    }).catch(function () { window.location.assign(url); });
    return true;
  };
})();
