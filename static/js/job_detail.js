/* Job detail: live status (told by the job's event stream; where that fails, polled every 2 s backing off
   to 10 s, paused while hidden, stopped at a terminal status), cancel, the variations' player and
   "Download selected", expiry countdown and an optional browser notification. */
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
    vj.updateTimes(container);
    updateSelection();
    if (!wasTerminal && isTerminal()) {
      notifyFinished(snippet);
      if (notifyBox) notifyBox.hidden = true;
    }
    return !isTerminal();
  }

  /* The job's event stream says when it changed (each `job` event, at most twice a second); the status
     snippet is then fetched as a poll would. No event within FIRST_EVENT_MS (a proxy that holds the stream
     back), or a stream that fails for good: polling takes over. */
  const FIRST_EVENT_MS = 5000;
  const hooks = (window.videojobs.testHooks = { detailPoller: null, events: null });
  let poller = null;

  function poll() {
    if (poller === null && !isTerminal()) poller = hooks.detailPoller = vj.adaptivePoll(refresh);
  }

  function listen() {
    if (!("EventSource" in window) || !container.dataset.eventsUrl) { poll(); return; }
    const source = (hooks.events = new EventSource(container.dataset.eventsUrl));
    let heard = false;
    let refreshing = Promise.resolve();
    const patience = window.setTimeout(function () { if (!heard) fallBack(); }, FIRST_EVENT_MS);
    function fallBack() {
      window.clearTimeout(patience);
      source.close();
      poll();
    }
    function update() {
      heard = true;
      refreshing = refreshing.then(refresh).catch(function (err) {
        if (err instanceof vj.PageGone) { source.close(); vj.showGone(err.kind); }
      });
    }
    source.addEventListener("job", update);
    source.addEventListener("end", function () { source.close(); update(); });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) fallBack(); // refused (e.g. 404 behind a WSGI server)
    });
  }

  if (!isTerminal()) listen();

  container.addEventListener("submit", function (event) {
    const form = event.target.closest(".cancel-form");
    if (!form) return;
    event.preventDefault();
    vj.cancelWithForm(form, errorElement, async function () {
      if (poller && !poller.stopped) poller.now(); else await refresh();
    });
  });

  /* The player: a thumbnail's link plays its variation in a panel that opens just below that thumbnail.
     The panel lives outside the polled status (placed over the page, not inside it), so a refresh never
     stops it. Escape closes it; the arrow keys step to the previous or next variation. Without this script
     the link opens the video in the browser's own player. */
  const player = document.getElementById("player");
  const video = document.getElementById("player-video");
  let playing = null; // the output id of the variation in the player

  function play(link) {
    playing = link.closest(".variation").dataset.output;
    document.getElementById("player-title").textContent = link.dataset.title;
    document.getElementById("player-download").href = link.dataset.download;
    video.src = link.href;
    const box = link.getBoundingClientRect();
    player.classList.add("floating");
    player.style.top = Math.round(box.bottom + window.scrollY + 8) + "px";
    player.hidden = false;
    player.scrollIntoView({ block: "nearest" });
    video.play().catch(function () { /* autoplay refused: the controls are there */ });
  }

  function closePlayer() {
    video.pause();
    video.removeAttribute("src");
    video.load();
    player.hidden = true;
    playing = null;
  }

  container.addEventListener("click", function (event) {
    const link = event.target.closest("a.play");
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    play(link);
  });
  document.getElementById("player-close").addEventListener("click", closePlayer);
  document.addEventListener("keydown", function (event) {
    if (player.hidden || event.target.closest("input, select, textarea")) return;
    if (event.key === "Escape") { closePlayer(); return; }
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const links = Array.from(container.querySelectorAll(".variation a.play")); // looked up now: polling swaps them
    const at = links.findIndex(function (link) { return link.closest(".variation").dataset.output === playing; });
    const next = links[at + (event.key === "ArrowRight" ? 1 : -1)];
    if (next) { event.preventDefault(); play(next); }
  });

  /* "Download selected" asks for at least one variation. */
  function updateSelection() {
    const button = container.querySelector("#download-selected-button");
    if (button) button.disabled = !container.querySelector("input[name=outputs]:checked");
  }
  container.addEventListener("change", updateSelection);
  updateSelection();

  window.setInterval(function () { vj.updateTimes(container); }, 30000);
  vj.updateTimes(container);

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
