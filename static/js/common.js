/* Shared by the pages: CSRF token, an adaptive poller and the cancel flow. No framework. */
(function () {
  "use strict";

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  /* Calls `tick` (async, resolves to false to stop) after `start` ms, backing off by `factor`
     up to `max`; pauses while the tab is hidden and resumes when it is visible again. */
  function adaptivePoll(tick, options) {
    const opts = Object.assign({ start: 2000, max: 10000, factor: 1.5 }, options || {});
    let delay = opts.start;
    let timer = null;
    let stopped = false;
    let running = false;

    function schedule() {
      if (stopped || timer !== null || running || document.hidden) return;
      timer = window.setTimeout(run, delay);
    }
    async function run() {
      timer = null;
      if (stopped || document.hidden) return;
      running = true;
      let keepGoing = true;
      try {
        keepGoing = await tick();
      } catch (err) {
        if (err instanceof PageGone) {
          showGone(err.kind);
          keepGoing = false; // nothing more to fetch: say so once, and stop
        } else {
          keepGoing = true; // a failed poll is retried after the next delay
        }
      } finally {
        running = false;
      }
      if (keepGoing === false) {
        stop();
        return;
      }
      delay = Math.min(opts.max, delay * opts.factor);
      schedule();
    }
    function stop() {
      stopped = true;
      if (timer !== null) window.clearTimeout(timer);
      timer = null;
    }
    function now() {
      /* Poll at once and restart the back-off, e.g. after the user acted. */
      if (stopped) return;
      if (timer !== null) window.clearTimeout(timer);
      timer = null;
      delay = opts.start;
      run();
    }
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        if (timer !== null) window.clearTimeout(timer);
        timer = null;
      } else {
        schedule();
      }
    });
    schedule();
    return {
      stop: stop,
      now: now,
      get stopped() { return stopped; },
      get pending() { return timer !== null; },
    };
  }

  const CONFIRM_CANCEL = "Cancel this job?\n\nThe encoding stops and unfinished variations are discarded. " +
    "Finished variations are kept and stay downloadable.";

  /* The cancel flow for a .cancel-form: confirm, "Cancelling..." while the request runs,
     then onDone(); on failure an error next to the form and the button back as it was. */
  async function cancelWithForm(form, errorElement, onDone) {
    const button = form.querySelector("button[type=submit]");
    if (!window.confirm(CONFIRM_CANCEL)) return;
    const label = button.textContent;
    button.disabled = true;
    button.textContent = "Cancelling...";
    form.dataset.busy = "true";
    errorElement.hidden = true;
    try {
      const response = await window.fetch(form.dataset.apiUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      });
      if (!response.ok && response.status !== 409) {
        let detail = "";
        try { detail = (await response.json()).detail || ""; } catch (err) { detail = ""; }
        throw new Error(detail || "the server answered " + response.status + ".");
      }
      delete form.dataset.busy;
      await onDone();
    } catch (err) {
      delete form.dataset.busy;
      errorElement.textContent = "Could not cancel the job: " + (err.message || "network error.");
      errorElement.hidden = false;
      button.disabled = false;
      button.textContent = label;
    }
  }

  /* Thrown by fetchHtml: the session ended (401), or the job is gone (404, deleted or expired). */
  class PageGone extends Error {
    constructor(kind) { super(kind); this.kind = kind; }
  }

  async function fetchHtml(url) {
    const response = await window.fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (response.status === 401) throw new PageGone("logged-out");
    if (response.status === 404) throw new PageGone("gone");
    if (!response.ok) throw new Error("status " + response.status);
    const template = document.createElement("template");
    template.innerHTML = (await response.text()).trim();
    return template.content.firstElementChild;
  }

  /* The page's times: the expiry countdowns, and each <time class="local"> shown in the viewer's own time
     zone (the browser's), with the server's UTC text kept as its tooltip. */
  function updateTimes(root) {
    (root || document).querySelectorAll("time.local[datetime]").forEach(function (el) {
      if (!el.dataset.utc) el.dataset.utc = el.textContent.trim();
      el.title = el.dataset.utc;
      el.textContent = new Date(el.dateTime).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    });
    (root || document).querySelectorAll("time.local-title[datetime]").forEach(function (el) {
      el.title = new Date(el.dateTime).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) +
        " (" + new Date(el.dateTime).toISOString().slice(0, 16).replace("T", " ") + " UTC)";
    });
    (root || document).querySelectorAll(".countdown[data-expires-at]").forEach(function (el) {
      /* The same words as the server's `expiry` filter (jobs/templatetags/jobs_extras.py). */
      const seconds = Math.floor((Date.parse(el.dataset.expiresAt) - Date.now()) / 1000);
      if (seconds <= 0) { el.textContent = "expired"; return; }
      const hours = Math.floor(seconds / 3600);
      const minutes = Math.floor((seconds % 3600) / 60);
      el.textContent = "expires in " + (hours ? hours + " h " + minutes + " min" : Math.max(minutes, 1) + " min");
    });
  }

  /* One notice at the top of the page, with the link that helps; the links come from the server. */
  function showGone(kind) {
    if (document.getElementById("gone-notice")) return;
    const body = document.body.dataset;
    const notice = document.createElement("p");
    notice.id = "gone-notice";
    notice.className = "error";
    notice.setAttribute("role", "alert");
    const link = document.createElement("a");
    if (kind === "logged-out") {
      notice.append("You have been logged out. ");
      link.href = body.loginUrl + "?next=" + encodeURIComponent(window.location.pathname);
      link.textContent = "Log in again";
      const nav = document.querySelector(".topbar nav");
      if (nav) nav.hidden = true;
    } else {
      notice.append("This job no longer exists: it was deleted, or its results expired. ");
      link.href = body.jobsUrl;
      link.textContent = "Back to all jobs";
    }
    notice.append(link);
    document.getElementById("main").prepend(notice);
  }

  window.videojobs = {
    csrfToken: csrfToken,
    adaptivePoll: adaptivePoll,
    cancelWithForm: cancelWithForm,
    fetchHtml: fetchHtml,
    PageGone: PageGone,
    showGone: showGone,
    updateTimes: updateTimes,
  };
})();
