/* Job list: inline cancel, and live cards for queued/processing jobs (same back-off as the detail page). */
(function () {
  "use strict";
  const vj = window.videojobs;
  const list = document.getElementById("job-cards");
  if (!list) return;

  function activeCards() {
    return Array.from(list.querySelectorAll(".job-card")).filter(function (card) {
      return card.dataset.terminal !== "true";
    });
  }

  async function refreshCard(card) {
    let fresh;
    try {
      fresh = await vj.fetchHtml(card.dataset.cardUrl);
    } catch (err) {
      if (err instanceof vj.PageGone && err.kind === "gone") { card.remove(); return null; } // deleted meanwhile
      throw err;
    }
    card.replaceWith(fresh);
    vj.updateTimes(fresh);
    return fresh;
  }

  async function refreshActive() {
    const cards = activeCards().filter(function (card) {
      const form = card.querySelector(".cancel-form");
      const error = card.querySelector(".cancel-error");
      return !(form && form.dataset.busy) && (!error || error.hidden);
    });
    await Promise.all(cards.map(refreshCard));
    return activeCards().length > 0;
  }

  if (activeCards().length) vj.adaptivePoll(refreshActive);
  window.setInterval(function () { vj.updateTimes(list); }, 30000);
  vj.updateTimes(list);

  list.addEventListener("submit", function (event) {
    const form = event.target.closest(".cancel-form");
    if (!form) return;
    event.preventDefault();
    const card = form.closest(".job-card");
    vj.cancelWithForm(form, card.querySelector(".cancel-error"), function () { return refreshCard(card); });
  });
})();
