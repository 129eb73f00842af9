// A video's page: lay the gore segments out on the timeline bar, follow the player with a
// playhead, start at the chosen segment, and unblur the censored copy only when asked.
(() => {
  "use strict";
  const timeline = document.getElementById("timeline");
  const player = document.getElementById("player") || document.getElementById("blurred") || document.getElementById("original");
  if (timeline) {
    const seconds = Number(timeline.dataset.seconds) || 1;
    const share = (value) => `${Math.min(100, Math.max(0, (Number(value) / seconds) * 100))}%`;
    for (const segment of timeline.querySelectorAll(".segment")) {
      segment.style.left = share(segment.dataset.start);
      segment.style.width = `max(3px, calc(${share(segment.dataset.end)} - ${share(segment.dataset.start)}))`;
    }
    const playhead = document.getElementById("playhead");
    const censored = document.getElementById("player");
    if (censored && playhead) {
      censored.addEventListener("timeupdate", () => { playhead.style.left = share(censored.currentTime); });
    } else if (playhead) {
      playhead.remove();
    }
  }
  const censored = document.getElementById("player");
  if (censored && censored.dataset.start) {
    const start = Number(censored.dataset.start);
    const seek = () => { censored.currentTime = start; };
    if (censored.readyState >= 1) seek(); else censored.addEventListener("loadedmetadata", seek, { once: true });
  }
  const unblur = document.getElementById("unblur");
  if (unblur && censored) {
    unblur.addEventListener("click", () => {
      const soft = censored.classList.toggle("softened");
      unblur.setAttribute("aria-pressed", String(!soft));
      unblur.textContent = soft ? "Unblur the censored copy" : "Blur the censored copy again";
    });
  }
  if (player) player.muted = true; // Whatever the browser remembers: sound only when the person turns it on.
})();
