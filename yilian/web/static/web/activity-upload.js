/* The activity upload with progress: the form is sent by XMLHttpRequest so that the upload's
   progress shows; once the file is up, the importer's progress is polled about every second
   until the answer comes, then the batch page opens. Without this script the form posts as usual
   and the answer redirects to the batch. Texts come from the form's data-text-* attributes
   (translated by the server). */
(function () {
  "use strict";

  function setBar(bar, fraction) {
    var pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    bar.setAttribute("aria-valuenow", String(pct));
    bar.querySelector(".progress-bar").style.width = pct + "%";
    return pct;
  }

  function number(n) {
    return Number(n).toLocaleString();
  }

  function init(form) {
    if (!form || form.dataset.ready === "1" || !window.FormData || !window.XMLHttpRequest) {
      return;
    }
    form.dataset.ready = "1";
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      send(form);
    });
  }

  function send(form) {
    var card = form.closest("#upload-card");
    var box = form.querySelector("#upload-progress");
    var uploadBar = form.querySelector("#upload-bar");
    var uploadLabel = form.querySelector("#upload-label");
    var uploadPercent = form.querySelector("#upload-percent");
    var processBar = form.querySelector("#process-bar");
    var processLabel = form.querySelector("#process-label");
    var processCount = form.querySelector("#process-count");
    var failed = form.querySelector("#upload-failed");
    var submit = form.querySelector("#upload-submit");
    var input = form.querySelector("input[type=file]");
    var name = input && input.files.length ? input.files[0].name : "";
    var text = form.dataset;
    var polling = null;

    box.hidden = false;
    failed.hidden = true;
    submit.disabled = true;
    setBar(uploadBar, 0);
    setBar(processBar, 0);
    uploadLabel.textContent = text.textUploading;
    processLabel.textContent = text.textWaiting;
    processCount.textContent = "";
    box.dataset.phase = "uploading";

    function poll() {
      var url = form.dataset.progressUrl + "?name=" + encodeURIComponent(name);
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : {}; })
        .then(function (data) {
          if (polling === null) return;
          if (data.stage) {
            processLabel.textContent = data.stage_label || data.stage;
            if (data.total) {
              setBar(processBar, data.done / data.total);
              processCount.textContent = number(data.done) + " / " + number(data.total);
            }
          }
          polling = window.setTimeout(poll, 1000);
        })
        .catch(function () {
          if (polling !== null) polling = window.setTimeout(poll, 1000);
        });
    }

    function stopPolling() {
      if (polling !== null) window.clearTimeout(polling);
      polling = null;
    }

    function fail(message) {
      stopPolling();
      box.dataset.phase = "failed";
      failed.textContent = message;
      failed.hidden = false;
      submit.disabled = false;
    }

    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    // The token in a header spares the CSRF check reading the whole body before the view can
    // refuse a file that is too large.
    var token = form.querySelector("input[name=csrfmiddlewaretoken]");
    if (token) xhr.setRequestHeader("X-CSRFToken", token.value);
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) {
        uploadPercent.textContent = setBar(uploadBar, event.loaded / event.total) + " %";
      }
    });
    xhr.upload.addEventListener("load", function () {
      uploadPercent.textContent = setBar(uploadBar, 1) + " %";
      uploadLabel.textContent = text.textUploaded;
      box.dataset.phase = "processing";
      polling = window.setTimeout(poll, 300);
    });
    xhr.addEventListener("load", function () {
      stopPolling();
      if (xhr.status === 200) {
        var data = {};
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = {}; }
        if (data.url) {
          setBar(processBar, 1);
          processLabel.textContent = text.textDone;
          box.dataset.phase = "done";
          window.location.assign(data.url);
          return;
        }
      }
      if ((xhr.status === 400 || xhr.status === 413) && xhr.responseText.indexOf('id="upload-card"') !== -1) {
        // The form again, with the server's messages on its fields (the file must be chosen again).
        card.outerHTML = xhr.responseText;
        init(document.getElementById("upload-form"));
        return;
      }
      fail(xhr.status === 403 ? text.textForbidden : text.textFailed + " (" + xhr.status + ")");
    });
    xhr.addEventListener("error", function () { fail(text.textFailed); });
    xhr.send(new FormData(form));
  }

  document.addEventListener("DOMContentLoaded", function () {
    init(document.getElementById("upload-form"));
  });
})();
