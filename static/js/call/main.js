// The call page: one RTCPeerConnection with the relay worker, signaling over the
// bridge's websocket (docs/signaling.md), chat and files in the side panel.
// Every string and URL comes from data- attributes of #call (strict CSP, translated).
// An ES module, loaded natively (no bundler); it is being split into one module per concern.
import { $, counters, early, mark, note, role, root, setStatus, t } from "./page.js";
import * as controls from "./controls.js";
import * as media from "./media.js";
import * as peer from "./peer.js";
import * as signaling from "./signaling.js";

var send = signaling.send;

function start() {
  if (!root || !early || !window.RTCPeerConnection) return;
  var d = root.dataset;
  mark("script");

  var qualityEl = $("call-quality");
  var lastStats = null;

  function handle(msg) {
    switch (msg.type) {
      case "history": msg.items.forEach(addItem); break;
      case "chat": case "file": addItem(msg); break;
      case "ready": mark("ready"); setStatus("waiting"); peer.offer(); break;
      case "answer": peer.answer(msg.sdp); break;
      case "peer-state": peerState(msg); break;
      case "mute": if (msg.kind === "audio") note(msg.muted ? t("otherMuted") : ""); break;
      case "camera-request": if (role === "patient") controls.showRequest(msg); break;
      case "camera-reply": note(msg.accepted ? t("accepted") : t("refused")); break;
      case "bye":
        if (msg.from === "practitioner" && role === "patient") finish(d.endedUrl);
        else note(t("otherLeft"));
        break;
      case "ended": finish(role === "practitioner" ? (msg.next || d.endedUrl) : d.endedUrl); break;
      case "error":
        if (msg.code === "relay-unavailable") setStatus("unavailable");
        else if (msg.code === "replaced") { signaling.end(); setStatus("replaced"); }
        break;
    }
  }

  function peerState(msg) {
    if (msg.role === role) {
      if (msg.state === "connected") setStatus("connected");
      else if (msg.state === "reconnecting") setStatus("reconnecting");
      else if (msg.state === "failed") peer.restartSoon(200);
      return;
    }
    if (msg.state === "connected" || msg.state === "joined") note("");
    if (msg.state === "left") note(t("otherLeft"));
    if (msg.state === "reconnecting" || msg.state === "failed") note(t("otherReconnecting"));
  }

  function finish(url) {
    controls.leave();
    window.location.assign(url);
  }

  // Chat and files.
  var lines = $("chat-lines");
  function addItem(item) {
    var key = item.type + "-" + item.id;
    if (lines.querySelector('[data-key="' + key + '"]')) return;
    var li = document.createElement("li"), who = document.createElement("span"), text = document.createElement("span");
    li.className = "chat-line" + (item.from === role ? " mine" : "");
    li.setAttribute("data-key", key);
    who.className = "who";
    who.textContent = item.from === role ? t("you") : t("other");
    text.className = "text";
    if (item.type === "file") {
      var a = document.createElement("a");
      a.href = item.url; a.textContent = item.name; a.setAttribute("download", "");
      text.appendChild(document.createTextNode(t("fileSent") + " "));
      text.appendChild(a);
    } else {
      text.textContent = item.text;
    }
    li.appendChild(who); li.appendChild(text);
    lines.appendChild(li);
    lines.scrollTop = lines.scrollHeight;
  }

  $("chat-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var input = $("chat-text"), text = input.value.trim();
    if (!text) return;
    if (!signaling.isOpen()) { note(t("chatFailed")); return; }
    send({ type: "chat", text: text });
    input.value = "";
  });

  var fileForm = $("file-form"), fileError = $("file-error");
  fileForm.addEventListener("submit", function (e) {
    e.preventDefault();
    var button = fileForm.querySelector("button");
    fileError.hidden = true;
    button.disabled = true;
    fetch(fileForm.action, { method: "POST", body: new FormData(fileForm), credentials: "same-origin",
                             headers: { Accept: "application/json" } }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.error || t("sendFailed"));
        fileForm.reset();
      });
    }).catch(function (err) {
      fileError.textContent = err.message && err.message.indexOf("JSON") < 0 ? err.message : t("sendFailed");
      fileError.hidden = false;
    }).then(function () { button.disabled = false; });
  });

  // Connection quality from getStats: loss and round-trip time over the last period.
  function sample() {
    var pc = peer.connection();
    if (!pc) return Promise.resolve(counters);
    return pc.getStats().then(function (report) {
      var now = { lost: 0, received: 0, rtt: null, frames: 0, audio: 0 };
      report.forEach(function (s) {
        if (s.type === "inbound-rtp") {
          now.lost += s.packetsLost || 0;
          now.received += s.packetsReceived || 0;
          if (s.kind === "video") now.frames += s.framesDecoded || 0;
          if (s.kind === "audio") now.audio += s.packetsReceived || 0;
        }
        if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime != null) now.rtt = s.currentRoundTripTime;
      });
      counters.framesDecoded = now.frames;
      if (now.frames > 0) mark("video");
      counters.audioPackets = now.audio;
      if (lastStats) {
        var lost = now.lost - lastStats.lost, got = now.received - lastStats.received;
        var loss = got + lost > 0 ? lost / (got + lost) : (pc.connectionState === "connected" ? 0 : 1);
        var level = loss < 0.02 && (now.rtt == null || now.rtt < 0.3) ? "good"
          : loss < 0.08 && (now.rtt == null || now.rtt < 0.8) ? "fair" : "poor";
        if (pc.connectionState === "connected") {
          qualityEl.setAttribute("data-level", level);
          qualityEl.textContent = t("quality" + level.charAt(0).toUpperCase() + level.slice(1));
        }
      }
      lastStats = now;
      return counters;
    });
  }
  setInterval(sample, 2000);

  // For the browser tests: what the page decodes.
  window.cabinetCall = { stats: function () { return sample().then(function () { return counters; }); } };

  // Camera, peer connection and websocket start together.
  controls.init();
  setStatus("connecting");
  media.open();
  peer.start();
  signaling.start(handle);
}
start();
