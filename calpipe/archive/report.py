"""A static HTML site of an archive: an index of roots with thumbnails, a page per product.

``index.html`` lists every root (its default version) with its thumbnail, filterable by
detector, filter and date in the browser. ``products/<root>.html`` shows the previews, the
metadata of the calibrated product, the step table (status, wall time, peak memory), a
DQ summary, the reference files with checksums, the inputs and every version. Images are
copied into ``img/`` so the site stands alone. When the page has loaded, the index records
in ``<body data-images="loaded/total">`` how many of its images the browser could decode.
"""

import html
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from calpipe import dqflags

_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:middle;font-size:13px}
th{background:#eee} img.thumb{width:150px} .filters label{margin-right:1em}
"""
_FILTER_SCRIPT = """
function applyFilters(){
  var d=document.getElementById('f-detector').value, f=document.getElementById('f-filter').value,
      a=document.getElementById('f-after').value, b=document.getElementById('f-before').value;
  document.querySelectorAll('tr.root').forEach(function(r){
    var t=r.dataset.start.slice(0,10);
    var show=(!d||r.dataset.detector===d)&&(!f||r.dataset.filter===f)&&(!a||t>=a)&&(!b||t<=b);
    r.style.display=show?'':'none';});
}
"""
_LOAD_SCRIPT = """
window.addEventListener('load',function(){
  var imgs=document.querySelectorAll('img'), ok=0;
  imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0){ok++;}});
  document.body.dataset.images=ok+'/'+imgs.length;
});
"""


def write_report(archive, out):
    """Write the site of ``archive`` (an :class:`~calpipe.archive.archive.Archive`) into ``out``.

    The site is built in a temporary folder beside ``out`` and swapped in at the end, so an
    interrupted run leaves the previous site whole. Returns the path of ``index.html``."""
    out = Path(out)
    build = out.with_name(f".{out.name}.{uuid.uuid4().hex}")
    try:
        (build / "img").mkdir(parents=True)
        (build / "products").mkdir()
        rows = [_product_page(archive, build, root) for root in archive.root_rows()]
        _write(build / "index.html", _index(rows))
        if out.exists():
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex}")
            os.rename(out, old)
            os.rename(build, out)
            shutil.rmtree(old)
        else:
            os.rename(build, out)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return out / "index.html"


def _product_page(archive, site, root_row):
    root = root_row["root"]
    versions = archive.versions(root)
    default = next((v for v in versions if v["default"]), versions[-1])
    files = {str(r["type"]): Path(str(r["path"])) for r in archive.find(root=root, version=default["version"])}
    images = {}
    for kind in ("thumb", "preview"):
        if kind in files:
            name = f"{root}_v{default['version']:02d}_{kind}.png"
            shutil.copyfile(files[kind], site / "img" / name)
            images[kind] = f"img/{name}"
    made = archive.provenance(root, default["version"])
    product = next((t for t in ("cal", "rate", "uncal") if t in files), None)
    body = [f"<p><a href='../index.html'>all products</a></p><h1>{_e(root)}</h1>"]
    if "preview" in images:
        body.append(f"<img src='../{images['preview']}' alt='preview of {_e(root)}'>")
    body.append(_h2("Exposure") + _table(["key", "value"], [
        [k, root_row[k]] for k in ("program", "observation", "visit", "exposure", "instrument", "detector",
                                   "optical_element", "exp_type", "start_time", "end_time", "s_region",
                                   "first_ingest", "last_ingest")]))
    if product:
        meta = archive.metadata(root, product, default["version"])
        body.append(_h2(f"Metadata ({product}, v{default['version']:02d})")
                    + _table(["column", "value"], [[k, v] for k, v in meta.items()]))
    steps = sorted(set(made["cal_step"]) | set(made["resources"]))
    body.append(_h2("Steps") + _table(["step", "status", "wall (s)", "peak RSS (MB)"], [
        [s, made["cal_step"].get(s, "-"), made["resources"].get(s, {}).get("wall_seconds", "-"),
         made["resources"].get(s, {}).get("peak_rss_mb", "-")] for s in steps]))
    if product in ("cal", "rate"):
        body.append(_h2("Data quality") + _table(["flag", "pixels", "fraction"], _dq_summary(files[product])))
    body.append(_h2("Reference files") + _table(["type", "file", "checksum"], [
        [t, r["name"], r["checksum"] or "-"] for t, r in sorted(made["ref_files"].items())]))
    body.append(_h2("Inputs") + _table(["file", "checksum"], sorted(made["inputs"].items())))
    body.append(_h2("Versions") + _table(["version", "default", "last", "created", "calpipe", "files"], [
        [v["version"], v["default"], v["last"], v["created"], v["calpipe_version"] or "-", " ".join(v["types"])]
        for v in versions]))
    _write(site / "products" / f"{root}.html", _page(root, "".join(body)))
    return dict(root_row, version=default["version"], nversions=len(versions), thumb=images.get("thumb"))


def _dq_summary(path):
    """Pixels per DQ flag set in a rate/cal image (flags that occur only)."""
    from calpipe import datamodels

    with datamodels.open(path) as model:
        dq = np.asarray(model.dq)
    total = dq.size
    rows = []
    for name, bit in dqflags.pixel.items():
        count = int(np.count_nonzero(dq & bit))
        if count:
            rows.append([name, count, f"{count / total:.4%}"])
    rows.append(["(any)", int(np.count_nonzero(dq)), f"{np.count_nonzero(dq) / total:.4%}"])
    return rows


def _index(rows):
    def options(key):
        values = sorted({r[key] for r in rows if r[key]})
        return "<option value=''>all</option>" + "".join(f"<option>{_e(v)}</option>" for v in values)

    filters = (
        "<p class='filters' oninput='applyFilters()' onchange='applyFilters()'>"
        f"<label>detector <select id='f-detector'>{options('detector')}</select></label>"
        f"<label>filter <select id='f-filter'>{options('optical_element')}</select></label>"
        "<label>from <input type='date' id='f-after'></label>"
        "<label>to <input type='date' id='f-before'></label></p>"
    )
    lines = []
    for r in rows:
        thumb = f"<img class='thumb' src='{r['thumb']}' alt='thumbnail of {_e(r['root'])}'>" if r["thumb"] else "-"
        lines.append(
            f"<tr class='root' data-detector='{_e(r['detector'] or '')}' data-filter='{_e(r['optical_element'] or '')}'"
            f" data-start='{_e(r['start_time'] or '')}'><td>{thumb}</td>"
            f"<td><a href='products/{_e(r['root'])}.html'>{_e(r['root'])}</a></td>"
            + "".join(f"<td>{_e(r[k])}</td>" for k in ("program", "detector", "optical_element", "exp_type",
                                                       "start_time"))
            + f"<td>v{r['version']:02d} of {r['nversions']}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("thumbnail", "root", "program", "detector", "filter", "exposure type",
                                              "start", "default version"))
    body = (f"<h1>Archive: {len(rows)} products</h1>{filters}<table><tr>{head}</tr>{''.join(lines)}</table>"
            f"<script>{_FILTER_SCRIPT}</script>")
    return _page("calpipe archive", body)


def _page(title, body):
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_STYLE}</style><script>{_LOAD_SCRIPT}</script></head><body>{body}</body></html>\n")


def _h2(text):
    return f"<h2>{_e(text)}</h2>"


def _table(header, rows):
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _e(value):
    return html.escape("-" if value is None else str(value), quote=True)


def _write(path, text):
    path.write_text(text, encoding="utf-8")
