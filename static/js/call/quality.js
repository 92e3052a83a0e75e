// Connection quality from getStats (loss and round-trip time over the last period) for the
// indicator, and the decoded-media counters that window.cabinetCall.stats() answers.
import { $, counters, mark, t } from "./page.js";
import { connection } from "./peer.js";

const qualityEl = $("call-quality");
let lastStats = null;

function sample() {
  const pc = connection();
  if (!pc) return Promise.resolve(counters);
  return pc.getStats().then(function (report) {
    const now = { lost: 0, received: 0, rtt: null, frames: 0, audio: 0 };
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
      const lost = now.lost - lastStats.lost, got = now.received - lastStats.received;
      const loss = got + lost > 0 ? lost / (got + lost) : (pc.connectionState === "connected" ? 0 : 1);
      const level = loss < 0.02 && (now.rtt == null || now.rtt < 0.3) ? "good"
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

export function start() {
  setInterval(sample, 2000);
  // For the browser tests and the bench: what the page decodes.
  window.cabinetCall = { stats: function () { return sample().then(function () { return counters; }); } };
}
