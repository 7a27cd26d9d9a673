// Staff console pages. The Content-Security-Policy allows no inline handlers, so behaviour
// lives here: a <select data-autosubmit> sends its form as soon as it changes.
document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
  select.addEventListener("change", function () { select.form.submit(); });
});
