// vlmrec explore: the page's state lives in its URL (?user=ID&k=10&models=a,b, ?items=I1,I2,
// ?item=ID), so every view can be bookmarked and loads straight into that state. No build step.
"use strict";
const $ = (sel) => document.querySelector(sel);
const enc = encodeURIComponent;
let INFO = null;
let VIEW = null; // the recommendations shown now (for "+": extend its history)

function esc(text) {
  const d = document.createElement("div");
  d.textContent = text == null ? "" : String(text);
  return d.innerHTML;
}

function state() {
  const p = new URLSearchParams(location.search);
  const list = (name) => (p.get(name) || "").split(",").filter(Boolean);
  const k = parseInt(p.get("k") || "", 10);
  return { user: p.get("user") || "", items: list("items"), item: p.get("item") || "",
           k: k > 0 ? k : INFO.default_k, models: list("models") };
}

function url(s) {
  const q = [];
  if (s.user) q.push("user=" + enc(s.user));
  if (s.items.length) q.push("items=" + s.items.map(enc).join(","));
  if (s.item) q.push("item=" + enc(s.item));
  q.push("k=" + s.k);
  if (s.models.length) q.push("models=" + s.models.map(enc).join(","));
  return "/?" + q.join("&");
}

function go(patch) {
  history.pushState(null, "", url({ ...state(), ...patch }));
  render();
}

async function api(path) {
  const r = await fetch(path);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const d = body.detail;
    throw new Error(typeof d === "string" ? d : (d && d[0] && d[0].msg) || r.statusText);
  }
  return body;
}

function say(text, error) {
  const m = $("#message");
  m.textContent = text || "";
  m.className = error ? "error" : "";
}

function pic(item, cls) {
  if (item.image) {
    return `<img class="pic ${cls || ""}" loading="lazy" src="${esc(item.image)}" alt="${esc(item.title)}">`;
  }
  return `<span class="pic none ${cls || ""}">${esc(item.title.slice(0, 50))}</span>`;
}

function flags(item) {
  return (item.hit ? '<span class="fl h">✓ hit</span>' : "") +
    (item.cold ? '<span class="fl c">cold</span>' : "") +
    (item.tail ? '<span class="fl l">tail</span>' : "");
}

function row(item) {
  return `<div class="it${item.hit ? " hit" : ""}" data-item="${esc(item.id)}">${pic(item)}<div>` +
    `<a class="t" data-open="${esc(item.id)}" href="${esc(url({ ...state(), item: item.id }))}">${esc(item.title)}</a>` +
    `<button class="add" type="button" data-add="${esc(item.id)}" title="add to an ad-hoc history">+</button>` +
    (item.description ? `<div class="d">${esc(item.description)}</div>` : "") +
    `<div>${flags(item)}<span class="kind">${esc(item.id)}</span></div></div></div>`;
}

function card(item, extra) {
  return `<div class="card" data-item="${esc(item.id)}">${pic(item)}` +
    `<a class="t" data-open="${esc(item.id)}" href="${esc(url({ ...state(), item: item.id }))}">${esc(item.title)}</a>` +
    `<div>${flags(item)}${extra || ""}</div></div>`;
}

function column(col) {
  const hits = col.items.filter((i) => i.hit).length;
  const head = `<h3>${esc(col.label)} <span class="kind">${esc(col.kind)}` +
    (VIEW && VIEW.user ? ` · ${hits} hit${hits === 1 ? "" : "s"}` : ` · ${esc(col.adhoc)}`) + "</span></h3>";
  const body = col.note ? `<p class="note">${esc(col.note)}</p>` : col.items.map(row).join("");
  return `<section class="col ${esc(col.kind)}" data-model="${esc(col.name)}">${head}${body}</section>`;
}

function drawRecommendations(view, s) {
  VIEW = view;
  const title = view.user
    ? `User ${esc(view.user)}: ${view.n_history} items before test, ${view.n_test} test items (history: most recent first)`
    : "Ad-hoc history (× removes an item)";
  const hist = view.user
    ? view.history.map((i) => card(i)).join("")
    : view.history.map((i) => card(i, `<button class="add" type="button" data-remove="${esc(i.id)}">×</button>`)).join("");
  $("#view").innerHTML = `<h2>${title}</h2><div class="strip" id="history">${hist}</div>` +
    `<h2>Top-${s.k} of each model</h2><div class="cols" id="cols">${view.columns.map(column).join("")}</div>`;
}

async function drawItem(s) {
  const v = await api(`/api/items/${enc(s.item)}?k=${s.k}`);
  const fields = Object.entries(v.fields).map(([k, t]) => `<dt>${esc(k)}</dt><dd>${esc(t)}</dd>`).join("");
  const desc = v.item.description ? `<dt>generated description</dt><dd>${esc(v.item.description)}</dd>` : "";
  const near = v.similar_by
    ? `<h2>Nearest items by content (${esc(v.similar_by)})</h2><div class="strip" id="similar">${v.similar.map((i) => card(i)).join("")}</div>`
    : "<p>This run has no content feature set to find nearest items with.</p>";
  const big = v.item.image ? `<img class="big" src="${esc(v.item.image)}" alt="${esc(v.item.title)}">` : pic(v.item);
  $("#view").innerHTML = `<p><a href="#" id="back">← back</a></p><div class="item-view" id="item"><div>${big}</div>` +
    `<div><h2>${esc(v.item.title)} <span class="kind">${esc(v.item.id)}</span></h2><div>${flags(v.item)}` +
    `<button class="add" type="button" data-add="${esc(v.item.id)}">+ add to a history</button></div>` +
    `<p class="kind">${v.train_interactions} training interactions</p><dl class="fields">${fields}${desc}</dl></div></div>${near}`;
}

async function drawWelcome() {
  const users = await api("/api/users?q=");
  $("#view").innerHTML = "<h2>Pick a user</h2><p>Search a test user by id above, or start with one of these:</p>" +
    `<div class="suggest" id="suggest">${users.slice(0, 24).map((u) =>
      `<button type="button" data-user="${esc(u.id)}">${esc(u.id)} <span class="kind">${u.history}/${u.test}</span></button>`).join("")}</div>`;
}

function syncControls(s) {
  const models = s.models.length ? s.models : INFO.default_models;
  document.querySelectorAll("#models input").forEach((box) => { box.checked = models.includes(box.value); });
  const ks = [...new Set([5, 10, 20, 50, s.k])].sort((a, b) => a - b);
  $("#k").innerHTML = ks.map((k) => `<option${k === s.k ? " selected" : ""}>${k}</option>`).join("");
  $("#user-q").value = s.user;
  $("#share").href = url(s);
}

async function render() {
  const s = state();
  syncControls(s);
  const models = (s.models.length ? s.models : INFO.default_models).map(enc).join(",");
  say("loading…");
  try {
    if (s.item) await drawItem(s);
    else if (s.user) drawRecommendations(await api(`/api/recommend?user=${enc(s.user)}&k=${s.k}&models=${models}`), s);
    else if (s.items.length) drawRecommendations(await api(`/api/recommend?items=${s.items.map(enc).join(",")}&k=${s.k}&models=${models}`), s);
    else await drawWelcome();
    say("");
  } catch (e) {
    $("#view").innerHTML = "";
    say(e.message, true);
  }
}

function addItem(id) {
  const s = state();
  const base = s.items.length ? s.items : (VIEW && VIEW.user ? VIEW.history.map((i) => i.id) : []);
  go({ user: "", item: "", items: [...new Set([...base, id])] });
}

let searchTimer = null;
function onSearch(input, run) {
  input.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(run, 150); });
}

async function start() {
  INFO = await api("/api/info");
  $("#run").textContent = `${INFO.run} · ${INFO.dataset} · ${INFO.test_users} test users, ${INFO.items} items · ${INFO.mask} masked`;
  $("#models").innerHTML = INFO.models.map((m) =>
    `<label><input type="checkbox" value="${esc(m.name)}"> ${esc(m.label)} <span class="kind">${esc(m.kind)}</span></label>`).join("");
  $("#models").addEventListener("change", () => {
    go({ models: [...document.querySelectorAll("#models input:checked")].map((b) => b.value) });
  });
  $("#k").addEventListener("change", (e) => go({ k: parseInt(e.target.value, 10) }));
  $("#pick").addEventListener("submit", (e) => {
    e.preventDefault();
    const user = $("#user-q").value.trim();
    if (user) go({ user, items: [], item: "" });
  });
  onSearch($("#user-q"), async () => {
    const users = await api(`/api/users?q=${enc($("#user-q").value)}`).catch(() => []);
    $("#user-list").innerHTML = users.map((u) => `<option value="${esc(u.id)}">`).join("");
  });
  onSearch($("#item-q"), async () => {
    const items = await api(`/api/items?q=${enc($("#item-q").value)}`).catch(() => []);
    $("#item-results").innerHTML = items.slice(0, 30).map((i) =>
      card(i, `<button class="add" type="button" data-add="${esc(i.id)}">+</button>`)).join("");
  });
  document.body.addEventListener("click", (e) => {
    const t = e.target.closest("[data-open],[data-add],[data-remove],[data-user],#back");
    if (!t) return;
    e.preventDefault();
    if (t.id === "back") go({ item: "" });
    else if (t.dataset.open) go({ item: t.dataset.open });
    else if (t.dataset.add) addItem(t.dataset.add);
    else if (t.dataset.remove) go({ items: state().items.filter((i) => i !== t.dataset.remove) });
    else if (t.dataset.user) go({ user: t.dataset.user, items: [], item: "" });
  });
  window.addEventListener("popstate", render);
  await render();
}

start().catch((e) => say(e.message, true));
