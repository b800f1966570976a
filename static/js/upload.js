/* Upload page: drag-and-drop or picker, a list of chosen files with remove buttons, checks in the
   page (type, size, count, the same file twice), resumable uploads (tus) with a progress bar per file
   and one for all that can be cancelled, and the server's refusal next to the form, with the refused
   file marked in the list. */
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
        forget(file, true); // what was sent of it goes from the server too
        changed();
      });
      item.append(name, size, remove);
      if (request) {
        const bar = document.createElement("progress");
        bar.className = "file-progress";
        bar.max = 100;
        bar.value = 0;
        bar.setAttribute("aria-label", "Sent of " + file.name);
        item.append(bar);
      }
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

  /* Every file is a resumable upload (tus, /api/uploads/): a dropped connection is retried from the
     server's offset, and a reload that picks the same file again resumes it (tus-js-client keeps its
     address in localStorage). Once all are in, one JSON POST makes the job of them. */
  const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000];
  const CHUNK_BYTES = 8 * 1024 * 1024;

  function showProgress() {
    let sent = 0;
    let total = 0;
    request.files.forEach(function (entry) { sent += entry.sent; total += entry.file.size; });
    const value = total ? Math.floor((100 * sent) / total) : 0;
    progress.value = value;
    percent.textContent = value + "%";
    list.querySelectorAll("progress.file-progress").forEach(function (bar, index) {
      const entry = request.files[index];
      if (entry) bar.value = Math.floor((100 * entry.sent) / entry.file.size);
    });
  }

  function statusOf(error) {
    return error && error.originalResponse ? error.originalResponse.getStatus() : 0;
  }

  function detailOf(error) {
    try { return JSON.parse(error.originalResponse.getBody()).detail || ""; } catch (err) { return ""; }
  }

  function tusHeaders() {
    return { "X-CSRFToken": vj.csrfToken(), Accept: "application/json" };
  }

  /* The uploads this browser keeps for `file` (finished or not) are forgotten here, and with `terminate`
     removed from the server too (their room is given back at once, not at their expiry). */
  function forget(file, terminate) {
    const finder = new window.tus.Upload(file, { endpoint: form.dataset.uploadsUrl, headers: tusHeaders() });
    return finder.findPreviousUploads().then(function (previous) {
      return Promise.all(previous.map(function (found) {
        const gone = terminate
          ? window.tus.Upload.terminate(found.uploadUrl, { headers: tusHeaders() }).catch(function () {})
          : Promise.resolve();
        return gone.then(function () { return finder.options.urlStorage.removeUpload(found.urlStorageKey); });
      }));
    }).catch(function () {});
  }

  function sendFile(entry) {
    return new Promise(function (resolve, reject) {
      const upload = new window.tus.Upload(entry.file, {
        endpoint: form.dataset.uploadsUrl,
        headers: tusHeaders(),
        metadata: { filename: entry.file.name, filetype: entry.file.type || "video/mp4" },
        retryDelays: RETRY_DELAYS,
        // In parts: a part the network cut off is sent again from the server's offset, not the whole file.
        chunkSize: parseInt(form.dataset.chunkBytes, 10) || CHUNK_BYTES,
        // Kept until the job is made (forget()): sending the form again, or after a reload, reuses a
        // finished upload at once (HEAD says it is whole) instead of sending it again.
        removeFingerprintOnSuccess: false,
        // A dropped connection (no answer), a busy upload (423), too many at once (429) or a server error:
        // try again from HEAD's offset.
        onShouldRetry: function (error) {
          const status = statusOf(error);
          const again = status === 0 || status === 409 || status === 423 || status === 429 || status >= 500;
          if (again) entry.retries += 1;
          return again;
        },
        onProgress: function (sent) { entry.sent = sent; showProgress(); },
        onSuccess: function () { resolve(upload.url.replace(/\/+$/, "").split("/").pop()); },
        onError: reject,
      });
      entry.upload = upload;
      upload.findPreviousUploads().then(function (previous) {
        if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
        if (request && request.files.indexOf(entry) !== -1) upload.start();
      });
    });
  }

  /* The form's choices, read before its controls are disabled (a disabled control is left out of FormData). */
  function choices() {
    const data = new FormData(form);
    const body = { formats: data.getAll("formats") };
    data.forEach(function (value, key) {
      if (key !== "formats" && key !== "videos" && key !== "csrfmiddlewaretoken") body[key] = value;
    });
    return body;
  }

  async function uploadAll(current) {
    const ids = [];
    for (const entry of current.files) { // one at a time: each file's bar fills in turn
      ids.push(await sendFile(entry));
      if (request !== current) return;
    }
    // The server now checks the files and may create the job: a cancel could no longer promise otherwise.
    cancelButton.disabled = true;
    percent.textContent = "100%, checking the files…";
    const response = await fetch(form.dataset.apiUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": vj.csrfToken() },
      body: JSON.stringify(Object.assign({ uploads: ids }, current.choices)),
    });
    let body = {};
    try { body = await response.json(); } catch (err) { body = {}; }
    if (response.status === 201 && body.id) {
      await Promise.all(current.files.map(function (entry) { return forget(entry.file, false); }));
      window.removeEventListener("beforeunload", confirmLeaving);
      window.location.assign(new URL(body.page_url).pathname); // same origin, whatever host the API saw
      return;
    }
    if (body.file) refused = { name: body.file, message: body.detail || "" };
    // The file at fault goes from the server; the others stay there, reused when the form is sent again.
    current.files.forEach(function (entry) { if (refused && entry.file.name === refused.name) forget(entry.file, true); });
    finish(body.detail || "The job could not be made (the server answered " + response.status + ").");
  }

  cancelButton.addEventListener("click", function () {
    const current = request;
    if (!current) return;
    current.files.forEach(function (entry) {
      const stopped = entry.upload ? entry.upload.abort(false) : Promise.resolve();
      stopped.then(function () { return forget(entry.file, true); });
    });
    finish("Upload cancelled: no job was created.");
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (request !== null) return;
    if (!chosen.length) { showError("Choose at least one MP4 or MOV file."); return; }
    const current = {
      files: chosen.map(function (file) { return { file: file, sent: 0, upload: null, retries: 0 }; }),
      choices: choices(),
    };
    request = current;
    refused = null;
    showError("");
    setUploading(true);
    showProgress();
    window.addEventListener("beforeunload", confirmLeaving);
    uploadAll(current).catch(function (error) {
      if (request !== current) return; // cancelled meanwhile
      current.files.forEach(function (entry) { if (entry.upload) entry.upload.abort(false); });
      const detail = detailOf(error);
      finish(detail ? "The upload was refused: " + detail : "The upload failed: the server could not be reached.");
    });
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

  /* Read by the browser tests (tests/e2e/test_browser.py): the uploads under way, if any. */
  vj.testHooks = Object.assign(vj.testHooks || {}, { uploadRequest: function () { return request; } });
})();
