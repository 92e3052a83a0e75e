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
      if (stream) requestAnimationFrame(tick);
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
    navigator.mediaDevices.getUserMedia({ audio: true, video: video ? { facingMode: "user" } : false })
      .then(function (s) {
        stream = s;
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
