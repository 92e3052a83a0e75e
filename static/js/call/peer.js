// The RTCPeerConnection with the relay worker: one per offer, candidates never ahead of the
// offer, the worker's answer, and a fresh connection when this one fails.
import { $, afterLoad, audioOnly, counters, early, iceServers, mark, presenceChanged } from "./page.js";
import * as media from "./media.js";
import * as signaling from "./signaling.js";

const remoteVideo = $("remote-video");
let pc = null, offerSent = false, pendingCandidates = [], retryTimer = null;
// The peer connection the page swapped this one in made (js/call-swap.js): its offer may have left
// on the first "ready", and the worker's answer been applied, before these modules ran.
let skipReady = false, skipAnswer = false;

export function connection() { return pc; }

// One peer connection per offer; the worker answers with all its candidates. The offer is
// made at once, before the camera or the socket are ready: tracks join the senders when the
// camera opens (no new offer needed), and the offer leaves when the worker connection is.
export function start() {
  const warm = early.peer;
  if (warm && !pc && !warm.adopted && !warm.broken && warm.pc.signalingState !== "closed") return adopt(warm);
  if (pc) { pc.onconnectionstatechange = null; pc.onicecandidate = null; pc.close(); }
  const current = pc = new RTCPeerConnection({ iceServers: iceServers });
  const senders = {}, stream = media.localStream();
  offerSent = skipReady = skipAnswer = false;
  pendingCandidates = [];
  ["audio"].concat(audioOnly ? [] : ["video"]).forEach(function (kind) {
    const tx = pc.addTransceiver(media.track(kind) || kind, { direction: "sendrecv", streams: stream ? [stream] : [] });
    senders[kind] = tx.sender;
  });
  media.useSenders(senders);
  wire(current);
  current.offerSdp = pc.createOffer().then(function (offer) {
    return current.setLocalDescription(offer).then(function () { return offer.sdp; });
  });
}

function adopt(warm) {
  warm.adopted = true;
  const current = pc = warm.pc, senders = {};
  offerSent = skipReady = !!warm.send;
  skipAnswer = warm.answered;
  pendingCandidates = offerSent ? [] : warm.candidates.splice(0);
  if (warm.sentAt !== null) counters.marks.offer = warm.sentAt;
  if (warm.answeredAt !== null) { counters.marks.answer = warm.answeredAt; counters.answers += 1; }
  current.getTransceivers().forEach(function (tx) { senders[tx.receiver.track.kind] = tx.sender; });
  media.useSenders(senders);
  current.offerSdp = warm.offer;
  const onTrack = wire(current);
  warm.tracks.splice(0).forEach(onTrack);
  if (warm.answering) warm.answering.catch(function () { restartSoon(500); });
  if (current.connectionState !== "new") current.onconnectionstatechange();
}

// The handlers of one peer connection; returns its ontrack, for the tracks that came before.
function wire(current) {
  const remote = new MediaStream();
  current.ontrack = function (e) {
    remote.addTrack(e.track);
    afterLoad(function () {
      if (remoteVideo.srcObject !== remote) remoteVideo.srcObject = remote;
      remoteVideo.play().catch(function () { /* autoplay may wait for a tap */ });
    });
  };
  current.onicecandidate = function (e) {
    const c = e.candidate;
    const msg = { type: "candidate", candidate: c && c.candidate ? c.candidate : null,
                  sdpMid: c ? c.sdpMid : null, sdpMLineIndex: c ? c.sdpMLineIndex : null };
    if (offerSent) signaling.send(msg); else pendingCandidates.push(msg);   // never ahead of the offer
  };
  current.onconnectionstatechange = function () {
    counters.state = current.connectionState;
    if (current.connectionState === "connected") { mark("connected"); presenceChanged("self", "connected"); }
    if (current.connectionState === "failed") restartSoon(200);
    if (current.connectionState === "disconnected") { presenceChanged("self", "reconnecting"); restartSoon(3000); }
  };
  return current.ontrack;
}

// The worker is there: send this peer connection's offer, or a new one if it was used.
export function offer() {
  if (skipReady) { skipReady = false; return; }      // sent already, on this very "ready"
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
  if (skipAnswer) { skipAnswer = false; return; }    // applied already (js/call-swap.js)
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
