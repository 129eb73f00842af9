// A job's progress bar, refreshed every second until the job is done or cancelled.
(() => {
  "use strict";
  const job = document.getElementById("job");
  if (!job) return;
  const bar = document.getElementById("job-bar");
  const refresh = async () => {
    try {
      const answer = await fetch(job.dataset.progressUrl, { credentials: "same-origin", cache: "no-store" });
      if (!answer.ok) return;
      const state = await answer.json();
      bar.max = Math.max(1, state.total);
      bar.value = state.done + state.failed;
      for (const field of job.querySelectorAll("[data-field]")) {
        const value = state[field.dataset.field];
        field.textContent = value === null || value === undefined ? "—" : String(value);
      }
      if (state.state === "done" || state.state === "cancelled") return;
    } catch {
      // A passing network error: try again below.
    }
    window.setTimeout(refresh, 1000);
  };
  window.setTimeout(refresh, 1000);
})();
