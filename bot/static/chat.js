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

    function render(entry, live) {
      const item = document.createElement("li");
      item.className = entry.from === "user" ? "user" : "bot";
      const text = document.createElement("p");
      text.textContent = entry.text;
      item.appendChild(text);
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

    function redraw() {
      log.innerHTML = "";
      transcript.forEach(function (entry, index) { render(entry, index === transcript.length - 1); });
      const last = transcript[transcript.length - 1] || {};
      attach.hidden = last.expects !== "photo";
      locate.hidden = !last.offers_location || !navigator.geolocation;
      log.scrollTop = log.scrollHeight;
      const end = log.lastElementChild;
      if (end && end.scrollIntoView) end.scrollIntoView({ block: "nearest" });
    }

    function receive(messages) {
      messages.forEach(function (m) {
        transcript.push({ from: "bot", text: m.text, choices: m.choices, expects: m.expects, qr: m.qr, offers_location: m.offers_location });
      });
      save(); redraw();
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
      post(body, isFile).then(function (data) { receive(data.messages || []); })
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
    if (!transcript.length) send({ open: true });
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
