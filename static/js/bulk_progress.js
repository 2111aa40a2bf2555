// Live progress for a bulk operation's admin page: polls the operation's status API every second
// and updates the bar and counts; reloads once the operation has finished, to show every result.
(function () {
  "use strict";
  const root = document.getElementById("bulk-operation");
  if (!root) return;
  const finished = root.dataset.finished.split(",");
  // An undo runs as a task after the reset has finished: wait for "reverted" (or the undo's failure).
  const undoing = root.dataset.undoing === "1";
  if (!undoing && finished.includes(root.dataset.status)) return;

  const format = new Intl.NumberFormat();
  function set(id, value) {
    const el = document.getElementById(id);
    if (el) el.textContent = value;
  }

  async function poll() {
    let data;
    try {
      const response = await fetch(root.dataset.statusUrl + "?page_size=1", {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return; // e.g. no permission to poll: the page still shows what it has
      data = await response.json();
    } catch (error) {
      window.setTimeout(poll, 3000); // a network hiccup: try again a little later
      return;
    }
    const bar = document.getElementById("bulk-bar");
    bar.setAttribute("aria-valuenow", data.progress_percent);
    bar.firstElementChild.style.width = data.progress_percent + "%";
    set("bulk-percent", data.progress_percent);
    set("bulk-processed", format.format(data.processed));
    set("bulk-total", format.format(data.total));
    set("bulk-succeeded", format.format(data.succeeded));
    set("bulk-skipped", format.format(data.skipped));
    set("bulk-failed", format.format(data.failed));
    set("bulk-status", data.status);
    const undo = (data.summary && data.summary.undo) || {};
    const done = undoing ? data.status === "reverted" || undo.status === "failed" : finished.includes(data.status);
    if (done) {
      window.location.reload();
      return;
    }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 500);
})();
