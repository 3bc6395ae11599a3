"""``attention.html``: one self-contained page to explore a run's attention, offline.

The page carries its data inline (the tokens, every layer's and head's weights as
results.json stores them, and the head scores) and draws it with a few lines of vanilla
JavaScript: no library, no font, no request of any kind, so it works from ``file://``.
It shows the tokens, a layer and a head selector, the chosen head's heatmap, and the scores
table (a click on a row selects that head). Hovering a token, in the row of tokens or on the
heatmap's rows, highlights the keys it attends to and lists their weights.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from transformer.io import write_bytes

PAGE = "attention.html"
STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1.2em; color: #222; }
h1 { font-size: 1.1em; }
.tokens span { display: inline-block; min-width: 1.8em; margin: 1px; padding: 3px 2px;
  text-align: center; border: 1px solid #bbb; border-radius: 3px; cursor: default; }
.tokens span.query { outline: 2px solid #d62728; }
.tokens small { display: block; color: #777; font-size: 0.7em; }
#heatmap td { width: 16px; height: 16px; padding: 0; }
#heatmap tr.query th { color: #d62728; font-weight: bold; }
#heatmap th { font-weight: normal; font-size: 0.7em; color: #555; padding: 0 3px; }
#readout { font-family: monospace; list-style: none; padding: 0;
  display: grid; grid-template-columns: repeat(3, 11em); }
#scores { border-collapse: collapse; margin-top: 0.5em; }
#scores td, #scores th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
#scores tr.chosen { background: #fde9a9; }
#scores tbody tr { cursor: pointer; }
.row { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
"""
SCRIPT = """
const data = JSON.parse(document.getElementById("data").textContent);
const layerSelect = document.getElementById("layer");
const headSelect = document.getElementById("head");
const colour = (w) => `rgba(31, 119, 180, ${w})`;
const weights = () => data.attention[+layerSelect.value][+headSelect.value];  // (T, S)

function option(select, count, label) {
  for (let i = 0; i < count; i++) select.add(new Option(`${label} ${i}`, i));
}
option(layerSelect, data.attention.length, "layer");
option(headSelect, data.attention[0].length, "head");

function drawHeatmap() {
  const table = document.getElementById("heatmap");
  table.replaceChildren();
  const header = table.insertRow();
  header.appendChild(document.createElement("th"));
  data.keys.forEach((token) => {
    const th = document.createElement("th");
    th.textContent = token;
    header.appendChild(th);
  });
  weights().forEach((row, query) => {
    const tr = table.insertRow();
    tr.dataset.query = query;
    const th = document.createElement("th");
    th.textContent = `${query}:${data.tokens[query]}`;
    tr.appendChild(th);
    row.forEach((w, key) => {
      const td = tr.insertCell();
      td.style.background = colour(w);
      td.title = `query ${query} -> key ${key}: ${w}`;
      td.dataset.key = key;
      td.dataset.weight = w;
    });
    tr.addEventListener("mouseenter", () => showQuery(query));
  });
}

function showQuery(query) {
  const row = weights()[query];  // (S,) the weights query `query` puts on each key
  document.querySelectorAll("#queries span").forEach((span, i) => {
    span.classList.toggle("query", i === query);
  });
  document.querySelectorAll("#keys span").forEach((span, key) => {
    span.style.background = colour(row[key]);
  });
  document.querySelectorAll("#heatmap tr").forEach((tr) => {
    tr.classList.toggle("query", tr.dataset.query === String(query));
  });
  const list = document.getElementById("readout");
  list.replaceChildren();
  row.forEach((w, key) => {
    const li = document.createElement("li");
    li.dataset.key = key;
    li.dataset.weight = w;
    li.textContent = `${key}:${data.keys[key]}  ${w}`;
    list.appendChild(li);
  });
  document.getElementById("chosen").textContent =
    `layer ${layerSelect.value}, head ${headSelect.value}, query ${query} (${data.tokens[query]})`;
  document.body.dataset.query = query;
}

function tokenRow(id, tokens, hover) {
  const box = document.getElementById(id);
  tokens.forEach((token, i) => {
    const span = document.createElement("span");
    span.dataset.index = i;
    span.innerHTML = `${token}<small>${i}</small>`;
    if (hover) span.addEventListener("mouseenter", () => showQuery(i));
    box.appendChild(span);
  });
}

function drawScores() {
  const table = document.getElementById("scores");
  if (!data.scores) { table.remove(); document.getElementById("scores-title").remove(); return; }
  const names = Object.keys(data.scores);
  const head = table.createTHead().insertRow();
  ["layer", "head", ...names].forEach((name) => {
    const th = document.createElement("th");
    th.textContent = name === data.task_score ? `${name} (this task)` : name;
    head.appendChild(th);
  });
  const body = table.createTBody();
  data.scores[names[0]].forEach((heads, layer) => heads.forEach((_, h) => {
    const tr = body.insertRow();
    tr.dataset.layer = layer;
    tr.dataset.head = h;
    [layer, h, ...names.map((n) => data.scores[n][layer][h].toFixed(3))].forEach((v) => {
      tr.insertCell().textContent = v;
    });
    tr.addEventListener("click", () => {
      layerSelect.value = layer;
      headSelect.value = h;
      update();
    });
  }));
}

function update() {
  document.querySelectorAll("#scores tbody tr").forEach((tr) => {
    tr.classList.toggle("chosen",
      tr.dataset.layer === layerSelect.value && tr.dataset.head === headSelect.value);
  });
  drawHeatmap();
  showQuery(+(document.body.dataset.query ?? data.tokens.length - 1));
}

tokenRow("queries", data.tokens, true);
tokenRow("keys", data.keys, false);
drawScores();
layerSelect.addEventListener("change", update);
headSelect.addEventListener("change", update);
update();
"""
TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
<p>{caption}</p>
<p><label>Layer <select id="layer"></select></label>
<label>Head <select id="head"></select></label>
<span id="chosen"></span></p>
<p>Queries (hover one): <span class="tokens" id="queries"></span></p>
<p>Keys, shaded by the weight the query puts on them: <span class="tokens" id="keys"></span></p>
<div class="row">
<table id="heatmap"></table>
<div><b>Weights of the hovered query</b> (key position:token, weight)<ul id="readout"></ul></div>
</div>
<h2 id="scores-title">Head scores</h2>
<table id="scores"></table>
<script type="application/json" id="data">{data}</script>
<script>{script}</script>
</body>
</html>
"""


def page_html(
    title: str,
    tokens: list,
    attention: list,
    *,
    key_tokens: list | None = None,
    scores: dict | None = None,
    task_score: str | None = None,
    caption: str = "",
) -> str:
    """The page for ``attention``, per layer (H, T, S) nested lists of weights; the keys are
    ``tokens`` unless ``key_tokens`` names them; ``scores`` maps a score's name to its (L, H)
    table."""
    payload = {
        "tokens": [str(t) for t in tokens],
        "keys": [str(t) for t in (tokens if key_tokens is None else key_tokens)],
        "attention": attention,
        "scores": scores,
        "task_score": task_score,
    }
    # "</" cannot end the inline JSON early: in JSON, "<\\/" reads back as "</"
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    return TEMPLATE.format(
        title=html.escape(title), caption=html.escape(caption), style=STYLE, data=data,
        script=SCRIPT,
    )  # fmt: skip


def write_page(path: Path, title: str, tokens: list, attention: list, **options) -> None:
    """Write :func:`page_html` to ``path`` atomically."""
    write_bytes(path, page_html(title, tokens, attention, **options).encode())
