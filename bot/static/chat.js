// The chat panel: the web chat at / and the agent console's caller panel share it.
// The transcript is kept in sessionStorage so a reload shows it again; the conversation
// itself lives on the server, so the next answer continues where it was.
(function () {
  "use strict";
  const token = document.querySelector('meta[name="csrf-token"]').content;

  function setUp(panel) {
    const log = panel.querySelector(".log");
    const form = panel.querySelector(".composer");
    const input = panel.querySelector(".text");
    const file = panel.querySelector(".file");
    const attach = panel.querySelector(".attach");
    const locate = panel.querySelector(".locate");
    const sendUrl = panel.dataset.sendUrl;
    const pollUrl = panel.dataset.pollUrl;
    const storeKey = panel.dataset.store;
    let transcript = [];
    try { transcript = JSON.parse(sessionStorage.getItem(storeKey) || "[]"); } catch (e) { transcript = []; }
    let busy = false;

    function save() { sessionStorage.setItem(storeKey, JSON.stringify(transcript.slice(-200))); }

    // A one-tap copy of a code (the billing code): the Clipboard API where the page is a
    // secure context, else a selected hidden field and the copy command.
    function copyText(value) {
      if (navigator.clipboard && window.isSecureContext) {
        return navigator.clipboard.writeText(value);
      }
      const field = document.createElement("textarea");
      field.value = value; field.setAttribute("readonly", ""); field.style.position = "fixed"; field.style.opacity = "0";
      document.body.appendChild(field); field.select();
      try { document.execCommand("copy"); } finally { document.body.removeChild(field); }
      return Promise.resolve();
    }

    function render(entry, live) {
      const item = document.createElement("li");
      item.className = entry.from === "user" ? "user" : "bot";
      const text = document.createElement("p");
      text.textContent = entry.text;
      item.appendChild(text);
      if (entry.copy) {
        const copy = document.createElement("button");
        copy.type = "button"; copy.className = "copy"; copy.textContent = entry.copy_label || "Salin";
        copy.dataset.copy = entry.copy;
        copy.addEventListener("click", function () {
          copyText(entry.copy).then(function () { copy.textContent = entry.copied_label || "OK"; });
        });
        item.appendChild(copy);
      }
      if (entry.download) {
        const link = document.createElement("a");
        link.href = entry.download; link.className = "download"; link.setAttribute("download", "");
        link.textContent = entry.download_label || "JSON";
        item.appendChild(link);
      }
      if (entry.qr) {
        const image = document.createElement("img");
        image.src = entry.qr; image.alt = "QR"; image.className = "qr";
        item.appendChild(image);
      }
      if (live && entry.choices && entry.choices.length) {
        const row = document.createElement("div");
        row.className = "choices";
        entry.choices.forEach(function (pair) {
          const button = document.createElement("button");
          button.type = "button"; button.textContent = pair[1]; button.className = "choice";
          button.addEventListener("click", function () { send({ choice: pair[0] }, pair[1]); });
          row.appendChild(button);
        });
        item.appendChild(row);
      }
      log.appendChild(item);
    }

    // The question the conversation waits on: the latest bot message that asks something,
    // unless the user answered after it. A notice pushed later (payment confirmed, an
    // announcement) asks nothing, so the question keeps its buttons.
    function latestQuestion() {
      for (let index = transcript.length - 1; index >= 0; index--) {
        const entry = transcript[index];
        if (entry.from === "user") return -1;
        if (entry.expects && entry.expects !== "none") return index;
      }
      return -1;
    }

    function redraw(focus) {
      log.innerHTML = "";
      const asking = latestQuestion();
      transcript.forEach(function (entry, index) { render(entry, index === asking); });
      const question = transcript[asking] || {};
      attach.hidden = question.expects !== "photo";
      locate.hidden = !question.offers_location || !navigator.geolocation;
      const target = focus === undefined ? null : log.children[focus];
      if (target) {
        // A code to keep (the billing code) stays in view; the question follows below it.
        log.scrollTop = target.offsetTop - log.offsetTop;
        if (target.scrollIntoView) target.scrollIntoView({ block: "start" });
        return;
      }
      log.scrollTop = log.scrollHeight;
      const end = log.lastElementChild;
      if (end && end.scrollIntoView) end.scrollIntoView({ block: "nearest" });
    }

    function receive(messages) {
      let focus;
      messages.forEach(function (m) {
        // The person's data was erased: the tab's copy of the conversation goes too.
        if (m.forget) { transcript = []; focus = undefined; }
        if (m.copy && focus === undefined) focus = transcript.length;
        transcript.push({ from: "bot", text: m.text, choices: m.choices, expects: m.expects, qr: m.qr,
          offers_location: m.offers_location, copy: m.copy, copy_label: m.copy_label, copied_label: m.copied_label,
          download: m.download, download_label: m.download_label });
      });
      save(); redraw(focus);
    }

    // One language per person: when the conversation's language (chosen with /bahasa) is not
    // the page's, the page follows it (the transcript survives the reload).
    function followLanguage(locale) {
      if (locale && locale !== document.documentElement.lang) {
        window.location.replace(window.location.pathname + "?lang=" + encodeURIComponent(locale));
      }
    }

    function post(body, isFile) {
      const options = { method: "POST", headers: { "X-CSRFToken": token }, credentials: "same-origin" };
      if (isFile) { options.body = body; } else {
        options.headers["Content-Type"] = "application/json"; options.body = JSON.stringify(body);
      }
      return fetch(sendUrl, options).then(function (response) {
        return response.json().catch(function () { return { messages: [] }; }).then(function (data) {
          if (!response.ok && !(data.messages && data.messages.length)) {
            data.messages = [{ text: panel.dataset.failed || "Maaf, terjadi gangguan. Silakan kirim lagi.", choices: [], expects: "none" }];
          }
          return data;
        });
      });
    }

    function send(body, shown, isFile) {
      if (busy) return;
      busy = true;
      if (shown) { transcript.push({ from: "user", text: shown }); save(); redraw(); }
      post(body, isFile).then(function (data) { receive(data.messages || []); followLanguage(data.locale); })
        .catch(function () { receive([{ text: "Koneksi terputus. Silakan kirim lagi.", choices: [], expects: "none" }]); })
        .finally(function () { busy = false; input.focus(); });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      send({ text: text }, text);
    });
    attach.addEventListener("click", function () { file.click(); });
    file.addEventListener("change", function () {
      if (!file.files.length) return;
      const data = new FormData();
      data.append("file", file.files[0]);
      send(data, "📎 " + file.files[0].name, true);
      file.value = "";
    });
    locate.addEventListener("click", function () {
      navigator.geolocation.getCurrentPosition(function (where) {
        send({ location: { latitude: where.coords.latitude, longitude: where.coords.longitude } }, "📍");
      });
    });

    redraw();
    if (panel.dataset.start) {
      // A group's link: start with its code once, then drop it from the address bar so a
      // reload does not send it again.
      send({ text: panel.dataset.start }, panel.dataset.start);
      history.replaceState(null, "", location.pathname);
    } else if (!transcript.length) send({ open: true });
    if (pollUrl) {
      setInterval(function () {
        if (busy || document.hidden) return;
        fetch(pollUrl, { method: "POST", headers: { "X-CSRFToken": token }, credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (data) { if (data.messages && data.messages.length) receive(data.messages); })
          .catch(function () {});
      }, 20000);
    }
  }

  document.querySelectorAll(".chat").forEach(setUp);
})();
