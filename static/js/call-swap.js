// Swap the call page into the page already open (the patient's waiting room, the practitioner's
// day) instead of loading it anew: the camera opened here stays open (window.cabinetWarmMedia,
// taken by js/call-early.js), the call's modules are already parsed (templates/visit/_call_preload.html),
// and no new document, stylesheet or service worker start stands between the click and the call.
// cabinetSwapCall(answer, url): answer is a fetch() promise of the call page at url. Resolves once
// the call's scripts run; rejects when the answer is not the call page (the caller then loads it).
(function () {
  "use strict";
  if (!window.fetch || !window.DOMParser || !window.Promise) return;

  function load(script) {
    return new Promise(function (resolve, reject) {
      script.onload = resolve;
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }

  // The camera and microphone the call will use, asked for on the page before it: the ones chosen at
  // the device check, as js/call-early.js asks for them on the call page. A rejection is left to the
  // call page, which asks again and explains.
  window.cabinetCallMedia = function (audioOnly) {
    var chosen = {};
    try { chosen = JSON.parse(window.localStorage.getItem("cabinet.devices") || "{}") || {}; } catch (e) { chosen = {}; }
    var video = audioOnly ? false : { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } };
    if (video && chosen.videoinput) video.deviceId = { ideal: chosen.videoinput };
    var audio = chosen.audioinput ? { deviceId: { ideal: chosen.audioinput } } : true;
    var media = navigator.mediaDevices.getUserMedia({ audio: audio, video: video });
    media.catch(function () { /* the call page asks again and explains */ });
    return media;
  };

  // The call's signaling socket, opened as soon as this side may join (admitted), while the call
  // page is still on its way; with it the peer connection, whose offer leaves on the bridge's
  // "ready" and which takes the worker's answer, so ICE and DTLS run while the page is swapped in.
  // js/call-early.js takes both over (the socket with what came on it), js/call/peer.js the
  // connection; the messages stay queued for js/call/main.js, which skips the "ready" and the
  // "answer" done here (docs/signaling.md: one offer per "ready").
  // options: ice (the ICE servers as the page's data-ice attribute writes them, JSON), audioOnly, media.
  window.cabinetOpenSignal = function (address, options) {
    var path = new URL(address, location.href).pathname;     // websocket routes build as ws:// URLs
    var warm = { path: path, messages: [], openedAt: null, closed: null, peer: null };
    var ws = warm.ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + path);
    var peer = options && window.RTCPeerConnection ? warmPeer(options) : null;
    warm.peer = peer;
    function send(msg) { msg.v = 1; if (ws.readyState === 1) ws.send(JSON.stringify(msg)); }
    ws.onopen = function () { warm.openedAt = Math.round(performance.now()); };
    ws.onmessage = function (e) {
      warm.messages.push(e);
      if (!peer || peer.adopted || peer.broken) return;
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      if (msg.type === "ready" && !peer.offerSent) {
        peer.offerSent = true;
        peer.offer.then(function (sdp) {
          if (peer.adopted || ws.readyState !== 1) return;
          send({ type: "offer", sdp: sdp });
          peer.sentAt = Math.round(performance.now());
          peer.candidates.splice(0).forEach(send);
          peer.send = send;
        });
      } else if (msg.type === "answer" && peer.offerSent && !peer.answered) {
        peer.answered = true;
        peer.answeredAt = Math.round(performance.now());
        peer.answering = peer.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
        peer.answering.catch(function () { /* js/call/peer.js starts again */ });
      }
    };
    ws.onclose = function (e) { warm.closed = e; };
    window.cabinetWarmSocket = warm;
    return warm;
  };

  // A peer connection as js/call/peer.js makes it: one sendrecv transceiver per kind, the camera's
  // tracks on them as soon as it is open; what happens before peer.js adopts it is kept.
  function warmPeer(options) {
    var ice = [];
    try { ice = JSON.parse(options.ice || "[]"); } catch (e) { ice = []; }
    var pc = new RTCPeerConnection({ iceServers: ice });
    var peer = { pc: pc, candidates: [], tracks: [], offerSent: false, answered: false, adopted: false, broken: false,
                 send: null, sentAt: null, answeredAt: null, answering: null };
    var kinds = options.audioOnly ? ["audio"] : ["audio", "video"];
    var senders = kinds.map(function (kind) { return pc.addTransceiver(kind, { direction: "sendrecv" }).sender; });
    if (options.media) {
      options.media.then(function (stream) {
        senders.forEach(function (sender, i) {
          var track = stream.getTracks().filter(function (tr) { return tr.kind === kinds[i]; })[0];
          if (track && !sender.track && pc.signalingState !== "closed") sender.replaceTrack(track);
        });
      }, function () { /* js/call/media.js asks again and explains */ });
    }
    pc.ontrack = function (e) { peer.tracks.push(e); };
    pc.onicecandidate = function (e) {
      var c = e.candidate;
      var msg = { type: "candidate", candidate: c && c.candidate ? c.candidate : null,
                  sdpMid: c ? c.sdpMid : null, sdpMLineIndex: c ? c.sdpMLineIndex : null };
      if (peer.send) peer.send(msg); else peer.candidates.push(msg);   // never ahead of the offer
    };
    peer.offer = pc.createOffer().then(function (offer) {
      return pc.setLocalDescription(offer).then(function () { return offer.sdp; });
    });
    peer.offer.catch(function () { peer.broken = true; /* peer.js makes its own */ });
    return peer;
  }

  window.cabinetSwapCall = function (answer, url) {
    return answer.then(function (response) {
      if (!response.ok || new URL(response.url).pathname !== new URL(url, location.href).pathname) throw new Error("moved");
      return response.text();
    }).then(function (html) {
      var page = new DOMParser().parseFromString(html, "text/html");
      var early = page.querySelector("script[src*='js/call-early.js']");
      var main = page.querySelector("script[type='module'][src*='js/call/main.js']");
      var content = page.getElementById("main");
      if (!early || !main || !content || !page.getElementById("call") || !window.htmx) throw new Error("not the call");
      page.querySelectorAll("head link[rel='stylesheet']").forEach(function (link) {
        if (!document.querySelector("link[rel='stylesheet'][href='" + link.getAttribute("href") + "']")) {
          document.head.appendChild(document.importNode(link, false));
        }
      });
      history.replaceState(null, "", url);
      document.title = page.title;
      document.body.className = page.body.className;
      // htmx swaps it, so this page's live socket is closed as it goes (its slot is the call's).
      content.querySelectorAll("script").forEach(function (s) { s.remove(); });
      window.htmx.swap(document.getElementById("main"), content.innerHTML, { swapStyle: "innerHTML" });
      var first = document.createElement("script");
      Object.keys(early.dataset).forEach(function (k) { first.dataset[k] = early.dataset[k]; });
      first.src = early.getAttribute("src");
      return load(first).then(function () {
        var modules = document.createElement("script");
        modules.type = "module";
        modules.src = main.getAttribute("src");
        document.body.appendChild(modules);
      });
    });
  };
})();
