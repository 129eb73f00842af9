// Keyboard shortcuts: an element with data-key="x" is clicked (a button) or followed (a link)
// when x is pressed outside a text field. "b" shows the blurred original on an image's page.
(() => {
  "use strict";
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const target = event.target;
    if (target.closest("input, textarea, select, [contenteditable]")) return;
    const key = event.key === "ArrowRight" ? "j" : event.key === "ArrowLeft" ? "k" : event.key.toLowerCase();
    const element = key === "b" ? document.getElementById("show-blurred") : document.querySelector(`[data-key="${key}"]`);
    if (!element) return;
    event.preventDefault();
    if (element.tagName === "A") window.location.assign(element.href);
    else element.click();
  });
})();
