// The patient's device check: camera preview, microphone level, a test sound, the connection.
// Results go into the form's hidden fields; every failure shows its plain-language fix.
(function () {
  "use strict";
  var root = document.getElementById("device-check");
  if (!root) return;
  var words = root.querySelector("[data-words]").dataset;
  var form = root.querySelector("[data-results]");
  var video = root.getAttribute("data-mode") === "video";
  var stream = null;

  // The devices the patient chose here, kept in this browser for the call (js/call-early.js reads them).
  var chosen = {};
  try { chosen = JSON.parse(window.localStorage.getItem("cabinet.devices") || "{}") || {}; } catch (e) { chosen = {}; }
  function remember(kind, id) {
    chosen[kind] = id;
    try { window.localStorage.setItem("cabinet.devices", JSON.stringify(chosen)); } catch (e) { /* private browsing */ }
  }

  // A list only where there is a choice (two cameras, a headset...); the speaker only where the browser can switch it.
  function fillPicks() {
    if (!navigator.mediaDevices.enumerateDevices) return;
    navigator.mediaDevices.enumerateDevices().then(function (all) {
      root.querySelectorAll("[data-pick]").forEach(function (select) {
        var kind = select.getAttribute("data-pick");
        var list = all.filter(function (dev) { return dev.kind === kind; });
        var current = kind === "audiooutput" ? chosen.audiooutput : inUse(kind);
        select.textContent = "";
        list.forEach(function (dev, i) {
          var option = document.createElement("option");
          option.value = dev.deviceId;
          option.textContent = dev.label || (select.previousElementSibling.textContent + " " + (i + 1));
          option.selected = dev.deviceId === current;
          select.appendChild(option);
        });
        var can = kind !== "audiooutput" || (window.AudioContext && "setSinkId" in window.AudioContext.prototype);
        select.closest("[data-pick-row]").hidden = !(can && list.length > 1);
      });
    });
  }

  function inUse(kind) {
    var tracks = stream ? (kind === "videoinput" ? stream.getVideoTracks() : stream.getAudioTracks()) : [];
    return tracks.length && tracks[0].getSettings ? tracks[0].getSettings().deviceId : "";
  }

  function item(name) { return root.querySelector('[data-item="' + name + '"]'); }

  function report(name, value, label) {
    form.elements[name].value = value;
    var el = item(name);
    if (!el) return;
    el.querySelectorAll("[data-fix]").forEach(function (fix) { fix.hidden = fix.getAttribute("data-fix") !== value; });
    var result = el.querySelector("[data-result]");
    result.textContent = label || (value === "ok" ? words.ok : words.failed);
    result.className = "result " + (value === "ok" || value === "good" ? "is-ok" : value === "fair" ? "is-fair" : "is-bad");
  }

  // What a getUserMedia error means for the patient.
  function reason(error) {
    var name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") return "denied";
    if (name === "NotFoundError" || name === "OverconstrainedError") return "missing";
    if (name === "NotReadableError" || name === "AbortError") return "busy";
    return "error";
  }

  function checkMicrophone(audioStream) {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) { report("microphone", "ok"); return; }
    var context = new Context();
    var analyser = context.createAnalyser();
    context.createMediaStreamSource(audioStream).connect(analyser);
    var data = new Uint8Array(analyser.fftSize);
    var meter = item("microphone").querySelector("[data-level]");
    var loudest = 0, started = Date.now();
    (function tick() {
      analyser.getByteTimeDomainData(data);
      var peak = 0;
      for (var i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i] - 128));
      var level = Math.min(100, Math.round(peak / 1.28));
      meter.value = level;
      loudest = Math.max(loudest, level);
      if (loudest > 3) report("microphone", "ok");
      else if (Date.now() - started > 6000 && form.elements.microphone.value !== "ok") report("microphone", "silent");
      if (stream === audioStream) requestAnimationFrame(tick);
    })();
  }

  function startDevices() {
    report("microphone", "unknown", words.checking);
    if (video) report("camera", "unknown", words.checking);
    // In-app browsers (mail, messages, social apps) and old browsers have no camera access at all.
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      report("microphone", "unsupported");
      if (video) report("camera", "unsupported");
      return;
    }
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
    var audio = chosen.audioinput ? { deviceId: { ideal: chosen.audioinput } } : true;
    var camera = chosen.videoinput ? { deviceId: { ideal: chosen.videoinput } } : { facingMode: "user" };
    navigator.mediaDevices.getUserMedia({ audio: audio, video: video ? camera : false })
      .then(function (s) {
        stream = s;
        fillPicks();
        if (video) {
          item("camera").querySelector("[data-preview]").srcObject = s;
          report("camera", s.getVideoTracks().length ? "ok" : "missing");
        }
        checkMicrophone(s);
      })
      .catch(function (error) {
        // Try each device alone, so one failure does not hide the other's state.
        var why = reason(error);
        navigator.mediaDevices.getUserMedia({ audio: true }).then(function (s) {
          stream = s; checkMicrophone(s);
          if (video) report("camera", why);
        }, function (audioError) {
          report("microphone", reason(audioError));
          if (video) report("camera", why);
        });
      });
  }

  function playTone() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    var context = new Context();
    var oscillator = context.createOscillator();
    var gain = context.createGain();
    oscillator.frequency.value = 660;
    gain.gain.setValueAtTime(0.25, context.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, context.currentTime + 1.2);
    if (chosen.audiooutput && context.setSinkId) context.setSinkId(chosen.audiooutput).catch(function () {});
    oscillator.connect(gain).connect(context.destination);
    oscillator.start();
    oscillator.stop(context.currentTime + 1.2);
    item("speaker").querySelector("[data-heard]").hidden = false;
  }

  function checkNetwork() {
    report("network", "unknown", words.checking);
    var url = root.getAttribute("data-ping");
    var times = [];
    function once(n) {
      if (n === 0) {
        times.sort(function (a, b) { return a - b; });
        var rtt = Math.round(times[Math.floor(times.length / 2)]);
        form.elements.rtt.value = rtt;
        var grade = rtt < 150 ? "good" : rtt < 400 ? "fair" : "poor";
        report("network", grade, words[grade]);
        return;
      }
      var started = performance.now();
      fetch(url + "?n=" + n, { cache: "no-store", credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        times.push(performance.now() - started);
        once(n - 1);
      }).catch(function () { report("network", "offline"); });
    }
    once(5);
  }

  root.querySelectorAll("[data-pick]").forEach(function (select) {
    select.addEventListener("change", function () {
      var kind = select.getAttribute("data-pick");
      remember(kind, select.value);
      if (kind !== "audiooutput") startDevices();     // the check runs again with the chosen device
    });
  });
  root.querySelector("[data-play]").addEventListener("click", playTone);
  root.querySelector("[data-heard-yes]").addEventListener("click", function () { report("speaker", "ok"); });
  root.querySelector("[data-heard-no]").addEventListener("click", function () { report("speaker", "no"); });
  var start = root.querySelector("[data-start]");
  start.hidden = false;
  root.querySelector("[data-start-hint]").hidden = false;
  start.addEventListener("click", function () {
    start.textContent = words.retry;
    startDevices();
    checkNetwork();
  });
  form.addEventListener("submit", function () {
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
  });
})();
