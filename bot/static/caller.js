// The agent's caller form: every field is checked by the server with the chat's own steps as
// the agent types (POST /agent/form/check), the fee and the document checklist follow, and
// submitting registers the caller, then the same page books a window and shows the billing
// code to read out. Keyboard first: Enter submits, errors move the focus to the first one.
(function () {
  const form = document.getElementById("caller-form");
  if (!form) { return; }
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const touched = new Set();
  let registered = null;
  let timer = null;

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().then(function (data) { return { status: response.status, data: data }; });
    });
  }

  function fields() {
    const values = {};
    form.querySelectorAll(".field").forEach(function (box) {
      values[box.dataset.field] = box.querySelector("input, select").value;
    });
    return values;
  }

  function show(data, all) {
    form.querySelectorAll(".field").forEach(function (box) {
      const key = box.dataset.field;
      if (key in (data.applies || {})) { box.hidden = !data.applies[key]; }
      const message = (data.errors || {})[key] || "";
      const visible = all || touched.has(key) ? message : "";
      box.querySelector("[data-error-for]").textContent = visible;
      box.classList.toggle("bad", visible !== "");
      box.querySelector("[data-hint-for]").textContent = (data.hints || {})[key] || "";
    });
    const consent = form.querySelector('[data-error-for="consent"]');
    consent.textContent = all ? (data.errors || {}).consent || "" : "";
    const fee = form.querySelector('[data-testid="fee"]');
    if (data.fee && data.fee.length) {
      fee.replaceChildren.apply(fee, data.fee.map(function (line) {
        const p = document.createElement("p"); p.textContent = line; return p;
      }));
    }
    const list = form.querySelector('[data-testid="checklist"]');
    list.replaceChildren.apply(list, (data.checklist || []).map(function (label) {
      const li = document.createElement("li"); li.textContent = label; return li;
    }));
  }

  function check() {
    if (registered) { return; }  // submitted: its NIK is now "already registered"
    post(form.dataset.checkUrl, { fields: fields() }).then(function (answer) {
      if (answer.status === 200 && !registered) { show(answer.data, false); }
    });
  }

  function later() { clearTimeout(timer); timer = setTimeout(check, 250); }
  check();  // hide the questions that do not apply yet (old passport, supporting document)

  // The question a control answers (the consent box answers none).
  function fieldOf(target) {
    const box = target.closest(".field");
    return box ? box.dataset.field : null;
  }
  form.addEventListener("input", function (event) {
    if (fieldOf(event.target)) { later(); }
  });
  form.addEventListener("change", function (event) {
    const key = fieldOf(event.target);
    if (key) { touched.add(key); check(); }
  });
  form.addEventListener("focusout", function (event) {
    const key = fieldOf(event.target);
    if (key && event.target.value) { touched.add(key); check(); }
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (registered) { return; }
    const consent = form.querySelector('input[name="consent"]').checked;
    post(form.dataset.submitUrl, { fields: fields(), consent: consent }).then(function (answer) {
      if (answer.status !== 200) {
        show(answer.data || {}, true);
        const first = form.querySelector(".field.bad input, .field.bad select");
        if (first) { first.focus(); } else if (!consent) { form.querySelector('input[name="consent"]').focus(); }
        return;
      }
      registered = answer.data.reg_number;
      clearTimeout(timer);
      form.querySelectorAll("[data-error-for]").forEach(function (line) { line.textContent = ""; });
      form.querySelectorAll(".field.bad").forEach(function (box) { box.classList.remove("bad"); });
      form.querySelectorAll("input, select, button").forEach(function (input) { input.disabled = true; });
      const booking = document.getElementById("caller-booking");
      booking.hidden = false;
      booking.querySelector('[data-testid="registered"]').textContent =
        registered + " · " + answer.data.name + " · " + answer.data.total;
      document.getElementById("b-office").focus();
    });
  });

  const office = document.getElementById("b-office");
  const day = document.getElementById("b-day");
  const windowSelect = document.getElementById("b-window");
  const hold = document.getElementById("b-hold");
  const holdError = document.querySelector('[data-testid="hold-error"]');

  function fill(select, items) {
    const empty = document.createElement("option");
    empty.value = ""; empty.textContent = "—";
    select.replaceChildren(empty);
    items.forEach(function (item) {
      const option = document.createElement("option");
      option.value = item.value; option.textContent = item.label;
      select.appendChild(option);
    });
    select.disabled = items.length === 0;
  }

  office.addEventListener("change", function () {
    fill(day, []); fill(windowSelect, []); hold.disabled = true; holdError.textContent = "";
    if (!office.value) { return; }
    post(form.dataset.daysUrl, { application: registered, office: office.value }).then(function (answer) {
      document.querySelector('[data-testid="days-message"]').textContent = answer.data.message || "";
      fill(day, answer.data.days || []);
      if (!day.disabled) { day.focus(); }
    });
  });
  day.addEventListener("change", function () {
    fill(windowSelect, []); hold.disabled = true;
    if (!day.value) { return; }
    post(form.dataset.windowsUrl, { application: registered, office: office.value, day: day.value })
      .then(function (answer) { fill(windowSelect, answer.data.windows || []); windowSelect.focus(); });
  });
  windowSelect.addEventListener("change", function () {
    hold.disabled = !windowSelect.value;
    if (!hold.disabled) { hold.focus(); }
  });
  hold.addEventListener("click", function () {
    hold.disabled = true;
    post(form.dataset.holdUrl, { application: registered, slot: windowSelect.value }).then(function (answer) {
      if (answer.status !== 200) {
        holdError.textContent = answer.data.message || "";
        hold.disabled = false;
        return;
      }
      [office, day, windowSelect].forEach(function (select) { select.disabled = true; });
      const box = document.getElementById("read-out");
      const set = function (id, text) { box.querySelector('[data-testid="' + id + '"]').textContent = text; };
      set("readout-code", answer.data.code);
      set("readout-amount", answer.data.amount);
      set("readout-deadline", answer.data.deadline);
      set("readout-slot", answer.data.office + " · " + answer.data.window + " · " + answer.data.booking_code);
      set("readout-script", answer.data.script);
      box.hidden = false;
      document.getElementById("readout-send").focus();
    });
  });
  document.getElementById("readout-send").addEventListener("click", function () {
    post(form.dataset.sendUrl, { application: registered }).then(function (answer) {
      document.querySelector('[data-testid="readout-sent"]').textContent = answer.data.message || "";
    });
  });
  document.getElementById("d-send").addEventListener("click", function () {
    const channel = document.getElementById("d-channel").value;
    post(form.dataset.documentsUrl, { application: registered, channel: channel }).then(function (answer) {
      document.querySelector('[data-testid="documents-sent"]').textContent = answer.data.message || "";
    });
  });
}());
