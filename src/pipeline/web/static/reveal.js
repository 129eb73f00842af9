// Partial reveal: while the pointer is held down on the censored copy, the server sends one
// square of the original around that point (counted and audited there), laid over the copy;
// letting go removes it. Nothing of the original is fetched before the press.
(() => {
  "use strict";
  const image = document.getElementById("censored");
  if (!image) return;
  const stage = document.getElementById("stage");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const url = image.dataset.patchUrl;
  const width = Number(image.dataset.width);
  const height = Number(image.dataset.height);
  let holding = false;
  let overlay = null;
  let busy = false;
  let wanted = null;
  let shownAt = null;

  const point = (event) => {
    const box = image.getBoundingClientRect();
    return {
      x: Math.min(width - 1, Math.max(0, ((event.clientX - box.left) * width) / box.width)),
      y: Math.min(height - 1, Math.max(0, ((event.clientY - box.top) * height) / box.height)),
    };
  };

  const hide = () => {
    if (overlay) {
      URL.revokeObjectURL(overlay.src);
      overlay.remove();
      overlay = null;
    }
  };

  const bump = (name, by) => {
    const counter = document.querySelector(`[data-today="${name}"]`);
    if (counter) counter.textContent = (Number(counter.textContent.replace(/,/g, "")) + by).toLocaleString("en");
  };

  const request = async (at) => {
    if (busy) {
      wanted = at;
      return;
    }
    busy = true;
    try {
      const answer = await fetch(`${url}?x=${at.x.toFixed(1)}&y=${at.y.toFixed(1)}`, {
        method: "POST",
        headers: { "X-CSRF-Token": csrf },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (!answer.ok) {
        if (answer.status === 403) {
          // Past the share of the image areas may uncover: say so, and offer the confirmation.
          const said = await answer.json().catch(() => ({}));
          const step = document.getElementById("step");
          if (step && said.error) step.textContent = said.error;
          const confirm = document.getElementById("confirm");
          if (confirm) confirm.focus();
          holding = false;
          wanted = null;
        }
        return;
      }
      const head = (name) => Number(answer.headers.get(name));
      const blob = await answer.blob();
      bump("patches", 1);
      bump("gore_pixels", head("X-Patch-Gore-Pixels"));
      if (!holding) return;
      hide();
      overlay = new Image();
      overlay.id = "patch";
      overlay.className = "patch";
      overlay.alt = "an area of the original";
      overlay.style.left = `${(head("X-Patch-Left") / width) * 100}%`;
      overlay.style.top = `${(head("X-Patch-Top") / height) * 100}%`;
      overlay.style.width = `${(head("X-Patch-Width") / width) * 100}%`;
      overlay.style.height = `${(head("X-Patch-Height") / height) * 100}%`;
      overlay.src = URL.createObjectURL(blob);
      stage.appendChild(overlay);
      shownAt = at;
    } finally {
      busy = false;
      if (wanted && holding) {
        const next = wanted;
        wanted = null;
        request(next);
      }
    }
  };

  image.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    holding = true;
    image.setPointerCapture(event.pointerId);
    request(point(event));
  });
  image.addEventListener("pointermove", (event) => {
    if (!holding || !shownAt) return;
    const at = point(event);
    const step = Math.min(width, height) * 0.05; // Move a little before asking for another area.
    if (Math.hypot(at.x - shownAt.x, at.y - shownAt.y) > step) request(at);
  });
  for (const name of ["pointerup", "pointercancel", "lostpointercapture"]) {
    image.addEventListener(name, () => {
      holding = false;
      wanted = null;
      shownAt = null;
      hide();
    });
  }
  image.addEventListener("contextmenu", (event) => event.preventDefault());
  image.addEventListener("dragstart", (event) => event.preventDefault());
})();
