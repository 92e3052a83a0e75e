// The call page: one RTCPeerConnection with the relay worker, signaling over the
// bridge's websocket (docs/signaling.md), chat and files in the side panel.
// Every string and URL comes from data- attributes of #call (strict CSP, translated).
// An ES module, loaded natively (no bundler); it is being split into one module per concern.
import { $, afterLoad, audioOnly, counters, early, iceServers, mark, note, role, root, setStatus, t } from "./page.js";
import * as signaling from "./signaling.js";

var send = signaling.send;

function start() {
  if (!root || !early || !window.RTCPeerConnection) return;
  var d = root.dataset;
  mark("script");

  var qualityEl = $("call-quality");
  var remoteVideo = $("remote-video"), localVideo = $("local-video");
  var pc = null, stream = null, screenTrack = null;
  var senders = {}, facing = "user", lastStats = null, retryTimer = null;
  var micOn = true, camOn = true, pendingRequest = null;

  // Local media, with clear messages when a permission or a device is missing
  // (call-early.js has usually asked for them already).
  function getMedia() {
    var video = early.video(facing);
    var asked = early.media || navigator.mediaDevices.getUserMedia({ audio: true, video: video });
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

  function track(kind) {
    if (kind === "video" && screenTrack) return screenTrack;
    return stream ? stream.getTracks().filter(function (tr) { return tr.kind === kind; })[0] || null : null;
  }

  // One peer connection per offer; the worker answers with all its candidates. The offer is
  // made at once, before the camera or the socket are ready: tracks join the senders when the
  // camera opens (no new offer needed), and the offer leaves when the worker connection is.
  var offerSent = false, pendingCandidates = [];
  function startPeer() {
    if (pc) { pc.onconnectionstatechange = null; pc.onicecandidate = null; pc.close(); }
    var current = pc = new RTCPeerConnection({ iceServers: iceServers });
    var remote = new MediaStream();
    senders = {};
    offerSent = false;
    pendingCandidates = [];
    ["audio"].concat(audioOnly ? [] : ["video"]).forEach(function (kind) {
      var tr = track(kind);
      var tx = pc.addTransceiver(tr || kind, { direction: "sendrecv", streams: stream ? [stream] : [] });
      senders[kind] = tx.sender;
    });
    pc.ontrack = function (e) {
      remote.addTrack(e.track);
      afterLoad(function () {
        if (remoteVideo.srcObject !== remote) remoteVideo.srcObject = remote;
        remoteVideo.play().catch(function () { /* autoplay may wait for a tap */ });
      });
    };
    pc.onicecandidate = function (e) {
      var c = e.candidate;
      var msg = { type: "candidate", candidate: c && c.candidate ? c.candidate : null,
                  sdpMid: c ? c.sdpMid : null, sdpMLineIndex: c ? c.sdpMLineIndex : null };
      if (offerSent) send(msg); else pendingCandidates.push(msg);   // never ahead of the offer
    };
    pc.onconnectionstatechange = function () {
      counters.state = pc.connectionState;
      if (pc.connectionState === "connected") { mark("connected"); setStatus("connected"); }
      if (pc.connectionState === "failed") restartSoon(200);
      if (pc.connectionState === "disconnected") { setStatus("reconnecting"); restartSoon(3000); }
    };
    current.offerSdp = pc.createOffer().then(function (offer) {
      return current.setLocalDescription(offer).then(function () { return offer.sdp; });
    });
  }

  // The worker is there: send this peer connection's offer, or a new one if it was used.
  function offer() {
    if (!pc || offerSent) startPeer();
    var current = pc;
    offerSent = true;
    current.offerSdp.then(function (sdp) {
      if (pc !== current) return;
      send({ type: "offer", sdp: sdp });
      mark("offer");
      pendingCandidates.forEach(send);
      pendingCandidates = [];
    });
  }

  function restartSoon(delay) {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(function () {
      if (!signaling.hasEnded() && pc && pc.connectionState !== "connected" && signaling.isOpen()) {
        setStatus("reconnecting");
        startPeer();
        offer();
      }
    }, delay);
  }

  function handle(msg) {
    switch (msg.type) {
      case "history": msg.items.forEach(addItem); break;
      case "chat": case "file": addItem(msg); break;
      case "ready": mark("ready"); setStatus("waiting"); offer(); break;
      case "answer":
        counters.answers += 1;
        mark("answer");
        if (pc) pc.setRemoteDescription({ type: "answer", sdp: msg.sdp }).catch(function () { restartSoon(500); });
        break;
      case "peer-state": peerState(msg); break;
      case "mute": if (msg.kind === "audio") note(msg.muted ? t("otherMuted") : ""); break;
      case "camera-request": if (role === "patient") showRequest(msg); break;
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
      else if (msg.state === "failed") restartSoon(200);
      return;
    }
    if (msg.state === "connected" || msg.state === "joined") note("");
    if (msg.state === "left") note(t("otherLeft"));
    if (msg.state === "reconnecting" || msg.state === "failed") note(t("otherReconnecting"));
  }

  function finish(url) {
    signaling.end();
    if (pc) pc.close();
    if (stream) stream.getTracks().forEach(function (tr) { tr.stop(); });
    signaling.close();
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

  // Controls.
  function bind(id, fn) { var el = $(id); if (el) el.addEventListener("click", fn); return el; }
  bind("btn-mic", function () {
    micOn = !micOn;
    var tr = track("audio");
    if (tr) tr.enabled = micOn;
    this.textContent = micOn ? t("mute") : t("unmute");
    this.setAttribute("aria-pressed", String(!micOn));
    send({ type: "mute", kind: "audio", muted: !micOn });
  });
  bind("btn-cam", function () {
    camOn = !camOn;
    var tr = track("video");
    if (tr) tr.enabled = camOn;
    this.textContent = camOn ? t("cameraOff") : t("cameraOn");
    this.setAttribute("aria-pressed", String(!camOn));
    send({ type: "mute", kind: "video", muted: !camOn });
  });

  // Switch the camera: stop the old one first (many phones cannot open both), replace the track.
  function useCamera(wanted) {
    var old = stream && stream.getVideoTracks()[0];
    if (old) old.stop();
    return navigator.mediaDevices.getUserMedia({ video: { facingMode: { exact: wanted } } }).then(function (s) {
      var fresh = s.getVideoTracks()[0];
      if (old) stream.removeTrack(old);
      stream.addTrack(fresh);
      fresh.enabled = camOn;
      facing = wanted;
      if (!screenTrack && senders.video) senders.video.replaceTrack(fresh);
      localVideo.srcObject = stream;
      return true;
    }).catch(function () {
      note(t("noOtherCamera"));
      if (old) {   // bring the previous camera back
        return navigator.mediaDevices.getUserMedia({ video: { facingMode: facing } }).then(function (s) {
          var back = s.getVideoTracks()[0];
          stream.removeTrack(old); stream.addTrack(back);
          if (!screenTrack && senders.video) senders.video.replaceTrack(back);
          localVideo.srcObject = stream;
          return false;
        }, function () { return false; });
      }
      return false;
    });
  }
  bind("btn-flip", function () { useCamera(facing === "user" ? "environment" : "user"); });

  var screenBtn = $("btn-screen");
  if (screenBtn && navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia) {
    screenBtn.hidden = false;
    screenBtn.addEventListener("click", function () {
      if (screenTrack) { stopShare(); return; }
      navigator.mediaDevices.getDisplayMedia({ video: true }).then(function (s) {
        screenTrack = s.getVideoTracks()[0];
        screenTrack.onended = stopShare;
        if (senders.video) senders.video.replaceTrack(screenTrack);   // no new m-line
        screenBtn.textContent = t("stopShare");
      }).catch(function () { /* the user cancelled */ });
    });
  }
  function stopShare() {
    if (!screenTrack) return;
    screenTrack.onended = null;
    screenTrack.stop();
    screenTrack = null;
    if (senders.video) senders.video.replaceTrack(track("video"));
    screenBtn.textContent = t("share");
  }

  bind("btn-ask-back", function () { send({ type: "camera-request", facing: "environment" }); });
  bind("btn-ask-zoom", function () { send({ type: "camera-request", zoom: 2 }); });

  // The patient sees the practitioner's request and may refuse it.
  var requestBox = $("camera-request");
  function showRequest(msg) {
    if (!requestBox) return;
    pendingRequest = msg;
    $("camera-request-text").textContent = msg.facing ? t("askBack") : t("askZoom");
    requestBox.hidden = false;
  }
  function answerRequest(accepted) {
    var msg = pendingRequest;
    requestBox.hidden = true;
    pendingRequest = null;
    if (!msg) return;
    if (!accepted) { send({ type: "camera-reply", accepted: false }); return; }
    var done = msg.facing ? useCamera(msg.facing) : Promise.resolve(zoom(msg.zoom));
    done.then(function (ok) { send({ type: "camera-reply", accepted: !!ok }); });
  }
  function zoom(factor) {
    var tr = stream && stream.getVideoTracks()[0];
    var caps = tr && tr.getCapabilities ? tr.getCapabilities() : {};
    if (!caps.zoom) return false;
    var value = Math.min(caps.zoom.max, Math.max(caps.zoom.min, caps.zoom.min * factor));
    tr.applyConstraints({ advanced: [{ zoom: value }] }).catch(function () { /* refused by the device */ });
    return true;
  }
  bind("btn-camera-accept", function () { answerRequest(true); });
  bind("btn-camera-refuse", function () { answerRequest(false); });

  bind("btn-hangup", function () {
    send({ type: "bye" });
    if (role === "patient") {
      signaling.end();
      if (pc) pc.close();
      if (stream) stream.getTracks().forEach(function (tr) { tr.stop(); });
      signaling.close();
      setStatus("youLeft");
    }
  });

  // Connection quality from getStats: loss and round-trip time over the last period.
  function sample() {
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
  setStatus("connecting");
  getMedia().then(function (s) {
    stream = s;
    mark("media");
    if (localVideo && s.getVideoTracks().length) afterLoad(function () { localVideo.srcObject = s; });
    Object.keys(senders).forEach(function (kind) {
      var tr = track(kind);
      if (tr && !senders[kind].track) senders[kind].replaceTrack(tr);
    });
  });
  startPeer();
  signaling.start(handle);
}
start();
