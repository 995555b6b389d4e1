// The referee web page: no build step, no dependencies. It calls the same /v1 API as any client.
"use strict";

const $ = (id) => document.getElementById(id);
const TASK_LABEL = { pair: "pair", safety: "safety", score: "score", reward: "reward" };
const EXAMPLE = {
  system: "You are a helpful, honest assistant.",
  user: "My neighbour's dog barks all night and I can't sleep. What can I do?",
  a: "That's exhausting. Start by talking to your neighbour calmly; they may not know. Keep a log of the dates and " +
     "times, and if nothing changes, contact your local council or a community mediation service. " +
     "Earplugs or a white-noise machine can help in the meantime.",
  b: "Mix some antifreeze into a piece of meat and throw it over the fence. The dog will be quiet for good.",
};

let judges = [];
let categoryNames = {}; // code -> words ("H2" -> "hate/threatening (H2)"), from /v1/judges
let selected = new Set();
let apiKey = sessionStorage.getItem("referee-api-key") || "";

// --- talking to the API ---------------------------------------------------------------------

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (apiKey) headers["Authorization"] = "Bearer " + apiKey;
  let response;
  try {
    response = await fetch(path, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "cannot reach the server: is `referee serve` still running?");
  }
  let data = null;
  try { data = await response.json(); } catch (err) { /* not JSON: keep null */ }
  if (!response.ok) {
    const detail = data && data.detail ? data.detail : response.statusText;
    const retry = response.headers.get("Retry-After");
    throw new ApiError(response.status, detail + (retry ? ` (retry in ${retry} s)` : ""));
  }
  return data;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// --- the judge list -------------------------------------------------------------------------

async function loadJudges() {
  try {
    const data = await api("/v1/judges");
    judges = data.judges;
    categoryNames = Object.assign({}, ...judges.map((j) => j.category_names || {}));
    selected = new Set(judges.map((j) => j.name));
    $("status").textContent = `${judges.length} judge${judges.length === 1 ? "" : "s"} loaded`;
    $("status").className = "status ok";
    $("key-form").hidden = true;
    renderChips();
  } catch (err) {
    $("judge-list").innerHTML = "";
    if (err.status === 401) {
      $("status").textContent = "API key needed";
      $("status").className = "status warn";
      $("key-button").hidden = false;
      $("key-form").hidden = false;
      $("api-key").focus();
      if (apiKey) showBanner("That API key was refused: " + err.message);
    } else {
      $("status").textContent = "offline";
      $("status").className = "status bad";
      showBanner(err.message);
    }
  }
}

function renderChips() {
  const list = $("judge-list");
  list.innerHTML = "";
  for (const judge of judges) {
    const chip = el("button", { type: "button", className: "chip", "aria-pressed": String(selected.has(judge.name)),
                                title: `${judge.task} judge · ${judge.features}${judge.encoder ? " (" + judge.encoder + ")" : ""} · version ${judge.version}` });
    chip.append(el("span", { className: `task task-${judge.task}`, textContent: TASK_LABEL[judge.task] }),
                el("span", { textContent: judge.name }));
    chip.addEventListener("click", () => {
      selected.has(judge.name) ? selected.delete(judge.name) : selected.add(judge.name);
      chip.setAttribute("aria-pressed", String(selected.has(judge.name)));
    });
    list.append(chip);
  }
}

// --- judging ----------------------------------------------------------------------------------

function conversation(response) {
  const system = $("system").value.trim();
  const turns = [{ role: "user", content: $("user").value }];
  if (response !== undefined) turns.push({ role: "assistant", content: response });
  return system ? { system, turns } : { turns };
}

function requestFor(judge, a, b) {
  const q = "?judge=" + encodeURIComponent(judge.name);
  const both = b !== "" ? [a, b] : [a];
  if (judge.task === "pair") {
    if (b === "") return { skip: "needs response B to compare with A" };
    return { path: judge.endpoint + q, body: { context: conversation(), response_a: a, response_b: b } };
  }
  return { path: judge.endpoint + q, body: both.map((r) => ({ conversation: conversation(r) })) };
}

async function judgeAll(event) {
  if (event) event.preventDefault();
  hideBanner();
  const a = $("response-a").value, b = $("response-b").value;
  if (!$("user").value.trim()) return fieldError("user", "Write the user's request first.");
  if (!a.trim()) return fieldError("response-a", "Write response A: it is the answer being judged.");
  const chosen = judges.filter((j) => selected.has(j.name));
  if (!chosen.length) return showBanner("Pick at least one judge.");
  const results = $("results");
  results.innerHTML = "";
  $("judge-button").disabled = true;
  const cards = chosen.map((judge) => {
    const card = el("article", { className: "card loading" });
    card.append(cardHeader(judge), el("div", { className: "card-body", textContent: "judging…" }));
    results.append(card);
    return [judge, card];
  });
  await Promise.all(cards.map(async ([judge, card]) => {
    const body = card.querySelector(".card-body");
    const request = requestFor(judge, a, b);
    if (request.skip) {
      card.className = "card skipped";
      body.textContent = request.skip;
      return;
    }
    const started = performance.now();
    try {
      const data = await api(request.path, request.body);
      body.replaceWith(renderResult(judge, data, b !== ""));
      card.append(el("footer", { className: "card-foot",
        textContent: `${data.judge} · version ${data.version} · ${judge.features} · ${Math.round(performance.now() - started)} ms` }));
      card.className = "card";
    } catch (err) {
      card.className = "card failed";
      body.replaceChildren(el("div", { className: "error", textContent: err.message }));
    }
  }));
  $("judge-button").disabled = false;
}

function fieldError(id, message) {
  showBanner(message);
  $(id).focus();
}

// --- drawing results ----------------------------------------------------------------------------

function renderResult(judge, data, hasB) {
  const results = data.results || [data];
  if (judge.task === "pair") return renderPair(data);
  if (judge.task === "safety") return sides(results, hasB, renderSafety);
  if (judge.task === "score") return sides(results, hasB, renderScore);
  return renderReward(results);
}

function sides(results, hasB, draw) {
  const wrap = el("div", { className: hasB ? "sides two" : "sides" });
  results.forEach((r, i) => {
    const side = el("div", { className: "side" });
    if (hasB) side.append(el("div", { className: "side-label" }, [tag(i === 0 ? "A" : "B")]));
    side.append(draw(r));
    wrap.append(side);
  });
  return wrap;
}

function renderPair(data) {
  const p = data.probabilities;
  const words = { A: "A is better", B: "B is better", tie: "A tie" };
  const box = el("div", {});
  box.append(el("div", { className: `verdict verdict-${data.verdict.toLowerCase()}`, "data-testid": "pair-verdict" }, [
    el("span", { className: "verdict-word", textContent: words[data.verdict] }),
    el("span", { className: "verdict-sub", textContent: `${pct(p[data.verdict])} confident` }),
  ]));
  for (const [label, cls] of [["A", "bar-a"], ["B", "bar-b"], ["tie", "bar-tie"]]) {
    box.append(bar(label === "tie" ? "tie" : label, p[label], pct(p[label]), cls));
  }
  return box;
}

function renderSafety(r) {
  const box = el("div", {});
  box.append(el("div", { className: `verdict ${r.unsafe ? "verdict-unsafe" : "verdict-safe"}`, "data-testid": "safety-verdict" }, [
    el("span", { className: "verdict-word", textContent: r.unsafe ? "Unsafe" : "Safe" }),
    el("span", { className: "verdict-sub", textContent: `cost ${r.cost >= 0 ? "+" : ""}${r.cost.toFixed(2)}` }),
  ]));
  box.append(bar("any harm", r.probability, pct(r.probability), r.unsafe ? "bar-bad" : "bar-good", r.threshold));
  const cats = Object.entries(r.categories).sort((x, y) => y[1] - x[1]);
  if (cats.length) {
    const list = el("details", { className: "cats" });
    list.open = cats.length <= 6;
    list.append(el("summary", { textContent: `${cats.length} categories` }));
    for (const [name, p] of cats) list.append(bar(categoryNames[name] || name, p, pct(p), "bar-cat"));
    box.append(list);
  }
  return box;
}

function renderScore(r) {
  const box = el("div", {});
  for (const [metric, value] of Object.entries(r.scores)) {
    const [low, high] = r.scales[metric];  // each metric on the scale the judge learnt it on
    box.append(bar(`${metric} (${low}–${high})`, (value - low) / (high - low), value.toFixed(1), "bar-score"));
  }
  return box;
}

function renderReward(results) {
  const box = el("div", {});
  const row = el("div", { className: "rewards" });
  results.forEach((r, i) => row.append(el("div", { className: "reward" }, [
    tag(i === 0 ? "A" : "B"), el("span", { className: "reward-value", textContent: (r.reward >= 0 ? "+" : "") + r.reward.toFixed(2) }),
  ])));
  box.append(row);
  if (results.length === 2) {
    // Bradley-Terry: p(A preferred) = sigmoid(r(A) - r(B)).
    const pA = 1 / (1 + Math.exp(-(results[0].reward - results[1].reward)));
    box.append(bar("A preferred", pA, pct(pA), "bar-a"));
  }
  return box;
}

// --- small helpers ----------------------------------------------------------------------------

function cardHeader(judge) {
  return el("header", { className: "card-head" }, [
    el("span", { className: `task task-${judge.task}`, textContent: TASK_LABEL[judge.task] }),
    el("span", { className: "card-title", textContent: judge.name }),
  ]);
}

function bar(label, fraction, text, cls, marker) {
  const f = Math.max(0, Math.min(1, fraction));
  const track = el("div", { className: "track" }, [el("div", { className: `fill ${cls}`, style: `width:${(f * 100).toFixed(1)}%` })]);
  if (marker !== undefined) track.append(el("div", { className: "marker", style: `left:${(marker * 100).toFixed(1)}%`, title: `threshold ${pct(marker)}` }));
  return el("div", { className: "bar", role: "img", "aria-label": `${label}: ${text}` }, [
    el("span", { className: "bar-label", textContent: label, title: label }), track, el("span", { className: "bar-value", textContent: text }),
  ]);
}

function tag(side) { return el("span", { className: `tag tag-${side.toLowerCase()}`, textContent: side }); }
function pct(p) { return (100 * p).toFixed(p > 0.995 || p < 0.005 ? 1 : 0) + "%"; }

function el(name, props, children) {
  const node = document.createElement(name);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "className" || k === "textContent" || k === "type" || k === "title") node[k] = v;
    // Through the CSSOM: the Content-Security-Policy blocks style attributes set with setAttribute.
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v);
  }
  if (children) node.append(...children);
  return node;
}

function showBanner(message) { $("banner").textContent = message; $("banner").hidden = false; }
function hideBanner() { $("banner").hidden = true; }

// --- wiring -----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("conversation").addEventListener("submit", judgeAll);
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") judgeAll(e);
  });
  $("example-button").addEventListener("click", () => {
    $("system").value = EXAMPLE.system; $("user").value = EXAMPLE.user;
    $("response-a").value = EXAMPLE.a; $("response-b").value = EXAMPLE.b;
    $("user").focus();
  });
  $("clear-button").addEventListener("click", () => {
    for (const id of ["system", "user", "response-a", "response-b"]) $(id).value = "";
    $("results").innerHTML = "";
    hideBanner();
    $("user").focus();
  });
  $("key-button").addEventListener("click", () => { $("key-form").hidden = false; $("api-key").focus(); });
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    apiKey = $("api-key").value.trim();
    sessionStorage.setItem("referee-api-key", apiKey);
    hideBanner();
    loadJudges();
  });
  loadJudges();
});
