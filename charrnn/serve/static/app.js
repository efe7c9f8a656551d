// charrnn playground: generate with the model's confidence on every character, and inspect
// what its hidden units track. Plain JavaScript, no build step; it talks to this server only.
"use strict";

const $ = (id) => document.getElementById(id);
const FEATURES = { inside_quotes: "inside quotes", inside_brackets: "inside brackets",
                   line_position: "position in the line", word_start: "start of a word" };
const ALTERNATIVES = 5;  // top tokens asked for each generated character
let models = [];
let running = null;  // the AbortController of the generation under way

// ------------------------------------------------------------------ talking to the server

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function failure(response) {
  let message = response.status + " " + response.statusText;
  try { message = (await response.json()).error.message; } catch (e) { /* not OpenAI's error shape */ }
  if (response.status === 401) $("api-key").focus();
  return new Error(message);
}

async function post(path, body, signal) {
  const response = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body), signal });
  if (!response.ok) throw await failure(response);
  return response;
}

function showError(err) {
  $("error").textContent = err ? String(err.message || err) : "";
  $("error").hidden = !err;
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) throw await failure(response);
  const chosen = $("model").value;
  models = (await response.json()).data;
  $("model").replaceChildren(...models.map((m) => new Option(m.id, m.id, false, m.id === chosen)));
  describeModel();
}

function currentModel() {
  return models.find((m) => m.id === $("model").value) || models[0];
}

function describeModel() {
  const m = currentModel();
  if (!m) return;
  const c = m.charrnn || {};
  const loss = c.val_loss == null ? "" : `, validation loss ${c.val_loss.toFixed(3)}`;
  $("model-info").textContent = `${c.cell} ${c.layers}×${c.hidden}, step ${c.step}${loss}`;
  const layer = $("layer").value;
  $("layer").replaceChildren(...Array.from({ length: c.layers }, (_, i) =>
    new Option(String(i), String(i), false, String(i) === layer || (layer === "" && i === c.layers - 1))));
  $("unit").max = c.hidden - 1;
}

// ------------------------------------------------------------------ generating

function glyph(t) {  // what a token looks like in the tooltip
  return t.replace(/\n/g, "↵").replace(/\t/g, "→").replace(/ /g, "␣");
}

function tokenSpan(token, logprob, top) {
  const span = document.createElement("span");
  span.className = "tok";
  const p = Math.exp(logprob);
  span.style.setProperty("--p", p.toFixed(4));
  span.dataset.p = p.toFixed(4);
  span.dataset.token = token;
  span.tokenTop = top;
  if (token.includes("\n")) {  // a line break is a character the model drew: show it, then break
    const mark = document.createElement("span");
    mark.className = "mark";
    mark.textContent = token.replace(/\n/g, "↵");
    span.append(mark, "\n");
  } else {
    span.textContent = token;
  }
  return span;
}

function showTip(span) {
  const rows = Object.entries(span.tokenTop).map(([t, lp]) => {
    const p = Math.exp(lp);
    const tr = document.createElement("tr");
    if (t === span.dataset.token) tr.className = "chosen";
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = Math.max(1, Math.round(p * 80)) + "px";
    const cells = [glyph(t), (100 * p).toFixed(1) + "%", bar];
    tr.append(...cells.map((c) => { const td = document.createElement("td"); td.append(c); return td; }));
    return tr;
  });
  const table = document.createElement("table");
  table.append(...rows);
  const tip = $("tip");
  tip.replaceChildren(table);
  tip.hidden = false;
  const r = span.getBoundingClientRect();
  tip.style.left = Math.min(window.scrollX + r.left, window.scrollX + window.innerWidth - tip.offsetWidth - 8) + "px";
  tip.style.top = window.scrollY + r.bottom + 6 + "px";
}

async function generate(event) {
  event.preventDefault();
  showError(null);
  const out = $("output");
  const prime = $("prime").value;
  out.replaceChildren();
  if (prime) {
    const p = document.createElement("span");
    p.className = "prime";
    p.textContent = prime;
    out.append(p);
  }
  const body = { model: $("model").value, prompt: prime, max_tokens: Number($("length").value),
                 temperature: Number($("temperature").value), top_p: Number($("top-p").value),
                 logprobs: ALTERNATIVES, stream: true };
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  running = new AbortController();
  $("go").disabled = true;
  $("stop").disabled = false;
  const started = performance.now();
  let count = 0, seed = null, reason = null;
  try {
    const response = await post("/v1/completions", body, running.signal);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {  // one server-sent event
        const data = buffer.slice(0, end).replace(/^data: /, "");
        buffer = buffer.slice(end + 2);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        seed = chunk.seed;
        for (const choice of chunk.choices) {
          reason = choice.finish_reason || reason;
          const lp = choice.logprobs;
          if (!lp) continue;
          lp.tokens.forEach((t, i) => out.append(tokenSpan(t, lp.token_logprobs[i], lp.top_logprobs[i])));
          count += lp.tokens.length;
        }
      }
      const seconds = (performance.now() - started) / 1000;
      $("status").textContent = `${count} characters, ${(count / seconds).toFixed(0)}/s · seed ${seed}`;
    }
    $("status").textContent += reason ? ` · ended: ${reason}` : "";
  } catch (err) {
    if (err.name !== "AbortError") showError(err);
  } finally {
    running = null;
    $("go").disabled = false;
    $("stop").disabled = true;
  }
  loadModels().catch(() => {});  // with --watch the model may have improved meanwhile
}

// ------------------------------------------------------------------ inspecting

// ColorBrewer RdBu, as `charrnn inspect` paints: -1 red, 0 near white, +1 blue
const STOPS = [[202, 0, 32], [244, 165, 130], [247, 247, 247], [146, 197, 222], [5, 113, 176]];

function activationColour(v, scale) {
  const t = Math.max(-1, Math.min(1, v / scale));
  const x = (t + 1) * 2;  // 0 .. 4 over the five stops
  const i = Math.min(3, Math.floor(x)), f = x - i;
  const rgb = STOPS[i].map((a, k) => Math.round(a + (STOPS[i + 1][k] - a) * f));
  return { rgb: `rgb(${rgb.join(",")})`, dark: 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2] < 128 };
}

async function inspect(event, layer, unit) {
  if (event) event.preventDefault();
  showError(null);
  const body = { model: $("model").value, text: $("inspect-text").value, layer: Number(layer ?? $("layer").value) };
  const u = unit ?? $("unit").value;
  if (u !== "" && u != null) body.unit = Number(u);
  if ($("state").value) body.state = $("state").value;
  try {
    const r = await (await post("/v1/inspect", body)).json();
    $("layer").value = String(r.layer);
    $("unit").value = String(r.unit);
    paintActivations(r);
    listUnits(r);
  } catch (err) {
    showError(err);
  }
}

function paintActivations(r) {
  const out = $("inspect-output");
  const spans = Array.from(r.text).map((ch, i) => {
    const s = document.createElement("span");
    const v = r.values[i];
    if (v == null) {
      s.className = "unread";
      s.title = "a symbol the model never saw";
    } else {
      const c = activationColour(v, r.scale);
      s.style.background = c.rgb;
      if (c.dark) s.style.color = "#fff";
      s.title = `${v >= 0 ? "+" : ""}${v.toFixed(3)}`;
    }
    s.dataset.value = v == null ? "" : String(v);
    s.textContent = ch === "\n" ? "↵\n" : ch;
    return s;
  });
  out.replaceChildren(...spans);
  $("scale-low").textContent = "−" + r.scale.toFixed(1);
  $("scale-high").textContent = "+" + r.scale.toFixed(1);
  $("unit-label").textContent = `layer ${r.layer}, unit ${r.unit} (${r.state === "c" ? "tanh(c)" : "h"})`;
}

function listUnits(r) {
  const body = $("ranking").tBodies[0];
  if (!r.features) {
    body.replaceChildren(row("—", "a word-level model: no character features"));
    return;
  }
  body.replaceChildren(...Object.entries(r.features).map(([name, f]) => {
    if (f.constant) return row(FEATURES[name] || name, "constant in this text: nothing to track");
    const buttons = f.top.map((e) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = `${e.layer}:${e.unit} (${e.corr >= 0 ? "+" : ""}${e.corr.toFixed(2)})`;
      if (e.layer === r.layer && e.unit === r.unit) b.className = "current";
      b.addEventListener("click", () => inspect(null, e.layer, e.unit));
      return b;
    });
    return row(FEATURES[name] || name, ...buttons);
  }));
}

function row(title, ...cells) {
  const tr = document.createElement("tr");
  const th = document.createElement("td");
  th.textContent = title;
  const td = document.createElement("td");
  td.append(...cells);
  tr.append(th, td);
  return tr;
}

// ------------------------------------------------------------------ wiring

function showTab(name) {
  document.querySelectorAll(".tab").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  $("generate").hidden = name !== "generate";
  $("inspect").hidden = name !== "inspect";
  if (name === "inspect" && !$("inspect-output").hasChildNodes()) inspect(null);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["temperature", "top-p"]) {
    $(id).addEventListener("input", () => { $(id + "-value").textContent = Number($(id).value).toFixed(2); });
  }
  $("generate-form").addEventListener("submit", generate);
  $("stop").addEventListener("click", () => running && running.abort());
  $("inspect-form").addEventListener("submit", (e) => inspect(e));
  $("unit").addEventListener("change", () => inspect(null));
  $("layer").addEventListener("change", () => { $("unit").value = ""; inspect(null); });
  $("state").addEventListener("change", () => inspect(null));
  $("model").addEventListener("change", () => { describeModel(); $("unit").value = ""; });
  $("api-key").addEventListener("change", () => loadModels().then(() => showError(null), showError));
  document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  const output = $("output");
  output.addEventListener("mouseover", (e) => {
    const span = e.target.closest(".tok");
    if (span) showTip(span);
  });
  output.addEventListener("mouseleave", () => { $("tip").hidden = true; });
  loadModels().catch(showError);
});
