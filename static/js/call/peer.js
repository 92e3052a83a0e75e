// The RTCPeerConnection with the relay worker: one per offer, candidates never ahead of the
// offer, the worker's answer, and a fresh connection when this one fails.
import { $, afterLoad, audioOnly, counters, iceServers, mark, presenceChanged } from "./page.js";
import * as media from "./media.js";
import * as signaling from "./signaling.js";

const remoteVideo = $("remote-video");
let pc = null, offerSent = false, pendingCandidates = [], retryTimer = null;

export function connection() { return pc; }

// One peer connection per offer; the worker answers with all its candidates. The offer is
// made at once, before the camera or the socket are ready: tracks join the senders when the
// camera opens (no new offer needed), and the offer leaves when the worker connection is.
export function start() {
  if (pc) { pc.onconnectionstatechange = null; pc.onicecandidate = null; pc.close(); }
  const current = pc = new RTCPeerConnection({ iceServers: iceServers });
  const remote = new MediaStream(), senders = {}, stream = media.localStream();
  offerSent = false;
  pendingCandidates = [];
  ["audio"].concat(audioOnly ? [] : ["video"]).forEach(function (kind) {
    const tx = pc.addTransceiver(media.track(kind) || kind, { direction: "sendrecv", streams: stream ? [stream] : [] });
    senders[kind] = tx.sender;
  });
  media.useSenders(senders);
  pc.ontrack = function (e) {
    remote.addTrack(e.track);
    afterLoad(function () {
      if (remoteVideo.srcObject !== remote) remoteVideo.srcObject = remote;
      remoteVideo.play().catch(function () { /* autoplay may wait for a tap */ });
    });
  };
  pc.onicecandidate = function (e) {
    const c = e.candidate;
    const msg = { type: "candidate", candidate: c && c.candidate ? c.candidate : null,
                  sdpMid: c ? c.sdpMid : null, sdpMLineIndex: c ? c.sdpMLineIndex : null };
    if (offerSent) signaling.send(msg); else pendingCandidates.push(msg);   // never ahead of the offer
  };
  pc.onconnectionstatechange = function () {
    counters.state = pc.connectionState;
    if (pc.connectionState === "connected") { mark("connected"); presenceChanged("self", "connected"); }
    if (pc.connectionState === "failed") restartSoon(200);
    if (pc.connectionState === "disconnected") { presenceChanged("self", "reconnecting"); restartSoon(3000); }
  };
  current.offerSdp = pc.createOffer().then(function (offer) {
    return current.setLocalDescription(offer).then(function () { return offer.sdp; });
  });
}

// The worker is there: send this peer connection's offer, or a new one if it was used.
export function offer() {
  if (!pc || offerSent) start();
  const current = pc;
  offerSent = true;
  current.offerSdp.then(function (sdp) {
    if (pc !== current) return;
    signaling.send({ type: "offer", sdp: sdp });
    mark("offer");
    pendingCandidates.forEach(signaling.send);
    pendingCandidates = [];
  });
}

export function answer(sdp) {
  counters.answers += 1;
  mark("answer");
  if (pc) pc.setRemoteDescription({ type: "answer", sdp: sdp }).catch(function () { restartSoon(500); });
}

export function restartSoon(delay) {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(function () {
    if (!signaling.hasEnded() && pc && pc.connectionState !== "connected" && signaling.isOpen()) {
      presenceChanged("self", "reconnecting");
      start();
      offer();
    }
  }, delay);
}

export function close() { if (pc) pc.close(); }
