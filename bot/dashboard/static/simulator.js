// The simulator page: draws the conversation the backend keeps and sends what the customer does.
// Everything from the server is put into the page as text (textContent), never as HTML.
"use strict";

(() => {
  const chat = document.getElementById("chat");
  const presence = document.getElementById("presence");
  const composer = document.getElementById("composer");
  const message = document.getElementById("message");
  const waIdInput = document.getElementById("wa_id");
  const nameInput = document.getElementById("name");
  const hidePhone = document.getElementById("hide_phone");
  const usernameBox = document.getElementById("username-customer");
  const userIdInput = document.getElementById("user_id");
  const usernameInput = document.getElementById("username");
  const profileLink = document.getElementById("profile-link");
  const POLL_MS = 1500;

  let rendered = new Map(); // entry id -> its element
  let generation = 0; // bumped when the customer changes, so late answers for the old one are dropped
  let drawnVersion = -1; // the conversation's version last drawn: older answers are stale

  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  // A phone customer is their number; a username customer (phone hidden) their BSUID and username,
  // and the backend then sends webhooks without any phone number.
  const customer = () =>
    hidePhone.checked
      ? { user_id: userIdInput.value.trim(), username: usernameInput.value.trim() }
      : { wa_id: waIdInput.value.trim() };
  const identifierInput = () => (hidePhone.checked ? userIdInput : waIdInput);

  function remember() {
    const url = new URL(window.location.href);
    for (const key of ["wa_id", "user_id", "username"]) url.searchParams.delete(key);
    url.searchParams.set("wa_id", waIdInput.value.trim());
    for (const [key, value] of Object.entries(customer())) url.searchParams.set(key, value);
    url.searchParams.set("name", nameInput.value.trim());
    history.replaceState(null, "", url);
    profileLink.href = "/customers/" + encodeURIComponent(identifierInput().value.trim());
  }

  function showSwitch() {
    waIdInput.disabled = hidePhone.checked;
    usernameBox.disabled = !hidePhone.checked;
    usernameBox.hidden = !hidePhone.checked;
  }

  function valid() {
    const inputs = hidePhone.checked ? [userIdInput, usernameInput] : [waIdInput];
    const bad = inputs.find((input) => !input.checkValidity());
    if (bad) bad.reportValidity();
    return !bad;
  }

  function timeOf(entry) {
    return new Date(entry.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function tick(entry) {
    if (entry.direction !== "in") return null;
    const labels = {
      sending: ["◔", "sending"],
      delivered: ["✓✓", "delivered to the bot"],
      failed: ["⚠", "not delivered"],
    };
    const [symbol, label] = labels[entry.status] || ["", entry.status];
    const node = el("span", "tick " + entry.status);
    node.append(el("span", "", symbol));
    node.append(el("span", "visually-hidden", " " + label));
    node.querySelector("span").setAttribute("aria-hidden", "true");
    return node;
  }

  function choiceButton(label, action, entry) {
    const button = el("button", "choice", label);
    button.type = "button";
    button.addEventListener("click", () => send({ ...action, context: entry.id }));
    return button;
  }

  function bubbleContent(entry) {
    const bubble = entry.bubble;
    const box = el("div", "bubble");
    const extras = [];
    if (bubble.kind === "tap") {
      box.append(el("span", "tapped", bubble.text));
    } else if (bubble.kind === "template") {
      box.append(el("span", "template-name", "Template · " + bubble.name));
      box.append(document.createTextNode(bubble.text));
      if (bubble.footer) box.append(el("span", "footer", bubble.footer));
      for (const reply of bubble.quick_replies) {
        extras.push(choiceButton(reply.text, { type: "quick_reply", payload: reply.payload, text: reply.text }, entry));
      }
    } else if (bubble.kind === "buttons") {
      box.append(document.createTextNode(bubble.text));
      if (bubble.footer) box.append(el("span", "footer", bubble.footer));
      for (const b of bubble.buttons) {
        extras.push(choiceButton(b.title, { type: "button_reply", id: b.id, title: b.title }, entry));
      }
    } else if (bubble.kind === "list") {
      box.append(document.createTextNode(bubble.text));
      if (bubble.footer) box.append(el("span", "footer", bubble.footer));
      const details = el("details", "list");
      details.append(el("summary", "", "☰ " + bubble.button));
      const rows = el("div", "list-rows");
      for (const section of bubble.sections) {
        if (section.title) rows.append(el("strong", "", section.title));
        for (const row of section.rows) {
          const button = choiceButton(row.title, { type: "list_reply", id: row.id, title: row.title }, entry);
          if (row.description) button.append(el("span", "row-description", row.description));
          rows.append(button);
        }
      }
      details.append(rows);
      extras.push(details);
    } else if (bubble.kind === "image") {
      box.append(document.createTextNode("Image: " + bubble.link + (bubble.text ? "\n" + bubble.text : "")));
    } else {
      box.append(document.createTextNode(bubble.text));
    }
    const meta = el("span", "meta", entry.direction === "note" ? "" : timeOf(entry) + " ");
    const t = tick(entry);
    if (t) meta.append(t);
    box.append(meta);
    return [box, extras];
  }

  function entryElement(entry) {
    const item = el("div", "msg " + entry.direction);
    item.dataset.id = entry.id;
    item.dataset.status = entry.status;
    const who = { in: "You", out: "Bot", note: "Simulator" }[entry.direction];
    item.append(el("span", "visually-hidden", who + ": "));
    const [box, extras] = bubbleContent(entry);
    item.append(box, ...extras);
    if (entry.status === "failed") item.append(el("span", "failure", entry.detail));
    return item;
  }

  function drawAnswer(mine, body) {
    if (mine !== generation || body.version < drawnVersion) return;
    drawnVersion = body.version;
    draw(body.entries);
  }

  function draw(entries) {
    const nearBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 80;
    for (const entry of entries) {
      const old = rendered.get(entry.id);
      if (old && old.dataset.status === entry.status) continue;
      const fresh = entryElement(entry);
      if (old) old.replaceWith(fresh);
      else chat.append(fresh);
      rendered.set(entry.id, fresh);
    }
    if (nearBottom) chat.scrollTop = chat.scrollHeight;
  }

  function note(text) {
    draw([{ id: "local-" + Date.now(), direction: "note", status: "", at: new Date().toISOString(), bubble: { kind: "text", text } }]);
  }

  async function call(url, options) {
    const response = await fetch(url, { credentials: "same-origin", ...options });
    if (response.status === 401) {
      window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname + window.location.search);
      throw new Error("logged out");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
    return body;
  }

  async function refresh() {
    const mine = generation;
    try {
      const body = await call("/simulator/api/conversation?" + new URLSearchParams(customer()));
      if (mine !== generation) return;
      presence.textContent = body.bot_online ? "online" : "bot starting… (messages are refused until it is up)";
      drawAnswer(mine, body);
    } catch (error) {
      presence.textContent = "simulator unreachable";
    }
  }

  async function post(path, body) {
    const mine = generation;
    const pending = call(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    setTimeout(refresh, 150); // show the message with its clock while the bot works on it
    try {
      drawAnswer(mine, await pending);
    } catch (error) {
      note("Not sent: " + error.message);
    }
  }

  function send(action) {
    if (!valid()) return;
    post("/simulator/api/send", { ...customer(), name: nameInput.value.trim(), action });
  }

  function switchCustomer() {
    generation += 1;
    drawnVersion = -1;
    rendered = new Map();
    chat.replaceChildren();
    remember();
    refresh();
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = message.value.trim();
    if (!text) return;
    message.value = "";
    send({ type: "text", text });
  });
  document.getElementById("promo").addEventListener("click", () => {
    if (valid()) post("/simulator/api/promo", customer());
  });
  document.getElementById("new-customer").addEventListener("click", () => {
    waIdInput.value = "1555" + String(Math.floor(Math.random() * 1e7)).padStart(7, "0");
    const digits = Array.from({ length: 20 }, () => Math.floor(Math.random() * 10)).join("");
    userIdInput.value = "US." + digits;
    switchCustomer();
  });
  for (const input of [waIdInput, userIdInput]) {
    input.addEventListener("change", () => {
      if (input.checkValidity()) switchCustomer();
    });
  }
  hidePhone.addEventListener("change", () => {
    showSwitch();
    switchCustomer();
  });
  usernameInput.addEventListener("change", remember);
  nameInput.addEventListener("change", remember);
  document.getElementById("customer").addEventListener("submit", (event) => event.preventDefault());

  showSwitch();
  remember();
  refresh();
  setInterval(() => {
    if (!document.hidden) refresh();
  }, POLL_MS);
})();
