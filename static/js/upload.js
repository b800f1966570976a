/* Upload page: drag-and-drop or picker, a list of chosen files with remove buttons, checks in the
   page (type, size, count, the same file twice), an upload progress bar that can be cancelled, and
   the server's refusal next to the form, with the refused file marked in the list. */
(function () {
  "use strict";
  const vj = window.videojobs;
  const form = document.getElementById("upload-form");
  const input = document.getElementById("id_videos");
  const dropzone = document.getElementById("dropzone");
  const list = document.getElementById("file-list");
  const errorElement = document.getElementById("upload-error");
  const progressWrap = document.getElementById("upload-progress-wrap");
  const progress = document.getElementById("upload-progress");
  const percent = document.getElementById("upload-percent");
  const button = document.getElementById("upload-button");
  const cancelButton = document.getElementById("upload-cancel");
  const maxFiles = parseInt(form.dataset.maxFiles, 10);
  const maxBytes = parseInt(form.dataset.maxBytes, 10);
  const ACCEPTED_NAME = /\.(mp4|mov)$/i;
  const ACCEPTED_TYPES = ["", "video/mp4", "video/quicktime"]; // "": the browser does not know
  let chosen = [];
  let refused = null; // {name, message}: the file the server refused, until the files change
  let request = null; // the upload under way

  function formatSize(bytes) {
    const units = ["bytes", "KB", "MB", "GB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return unit === 0 ? value + " bytes" : value.toFixed(1) + " " + units[unit];
  }

  function showError(message) {
    errorElement.textContent = message;
    errorElement.hidden = !message;
  }

  function sameFile(a, b) {
    return a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;
  }

  function render() {
    list.replaceChildren();
    chosen.forEach(function (file, index) {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.className = "file-name";
      name.textContent = file.name;
      const size = document.createElement("span");
      size.className = "meta";
      size.textContent = formatSize(file.size);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "button small remove";
      remove.textContent = "Remove";
      remove.disabled = request !== null;
      remove.setAttribute("aria-label", "Remove " + file.name);
      remove.addEventListener("click", function () {
        chosen.splice(index, 1);
        changed();
      });
      item.append(name, size, remove);
      if (refused && refused.name === file.name) {
        item.classList.add("refused");
        const why = document.createElement("span");
        why.className = "error refused-reason";
        why.textContent = "Refused by the server: " + refused.message;
        item.append(why);
      }
      list.append(item);
    });
    if (vj.showOutputCount) vj.showOutputCount();
  }

  /* The files changed: an earlier refusal by the server no longer applies. */
  function changed(message) {
    refused = null;
    showError(message || "");
    render();
  }

  function add(files) {
    const problems = [];
    Array.from(files).forEach(function (file) {
      if (!ACCEPTED_NAME.test(file.name) || ACCEPTED_TYPES.indexOf(file.type) === -1) {
        problems.push(file.name + ": only MP4 and MOV files are accepted");
      } else if (file.size === 0) problems.push(file.name + ": the file is empty");
      else if (file.size > maxBytes) problems.push(file.name + ": larger than the limit of " + formatSize(maxBytes));
      else if (chosen.some(function (other) { return sameFile(other, file); })) {
        problems.push(file.name + ": this file is already in the list");
      } else if (chosen.length >= maxFiles) problems.push(file.name + ": at most " + maxFiles + " files per job");
      else chosen.push(file);
    });
    changed(problems.join("\n"));
  }

  input.addEventListener("change", function () {
    add(input.files);
    input.value = "";
  });

  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      event.preventDefault();
      if (request === null) dropzone.classList.add("dragging");
    });
  });
  ["dragleave", "dragend", "drop"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      event.preventDefault();
      dropzone.classList.remove("dragging");
    });
  });
  dropzone.addEventListener("drop", function (event) {
    if (request === null && event.dataTransfer && event.dataTransfer.files) add(event.dataTransfer.files);
  });

  /* While an upload runs only "Cancel upload" acts; leaving the page asks first. */
  function setUploading(uploading) {
    form.querySelectorAll("input, button[type=submit]").forEach(function (control) { control.disabled = uploading; });
    cancelButton.disabled = false;
    dropzone.classList.toggle("disabled", uploading);
    cancelButton.hidden = !uploading;
    progressWrap.hidden = !uploading;
    render();
  }

  function confirmLeaving(event) {
    event.preventDefault();
    event.returnValue = ""; // older browsers need it to ask
  }

  function finish(message) {
    request = null;
    window.removeEventListener("beforeunload", confirmLeaving);
    setUploading(false);
    showError(message);
  }

  cancelButton.addEventListener("click", function () {
    if (request) request.abort();
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (request !== null) return;
    if (!chosen.length) { showError("Choose at least one MP4 or MOV file."); return; }
    const data = new FormData(form); // every choice as the form has it; the files as chosen here
    data.delete("videos");
    data.delete("csrfmiddlewaretoken");
    chosen.forEach(function (file) { data.append("videos", file, file.name); });

    request = new XMLHttpRequest();
    const sent = request;
    sent.open("POST", form.dataset.apiUrl);
    sent.setRequestHeader("X-CSRFToken", vj.csrfToken());
    sent.setRequestHeader("Accept", "application/json");
    sent.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      const value = Math.round((100 * e.loaded) / e.total);
      progress.value = value;
      percent.textContent = value + "%";
    });
    sent.upload.addEventListener("load", function () {
      /* Every byte is sent: the server is checking the files and may be creating the job already, so a
         cancel could no longer promise that nothing was created. */
      cancelButton.disabled = true;
      percent.textContent = "100%, checking the files…";
    });
    sent.addEventListener("load", function () {
      let body = {};
      try { body = JSON.parse(sent.responseText); } catch (err) { body = {}; }
      if (sent.status === 201 && body.id) {
        percent.textContent = "100%";
        window.removeEventListener("beforeunload", confirmLeaving);
        window.location.assign(new URL(body.page_url).pathname); // same origin, whatever host the API saw
        return;
      }
      if (body.file) refused = { name: body.file, message: body.detail || "" };
      finish(body.detail || "The upload failed (the server answered " + sent.status + ").");
    });
    sent.addEventListener("error", function () { finish("The upload failed: the server could not be reached."); });
    sent.addEventListener("abort", function () { finish("Upload cancelled: no job was created."); });

    refused = null;
    showError("");
    progress.value = 0;
    percent.textContent = "0%";
    setUploading(true);
    window.addEventListener("beforeunload", confirmLeaving);
    sent.send(data);
  });

  /* "3 videos × 5 variations × 3 formats = 45 videos", against the limit per job. */
  const count = document.getElementById("output-count");
  function showCount() {
    const videos = Math.max(chosen.length, 1);
    const variations = parseInt(document.getElementById("id_variations").value, 10) || 0;
    const formats = form.querySelectorAll('input[name="formats"]:checked').length || 1;
    const total = videos * variations * formats;
    const most = parseInt(count.dataset.maxOutputs, 10);
    const plural = function (n, word) { return n + " " + word + (n === 1 ? "" : "s"); };
    count.textContent = plural(videos, "video") + " × " + plural(variations, "variation") + " × " +
      plural(formats, "format") + " = " + plural(total, "video") + " (at most " + most + " per job)";
    count.classList.toggle("error", total > most);
  }
  form.addEventListener("input", showCount);
  form.addEventListener("change", showCount);
  vj.showOutputCount = showCount;
  showCount();

  /* Read by the browser tests (tests/e2e/test_browser.py): the upload under way, if any. */
  vj.testHooks = Object.assign(vj.testHooks || {}, { uploadRequest: function () { return request; } });
})();
