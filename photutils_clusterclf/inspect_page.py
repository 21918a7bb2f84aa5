"""One self-contained HTML page to inspect classified candidates and label them.

`write_inspection_page` (``clusterclf inspect``) writes a single HTML file
that needs no server and no network: the cutouts are embedded as JPEG
sprite sheets, one colour composite and one sheet per band for every
``CHUNK`` (100) candidates, and the page's script is inline. The page shows, per
candidate, its colour composite (the stretch of
`~photutils_clusterclf.visualization.stretch_cutouts`, as in the package's
figures), its single-band cutouts on demand, the machine class and the
four probabilities, its flags in words and any human class columns of the
catalogue. It filters by class and confidence, pages ``CHUNK`` candidates at
a time (the sprites of a page are decoded only when it is shown, so
20,000 candidates open in about a second), and lets the expert label with
the keyboard. Labels live in the browser's local storage until exported
as an ECSV or CSV table that ``clusterclf train --galaxy`` reads directly:
it holds the catalogue's id column, its position columns and the label
column ``LABEL_COLUMN`` (``class_inspect``).
"""

import base64
import hashlib
import html
import io
import json
from pathlib import Path

import numpy as np
from astropy.table import QTable
from tqdm.auto import tqdm

from .classes import CLASS_DESCRIPTIONS, CLASSES, UNCLASSIFIED, fold_classes
from .columns import (
    PIXEL_COLUMNS,
    SKY_COLUMNS,
    find_column,
    find_pair,
    probability_columns,
)
from .cutouts import DEFAULT_CUTOUT_SIZE, extract_cutouts
from .fileio import atomic_output, check_writable
from .positions import resolve_positions
from .utils.flags import FLAGS
from .visualization import default_rgb_bands, stretch_cutouts

__all__ = ["CHUNK", "LABEL_COLUMN", "ORDERS", "inspection_order", "write_inspection_page"]

#: Candidates per page and per sprite sheet.
CHUNK = 100
#: Name of the label column in the page's export.
LABEL_COLUMN = "class_inspect"
#: Orders of the candidates on the page.
ORDERS = ("uncertain", "class", "id")

#: The codes an expert can give, with their keys: classes 1-4 and the
#: PHANGS artefact codes, which fold into class 4 for training.
LABEL_CODES = {
    **{cls: CLASS_DESCRIPTIONS[cls] for cls in CLASSES},
    5: "pair of stars",
    6: "saturated star",
    7: "bad pixel",
    8: "diffraction spike",
    9: "background galaxy",
    **{code: f"other artefact (PHANGS code {code})" for code in range(10, 20)},
}

#: Id columns looked for (case-insensitive) when none is given.
ID_COLUMNS = ("ID_PHANGS_CLUSTER", "ID_PHANGS_CLUSTERS", "id", "source_id", "INDEX")

_JPEG_QUALITY = 80
_GRID = 10  # sprite sheet columns


def inspection_order(table, *, column="class_ml", order="uncertain", id_column=None):
    """Row order of a classified table on the inspection page.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Classified catalogue.
    column : str, optional
        Machine class column; its probability columns are found as in
        `~photutils_clusterclf.regions_io.class_regions`.
    order : {"uncertain", "class", "id"}, optional
        ``"uncertain"``: lowest probability of the chosen class first (ties:
        highest entropy of the four probabilities first), the candidates
        whose label teaches a model most; rows without probabilities
        (not classified) come last. ``"class"``: by machine class 1-4, then
        uncertain first within a class, unclassified last. ``"id"``: by the
        id column (table order without one).
    id_column : str, optional
        Id column for ``order="id"``; found automatically by default.

    Returns
    -------
    rows : `numpy.ndarray` of int
        Row indices in display order.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    n = len(table)
    if order == "id":
        name = _id_column(table, id_column)
        return np.arange(n) if name is None else np.argsort(np.asarray(table[name]), kind="stable")
    probs = _probabilities(table, column)
    top = np.max(np.nan_to_num(probs, nan=-1.0), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(probs > 0, probs * np.log(probs), 0.0), axis=1)
    unclassified = ~np.isfinite(probs).all(axis=1)
    top = np.where(unclassified, np.inf, top)
    keys = [-entropy, top]  # np.lexsort: last key is the primary one
    if order == "class":
        classes = fold_classes(table[_class_name(table, column)])
        keys.append(np.where(classes == UNCLASSIFIED, 99, classes))
    return np.lexsort(keys)


def write_inspection_page(
    table,
    images,
    path,
    *,
    column="class_ml",
    order="uncertain",
    max_rows=None,
    cutout_size=DEFAULT_CUTOUT_SIZE,
    id_column=None,
    origin=None,
    title=None,
    overwrite=False,
    progress_bar=True,
):
    """Write the inspection and labelling page of a classified catalogue.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Classified catalogue (``clusterclf classify`` output): positions,
        the class column ``column``, its probability and flag columns, and
        any human class columns.
    images : `~photutils_clusterclf.images.MultiBandImage`
        The images the catalogue was classified on.
    path : str or `~pathlib.Path`
        Output ``.html`` file, written atomically.
    column : str, optional
        Machine class column.
    order : {"uncertain", "class", "id"}, optional
        Order of the candidates (see `inspection_order`).
    max_rows : int, optional
        Keep only the first ``max_rows`` candidates in that order (e.g. the
        1000 most uncertain).
    cutout_size : int, optional
        Cutout side in pixels.
    id_column : str, optional
        Column identifying a candidate in the export (found among
        ``ID_COLUMNS`` by default; the 0-based row number ``row`` without
        one).
    origin : {0, 1}, optional
        Pixel convention of the positions, if the table does not record it.
    title : str, optional
        Page title; the catalogue's target or the file name by default.
    overwrite : bool, optional
        Replace an existing file.
    progress_bar : bool, optional
        Show a progress bar over the sprite sheets.

    Returns
    -------
    n : int
        Number of candidates on the page.
    """
    path = Path(path)
    check_writable(path, overwrite=overwrite)
    class_name = _class_name(table, column)
    if max_rows is not None and int(max_rows) < 1:
        raise ValueError(f"max_rows must be a positive number of candidates, not {max_rows}")
    rows = inspection_order(table, column=column, order=order, id_column=id_column)
    if max_rows is not None:
        rows = rows[: int(max_rows)]
    id_name = _id_column(table, id_column)
    if id_name is None:
        table, id_name = _with_row(table), "row"
    positions = resolve_positions(table, images, origin=origin)
    bands = tuple(images.bands)
    rgb = [bands.index(b) for b in default_rgb_bands(bands)]
    title = title or str(table.meta.get("TARGET") or table.meta.get("target") or path.stem)

    meta = _page_meta(table, rows, class_name, column, id_name, bands, rgb, cutout_size, title)
    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(_HEAD.replace("__TITLE__", html.escape(title)))
        fh.write(_json_block("meta", meta))
        chunks = range(0, len(rows), CHUNK)
        for k, start in enumerate(
            tqdm(chunks, desc="cutouts", unit="page", disable=not progress_bar)
        ):
            part = rows[start : start + CHUNK]
            batch = extract_cutouts(
                images, positions.x[part], positions.y[part], size=cutout_size, bands=bands
            )
            fh.write(_json_block(f"chunk-{k}", _sprites(batch.data, rgb)))
            if k == 0:
                # The script runs once the first page is in: it paints at
                # once while the browser goes on reading the other pages.
                fh.write(f"<script>{_SCRIPT}</script>\n")
        if not len(rows):
            fh.write(f"<script>{_SCRIPT}</script>\n")
        fh.write("</body>\n</html>\n")
    return len(rows)


# ---- table content ------------------------------------------------------------


def _class_name(table, column):
    name = find_column(table, column)
    if name is None:
        classish = [c for c in table.colnames if "class" in c.lower()]
        raise KeyError(
            f"class column {column!r} not in the table; pass column= one of "
            f"{', '.join(classish) or '(no column has class in its name)'}"
        )
    return name


def _probabilities(table, column):
    """(N, 4) probabilities of the classes (NaN where unknown or not written)."""
    names = probability_columns(table, _class_name(table, column))
    if names is None:
        raise KeyError(
            f"no probability columns of {column!r} in the table (expected the "
            "four columns written with it by clusterclf classify, e.g. "
            "prob_class1..4)"
        )
    return np.stack(
        [np.ma.filled(np.ma.asarray(table[names[k]], dtype=float), np.nan) for k in CLASSES], axis=1
    )


def _id_column(table, id_column):
    if id_column is not None:
        name = find_column(table, id_column)
        if name is None:
            raise KeyError(
                f"id column {id_column!r} not in the table; columns are "
                + ", ".join(table.colnames)
            )
        return name
    return next((found for found in (find_column(table, c) for c in ID_COLUMNS) if found), None)


def _human_columns(table, class_name, column):
    """Class columns other than the machine's own outputs (human, true, ...)."""
    own = {class_name.lower()}
    names = probability_columns(table, class_name) or {}
    own.update(n.lower() for n in names.values())
    own.update(f"{class_name}_{s}".lower() for s in ("qual", "flags"))
    return [
        c
        for c in table.colnames
        if "class" in c.lower()
        and c.lower() not in own
        and np.asarray(table[c]).dtype.kind in "iuf"
        and np.ndim(table[c]) == 1
    ]


def _export_columns(table, id_name):
    """Columns copied into the export: the id and the positions, as in the catalogue."""
    names = [id_name]
    for pairs in ([p for p, _ in PIXEL_COLUMNS], SKY_COLUMNS):
        found = next((f for f in (find_pair(table, p) for p in pairs) if f), None)
        if found:
            names.extend(found)
    return names


def _plain(values):
    """JSON-ready list: floats (None for NaN/masked), ints or strings."""
    data = np.ma.asarray(getattr(values, "value", values))
    if data.dtype.kind in "iub":
        return [None if m else int(v) for v, m in zip(data.data, np.ma.getmaskarray(data))]
    if data.dtype.kind == "f":
        filled = np.ma.filled(data.astype(float), np.nan)
        return [float(v) if np.isfinite(v) else None for v in filled]
    return [str(v) for v in np.ma.filled(data.astype(str), "")]


def _export_template(table, export_names):
    """ECSV header of the export table (zero rows), with units and the origin."""
    template = QTable()
    for name in export_names:
        template[name] = table[name][:0]
    template[LABEL_COLUMN] = np.zeros(0, dtype=np.int16)
    if table.meta.get("origin") in (0, 1):
        template.meta["origin"] = int(table.meta["origin"])
    text = io.StringIO()
    template.write(text, format="ascii.ecsv")
    header = text.getvalue()
    return header[: header.rindex("\n", 0, len(header) - 1) + 1]  # without the names line


def _page_meta(table, rows, class_name, column, id_name, bands, rgb, size, title):
    probs = _probabilities(table, column)[rows]
    export_names = _export_columns(table, id_name)
    flags_name = find_column(table, f"{class_name}_flags")
    flags = (
        np.zeros(len(rows), int)
        if flags_name is None
        else np.ma.filled(np.ma.asarray(table[flags_name])[rows], 0).astype(int)
    )
    ids = _plain(table[id_name][rows])
    digest = hashlib.sha256(json.dumps([title, ids]).encode()).hexdigest()[:16]
    return {
        "title": title,
        "storage_key": f"clusterclf-inspect-{digest}",
        "n": len(rows),
        "chunk": CHUNK,
        "grid": _GRID,
        "size": int(size),
        "bands": list(bands),
        "rgb": [bands[i] for i in rgb],
        "class_column": class_name,
        "id_column": id_name,
        "label_column": LABEL_COLUMN,
        "ids": ids,
        "cls": [int(c) for c in fold_classes(table[class_name][rows])],
        "probs": [
            [None if not np.isfinite(p) else round(float(p), 4) for p in row] for row in probs
        ],
        "flags": [int(f) for f in flags],
        "flag_words": {str(bit): words for bit, (_, words) in FLAGS.items()},
        "codes": {str(code): words for code, words in LABEL_CODES.items()},
        "human": {
            name: _plain(table[name][rows]) for name in _human_columns(table, class_name, column)
        },
        "export_names": export_names,
        "export_values": [_plain(table[name][rows]) for name in export_names],
        "ecsv_header": _export_template(table, export_names),
    }


def _with_row(table):
    """The table with its 0-based row numbers as an id column ``row``."""
    out = QTable(table, copy=False)
    out["row"] = np.arange(len(table))
    return out


# ---- sprites --------------------------------------------------------------------


def _sheet(planes):
    """(n, S, S[, 3]) uint8 planes -> one image of _GRID columns, image row 0 at the top."""
    n, size = planes.shape[:2]
    n_rows = -(-n // _GRID)
    sheet = np.zeros((n_rows * size, _GRID * size) + planes.shape[3:], dtype=np.uint8)
    for j in range(n):
        r, c = divmod(j, _GRID)
        # Cutout row 0 is the bottom of the image: flip for display.
        sheet[r * size : (r + 1) * size, c * size : (c + 1) * size] = planes[j, ::-1]
    return sheet


def _jpeg(array):
    from PIL import Image

    out = io.BytesIO()
    # No chroma subsampling: it would smear the colours of 2-pixel stars.
    Image.fromarray(array).save(out, format="JPEG", quality=_JPEG_QUALITY, subsampling=0)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _sprites(data, rgb):
    """Data URLs of the colour sheet and of one sheet per band for a chunk of cutouts."""
    levels = np.round(stretch_cutouts(data) * 255).astype(np.uint8)
    composite = np.stack([levels[:, i] for i in rgb], axis=-1)
    return {
        "rgb": _jpeg(_sheet(composite)),
        "bands": [_jpeg(_sheet(levels[:, b])) for b in range(levels.shape[1])],
    }


def _json_block(name, value):
    # "</" cannot end the block early: JSON allows it escaped.
    text = json.dumps(value, separators=(",", ":")).replace("</", "<\\/")
    return f'<script type="application/json" id="{name}">{text}</script>\n'


_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="photutils_clusterclf inspect">
<title>__TITLE__: cluster candidates</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; background: #1e1e1e; color: #ddd; }
header { position: sticky; top: 0; background: #2b2b2b; padding: 6px 10px; z-index: 2;
         border-bottom: 1px solid #444; font-size: 13px; }
header h1 { font-size: 16px; margin: 0 0 4px 0; }
header label, header button, header span { margin-right: 10px; }
input[type=number] { width: 4.5em; }
#keys { color: #aaa; font-size: 12px; margin-top: 3px; }
#grid { display: flex; flex-wrap: wrap; gap: 6px; padding: 8px; }
.card { background: #2b2b2b; border: 2px solid #444; border-radius: 4px; padding: 4px;
        width: 190px; font-size: 12px; cursor: pointer; }
.card.current { border-color: #fff; }
.card.labelled { background: #233223; }
.card canvas { width: 96px; height: 96px; image-rendering: pixelated; display: block; }
.card .top { display: flex; gap: 6px; }
.card .bands { display: none; flex-wrap: wrap; gap: 2px; margin-top: 4px; }
.card.open .bands { display: flex; }
.card .bands canvas { width: 62px; height: 62px; }
.card .bands div { font-size: 10px; text-align: center; }
.c1 { color: #ff6b6b; } .c2 { color: #6bdc6b; } .c3 { color: #78a6ff; } .c4 { color: #ffe66b; }
.flags { color: #f0a040; }
.label, .human { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.label { font-weight: bold; color: #fff; }
.human { color: #bbb; font-size: 11px; }
.id { font-weight: bold; }
.bar { display: inline-block; height: 6px; background: #888; vertical-align: middle; }
#export-panel { padding: 8px; }
#export-text { width: 95%; height: 12em; font-family: monospace; font-size: 11px; }
</style>
</head>
<body>
<header>
<h1 id="title"></h1>
<div>
<span>class:</span>
<label><input type="checkbox" class="fclass" value="1" checked>1</label>
<label><input type="checkbox" class="fclass" value="2" checked>2</label>
<label><input type="checkbox" class="fclass" value="3" checked>3</label>
<label><input type="checkbox" class="fclass" value="4" checked>4</label>
<label><input type="checkbox" class="fclass" value="0" checked>none</label>
<label>probability of class from <input type="number" id="pmin" min="0" max="1" step="0.05"
 value="0"> to <input type="number" id="pmax" min="0" max="1" step="0.05" value="1"></label>
<label><input type="checkbox" id="unlabelled">unlabelled only</label>
</div>
<div>
<button id="prev">&larr; page</button><span id="pageinfo"></span>
<button id="next">page &rarr;</button>
<span id="counts"></span>
<button id="export-ecsv">export ECSV</button><button id="export-csv">export CSV</button>
<button id="clear">forget labels</button>
</div>
<div id="keys"></div>
</header>
<main id="grid"></main>
<section id="export-panel" hidden>
<div>Export (also downloaded; this text is the same file):</div>
<textarea id="export-text" readonly></textarea>
</section>
"""

_SCRIPT = r"""
"use strict";
(function () {
const M = JSON.parse(document.getElementById("meta").textContent);
const $ = (id) => document.getElementById(id);
const S = M.size, PAGE = M.chunk;
let labels = {};
try { labels = JSON.parse(localStorage.getItem(M.storage_key) || "{}"); } catch (e) { labels = {}; }
const save = () => { try { localStorage.setItem(M.storage_key, JSON.stringify(labels)); } catch (e) {} };
const sheets = {};
let view = [], page = 0, current = 0, prefix = null;

function chunkData(k) {
  const el = $("chunk-" + k);
  return el ? JSON.parse(el.textContent) : null;
}
function load(url) {
  return new Promise((ok) => { const im = new Image(); im.onload = () => ok(im); im.src = url; });
}
function chunk(k) {
  // The JSON of a page's sheets, once the browser has read that far into the file.
  return new Promise((resolve) => {
    const go = () => resolve(chunkData(k));
    if ($("chunk-" + k)) go(); else document.addEventListener("DOMContentLoaded", go);
  });
}
function sheet(k, what) {
  // Decoded once, when a page needs it: "rgb" for the grid, "bands" on demand.
  const key = what + k;
  if (!sheets[key]) {
    sheets[key] = chunk(k).then((d) => what === "rgb" ? load(d.rgb) : Promise.all(d.bands.map(load)));
  }
  return sheets[key];
}
function draw(canvas, image, j) {
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(image, (j % M.grid) * S, Math.floor(j / M.grid) * S, S, S, 0, 0, S, S);
}
function topProb(i) {
  const c = M.cls[i];
  return c > 0 && M.probs[i][c - 1] !== null ? M.probs[i][c - 1] : null;
}
function keyOf(i) { return String(M.ids[i]); }
function esc(v) {
  return String(v ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]);
}
function filter() {
  const classes = new Set([...document.querySelectorAll(".fclass")].filter((b) => b.checked).map((b) => +b.value));
  const lo = +$("pmin").value, hi = +$("pmax").value, onlyNew = $("unlabelled").checked;
  view = [];
  for (let i = 0; i < M.n; i++) {
    if (!classes.has(M.cls[i])) continue;
    const p = topProb(i);
    if (p !== null && (p < lo || p > hi)) continue;
    if (onlyNew && keyOf(i) in labels) continue;
    view.push(i);
  }
  page = 0; current = 0; render();
}
function flagWords(f) {
  return Object.keys(M.flag_words).filter((b) => f & +b).map((b) => M.flag_words[b]).join("; ");
}
function card(i) {
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.index = i;
  const c = M.cls[i];
  const probs = M.probs[i].map((p, k) => p === null ? "" :
    `<div class="c${k + 1}">${k + 1}: ${p.toFixed(2)} <span class="bar" style="width:${Math.round(p * 40)}px"></span></div>`).join("");
  const human = Object.keys(M.human).map((name) =>
    `<div class="human" title="${esc(name)}">${esc(M.human[name][i] ?? "-")} ${esc(name.replace(/^PHANGS_CLUSTER_CLASS_/, ""))}</div>`).join("");
  const flags = M.flags[i] ? `<div class="flags">${flagWords(M.flags[i])}</div>` : "";
  div.innerHTML = `<div class="top"><canvas width="${S}" height="${S}"></canvas><div>
    <div class="id" title="${esc(M.id_column)}">${esc(M.ids[i])}</div>
    <div class="c${c}" title="${esc(M.class_column)}">machine: ${c || "none"}</div>${probs}</div></div>
    ${human}${flags}<div class="label"></div>
    <div class="bands"></div>`;
  div.addEventListener("click", () => { current = view.indexOf(i) - page * PAGE; mark(); openBands(div); });
  return div;
}
function openBands(div) {
  div.classList.toggle("open");
  const box = div.querySelector(".bands");
  if (box.children.length) return;
  const i = +div.dataset.index;
  box.innerHTML = M.bands.map((b) => `<div><canvas width="${S}" height="${S}"></canvas>${esc(b)}</div>`).join("");
  sheet(Math.floor(i / PAGE), "bands").then((ims) => {
    const canvases = box.querySelectorAll("canvas");
    ims.forEach((im, b) => draw(canvases[b], im, i % PAGE));
    div.dataset.bands = "drawn";
  });
}
function showLabel(div) {
  const code = labels[keyOf(+div.dataset.index)];
  const label = div.querySelector(".label");
  label.textContent = code === undefined ? "" : `label ${code}: ${M.codes[code]}`;
  label.title = label.textContent;
  div.classList.toggle("labelled", code !== undefined);
}
function render() {
  const grid = $("grid");
  grid.textContent = "";
  const pages = Math.max(1, Math.ceil(view.length / PAGE));
  page = Math.min(page, pages - 1);
  $("pageinfo").textContent = `${page + 1} / ${pages}`;
  const items = view.slice(page * PAGE, (page + 1) * PAGE);
  const done = [];
  for (const i of items) {
    const div = card(i);
    grid.appendChild(div);
    showLabel(div);
    const k = Math.floor(i / PAGE), j = i % PAGE;
    done.push(sheet(k, "rgb").then((im) => draw(div.querySelector("canvas"), im, j)));
  }
  Promise.all(done).then(() => {
    if (!performance.getEntriesByName("clusterclf-first-page").length) performance.mark("clusterclf-first-page");
    document.body.dataset.ready = "1";
  });
  counts(); mark();
}
function counts() {
  $("counts").textContent = `${view.length} of ${M.n} shown, ${Object.keys(labels).length} labelled`;
}
function mark() {
  const cards = $("grid").children;
  current = Math.max(0, Math.min(current, cards.length - 1));
  for (let c = 0; c < cards.length; c++) cards[c].classList.toggle("current", c === current);
  if (cards[current]) cards[current].scrollIntoView({block: "nearest"});
}
function setLabel(code) {
  const div = $("grid").children[current];
  if (!div) return;
  const key = keyOf(+div.dataset.index);
  if (code === null) delete labels[key]; else labels[key] = code;
  save(); showLabel(div); counts();
  move(1);
}
function move(step) {
  const n = $("grid").children.length;
  if (current + step >= n && (page + 1) * PAGE < view.length) { page++; current = 0; render(); return; }
  if (current + step < 0 && page > 0) { page--; current = PAGE - 1; render(); return; }
  current += step; mark();
}
function field(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return String(v);
  return /[\s,"]/.test(v) || v === "" ? '"' + v.replace(/"/g, '""') + '"' : v;
}
function exportTable(format) {
  const sep = format === "ecsv" ? " " : ",";
  const names = M.export_names.concat([M.label_column]);
  const lines = [names.join(sep)];
  for (let i = 0; i < M.n; i++) {
    const code = labels[keyOf(i)];
    if (code === undefined) continue;
    lines.push(M.export_values.map((col) => field(col[i])).concat([String(code)]).join(sep));
  }
  const text = (format === "ecsv" ? M.ecsv_header : "") + lines.join("\n") + "\n";
  $("export-text").value = text;
  $("export-panel").hidden = false;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], {type: "text/plain"}));
  a.download = `${M.title.replace(/[^\w.-]+/g, "_")}_labels.${format}`;
  document.body.appendChild(a); a.click(); a.remove();
}
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.ctrlKey || e.metaKey || e.altKey) return;
  if (/^[0-9]$/.test(e.key)) {
    const d = +e.key;
    if (prefix !== null) { prefix = null; setLabel(10 + d); }
    else if (d === 0) prefix = 0;
    else setLabel(d);
  } else if (e.key === "ArrowRight" || e.key === "j") move(1);
  else if (e.key === "ArrowLeft" || e.key === "k") move(-1);
  else if (e.key === "Backspace" || e.key === "Delete" || e.key === "x") setLabel(null);
  else if (e.key === "b") { const d = $("grid").children[current]; if (d) openBands(d); }
  else if (e.key === "n") { if ((page + 1) * PAGE < view.length) { page++; current = 0; render(); } }
  else if (e.key === "p") { if (page > 0) { page--; current = 0; render(); } }
  else return;
  e.preventDefault();
});
document.querySelectorAll(".fclass").forEach((b) => b.addEventListener("change", filter));
$("unlabelled").addEventListener("change", filter);
["pmin", "pmax"].forEach((id) => $(id).addEventListener("input", filter));
$("prev").onclick = () => { if (page > 0) { page--; render(); } };
$("next").onclick = () => { if ((page + 1) * PAGE < view.length) { page++; render(); } };
$("export-ecsv").onclick = () => exportTable("ecsv");
$("export-csv").onclick = () => exportTable("csv");
$("clear").onclick = () => { if (confirm("Forget all labels of this page?")) { labels = {}; save(); render(); } };
$("title").textContent = `${M.title}: ${M.n} candidates, ${M.class_column}`;
$("keys").textContent = "keys: 1-4 class, 5-9 PHANGS codes (" +
  [5, 6, 7, 8, 9].map((c) => `${c} ${M.codes[c]}`).join(", ") +
  "), 0 then d: code 1d (10-19 artefacts); x clear; j/k or arrows move; b bands; n/p page";
filter();
})();
"""
