/* Upload page: drag-and-drop or picker, a list of chosen files with remove buttons, checks in the
   page (type, size, count), an upload progress bar, and the server's message next to the form. */
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
  const maxFiles = parseInt(form.dataset.maxFiles, 10);
  const maxBytes = parseInt(form.dataset.maxBytes, 10);
  const ACCEPTED = /\.(mp4|mov)$/i;
  let chosen = [];

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
      remove.className = "button small";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", "Remove " + file.name);
      remove.addEventListener("click", function () {
        chosen.splice(index, 1);
        render();
      });
      item.append(name, size, remove);
      list.append(item);
    });
  }

  function add(files) {
    const refused = [];
    Array.from(files).forEach(function (file) {
      if (!ACCEPTED.test(file.name)) refused.push(file.name + ": only MP4 and MOV files are accepted");
      else if (file.size === 0) refused.push(file.name + ": the file is empty");
      else if (file.size > maxBytes) refused.push(file.name + ": larger than the limit of " + formatSize(maxBytes));
      else if (chosen.length >= maxFiles) refused.push(file.name + ": at most " + maxFiles + " files per job");
      else chosen.push(file);
    });
    showError(refused.join("\n"));
    render();
  }

  input.addEventListener("change", function () {
    add(input.files);
    input.value = "";
  });

  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      event.preventDefault();
      dropzone.classList.add("dragging");
    });
  });
  ["dragleave", "dragend", "drop"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      event.preventDefault();
      dropzone.classList.remove("dragging");
    });
  });
  dropzone.addEventListener("drop", function (event) {
    if (event.dataTransfer && event.dataTransfer.files) add(event.dataTransfer.files);
  });

  function finish(message) {
    showError(message);
    button.disabled = false;
    progressWrap.hidden = true;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!chosen.length) { showError("Choose at least one MP4 or MOV file."); return; }
    const data = new FormData();
    chosen.forEach(function (file) { data.append("videos", file, file.name); });
    data.append("variations", document.getElementById("id_variations").value);

    const request = new XMLHttpRequest();
    request.open("POST", form.dataset.apiUrl);
    request.setRequestHeader("X-CSRFToken", vj.csrfToken());
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      const value = Math.round((100 * e.loaded) / e.total);
      progress.value = value;
      percent.textContent = value + "%";
    });
    request.addEventListener("load", function () {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (err) { body = {}; }
      if (request.status === 201 && body.id) {
        percent.textContent = "100%";
        window.location.assign(new URL(body.page_url).pathname); // same origin, whatever host the API saw
        return;
      }
      finish(body.detail || "The upload failed (the server answered " + request.status + ").");
    });
    request.addEventListener("error", function () { finish("The upload failed: the server could not be reached."); });

    showError("");
    button.disabled = true;
    progress.value = 0;
    percent.textContent = "0%";
    progressWrap.hidden = false;
    request.send(data);
  });
})();
