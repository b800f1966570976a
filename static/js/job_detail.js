/* Job detail: live status (2 s backing off to 10 s, paused while hidden, stopped at a terminal
   status), cancel, the variations' player and "Download selected", expiry countdown and an optional
   browser notification. */
(function () {
  "use strict";
  const vj = window.videojobs;
  const container = document.getElementById("job-status");
  const errorElement = document.getElementById("cancel-error");
  const notifyBox = document.getElementById("notify");
  const NOTIFY_ASKED = "videojobs-notify-asked";

  function current() { return container.querySelector(".job-status"); }
  function isTerminal() { return current().dataset.terminal === "true"; }
  function busy() { const form = container.querySelector(".cancel-form"); return form && form.dataset.busy; }

  function notifyFinished(snippet) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const badge = snippet.querySelector("#job-badge");
    new Notification("videojobs: job " + (badge ? badge.textContent.trim() : "finished"), {
      body: snippet.querySelector("h1").textContent.trim(),
      tag: "videojobs-" + snippet.dataset.job,
    });
  }

  async function refresh() {
    if (busy()) return true; // never swap the form away while its request runs
    const wasTerminal = isTerminal();
    const snippet = await vj.fetchHtml(container.dataset.statusUrl);
    container.replaceChildren(snippet);
    vj.updateCountdowns(container);
    updateSelection();
    if (!wasTerminal && isTerminal()) {
      notifyFinished(snippet);
      if (notifyBox) notifyBox.hidden = true;
    }
    return !isTerminal();
  }

  const poller = isTerminal() ? null : vj.adaptivePoll(refresh);
  /* Read by the browser tests (tests/e2e/test_browser.py) to see that polling paused or stopped. */
  window.videojobs.testHooks = { detailPoller: poller };

  container.addEventListener("submit", function (event) {
    const form = event.target.closest(".cancel-form");
    if (!form) return;
    event.preventDefault();
    vj.cancelWithForm(form, errorElement, async function () {
      if (poller && !poller.stopped) poller.now(); else await refresh();
    });
  });

  /* The player: a thumbnail's link plays its variation here, outside the polled status, so a refresh
     never stops it. Without this script the link opens the video in the browser's own player. */
  const player = document.getElementById("player");
  const video = document.getElementById("player-video");
  container.addEventListener("click", function (event) {
    const link = event.target.closest("a.play");
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    document.getElementById("player-title").textContent = link.dataset.title;
    document.getElementById("player-download").href = link.dataset.download;
    video.src = link.href;
    player.hidden = false;
    player.scrollIntoView({ block: "start" });
    video.play().catch(function () { /* autoplay refused: the controls are there */ });
  });
  document.getElementById("player-close").addEventListener("click", function () {
    video.pause();
    video.removeAttribute("src");
    video.load();
    player.hidden = true;
  });

  /* "Download selected" asks for at least one variation. */
  function updateSelection() {
    const button = container.querySelector("#download-selected-button");
    if (button) button.disabled = !container.querySelector("input[name=outputs]:checked");
  }
  container.addEventListener("change", updateSelection);
  updateSelection();

  window.setInterval(function () { vj.updateCountdowns(container); }, 30000);
  vj.updateCountdowns(container);

  /* The notification offer says where it stands: granted (nothing to do), not asked yet (the button), or
     refused by the browser (how to allow it, and the button again: a browser that still blocks answers at
     once, one whose setting was changed asks). */
  const NOTIFY_TEXT = {
    granted: ["You will get a browser notification when this job finishes.", ""],
    "default": ["", "Notify me when this job finishes"],
    denied: ["Notifications are blocked for this site in your browser. Allow them in the site's settings " +
             "(the icon left of the address), then ask again.", "Ask again"],
  };

  function showNotifyState() {
    const [text, button] = NOTIFY_TEXT[Notification.permission] || NOTIFY_TEXT["default"];
    document.getElementById("notify-state").textContent = text;
    const ask = document.getElementById("notify-button");
    ask.textContent = button;
    ask.hidden = !button;
  }

  if (notifyBox && "Notification" in window && !isTerminal()) {
    notifyBox.hidden = false;
    showNotifyState();
    document.getElementById("notify-button").addEventListener("click", function () {
      window.localStorage.setItem(NOTIFY_ASKED, "1");
      Promise.resolve(Notification.requestPermission()).then(showNotifyState, showNotifyState);
    });
  }
})();
