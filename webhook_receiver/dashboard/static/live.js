// Live refresh without reloading: every few seconds, fetch this same page and swap in
// each element marked `data-live` (matched by id) whose content changed. The period is
// the body's `data-live-every-ms` (0: the page no longer changes, e.g. a finished batch);
// nothing is fetched while the tab is hidden.
(function () {
  "use strict";

  function period(doc) {
    return Number(doc.body.dataset.liveEveryMs || 0);
  }

  async function refresh() {
    if (document.hidden) return;
    const answer = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
    if (!answer.ok) return;
    const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
    for (const part of fresh.querySelectorAll("[data-live][id]")) {
      const current = document.getElementById(part.id);
      if (current && current.innerHTML !== part.innerHTML) {
        current.replaceWith(document.importNode(part, true));
      }
    }
    document.body.dataset.liveEveryMs = String(period(fresh));
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  }

  async function loop() {
    try {
      await refresh();
    } catch (error) {
      console.warn("live refresh failed", error);
    }
    const every = period(document);
    if (every > 0) setTimeout(loop, every);
  }

  const first = period(document);
  if (first > 0) setTimeout(loop, first);
})();
