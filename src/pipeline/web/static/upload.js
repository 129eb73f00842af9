// Drag and drop (or choose) many files: each is sent on its own, two at a time, with its own
// progress bar and its own result or error.
(() => {
  "use strict";
  const drop = document.getElementById("drop");
  const input = document.getElementById("files");
  const list = document.getElementById("uploads");
  const template = document.getElementById("upload-row");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const url = drop.dataset.url;
  const limit = Number(drop.dataset.limit);
  const parallel = 2;
  const queue = [];
  let running = 0;

  const finish = (row, ok, text, link) => {
    row.classList.add(ok ? "done" : "failed");
    row.querySelector("progress").value = 100;
    const outcome = row.querySelector(".outcome");
    outcome.textContent = text;
    if (link) {
      const anchor = document.createElement("a");
      anchor.href = link;
      anchor.textContent = "open";
      outcome.append(" ", anchor);
    }
  };

  const send = (file, row) =>
    new Promise((resolve) => {
      const bar = row.querySelector("progress");
      const outcome = row.querySelector(".outcome");
      if (file.size > limit) {
        finish(row, false, `too large: ${file.size.toLocaleString("en")} bytes (limit ${limit.toLocaleString("en")})`);
        resolve();
        return;
      }
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${url}?name=${encodeURIComponent(file.name)}`);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) bar.value = Math.round((event.loaded / event.total) * 90);
      });
      xhr.upload.addEventListener("load", () => {
        outcome.textContent = "analysing";
      });
      xhr.addEventListener("load", () => {
        let body;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          body = { error: `the server answered ${xhr.status}` };
        }
        if (xhr.status === 200) {
          row.dataset.verdict = body.verdict;
          const verdict = body.verdict === "gore" ? "likely gore (censored)" : "not gore";
          finish(row, true, `${verdict}, p = ${body.gore_probability.toFixed(3)}`, body.page);
        } else {
          finish(row, false, `${xhr.status}: ${body.error}`);
        }
        resolve();
      });
      xhr.addEventListener("error", () => {
        finish(row, false, "the connection failed; try again");
        resolve();
      });
      outcome.textContent = "sending";
      xhr.send(file);
    });

  const pump = () => {
    while (running < parallel && queue.length) {
      const [file, row] = queue.shift();
      running += 1;
      send(file, row).finally(() => {
        running -= 1;
        pump();
      });
    }
  };

  const add = (files) => {
    for (const file of files) {
      const row = template.content.firstElementChild.cloneNode(true);
      row.querySelector(".file").textContent = file.name;
      list.appendChild(row);
      queue.push([file, row]);
    }
    pump();
  };

  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    add(event.dataTransfer.files);
  });
  input.addEventListener("change", () => {
    add(input.files);
    input.value = "";
  });
})();
