// Staff console pages. The Content-Security-Policy allows no inline handlers, so behaviour
// lives here: a <select data-autosubmit> sends its form as soon as it changes.
document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
  select.addEventListener("change", function () { select.form.submit(); });
});

// An announcement's delivery: poll its counts (JSON, no personal data) until it is done.
document.querySelectorAll("[data-progress-url]").forEach(function (box) {
  function show(name, value) {
    var field = box.querySelector('[data-field="' + name + '"]');
    if (field) { field.textContent = value; }
  }
  function finish(progress) {
    if (progress.done) { return box.dataset.done; }
    if (!progress.finish_at) { return box.dataset.unknown; }
    return new Date(progress.finish_at).toLocaleTimeString(document.documentElement.lang || "id", {
      timeZone: box.dataset.timezone, hour: "2-digit", minute: "2-digit", second: "2-digit"
    });
  }
  function update() {
    fetch(box.dataset.progressUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (progress) {
        if (!progress) { return; }
        ["sent", "failed", "remaining", "recipients", "per_second"].forEach(function (name) {
          show(name, progress[name]);
        });
        show("finish", finish(progress));
        var bar = box.querySelector("progress");
        if (bar) { bar.max = progress.recipients || 1; bar.value = progress.sent + progress.failed; }
        if (!progress.done) { window.setTimeout(update, 2000); }
      })
      .catch(function () { window.setTimeout(update, 10000); });
  }
  update();
});
