"""Writes the demo's contact page from what pipelines/tagging.json made.

usage: contact_page.py DEMO_DIR [OUT.html]

DEMO_DIR is the demo's folder (demo-out): results/ holds the join's
result per video (NAME.json, the dir sink), batch/*.jsonl the reduces'
results (the jsonl sink), videos/failed/ the dead letters
(NAME.error.json, the dir source). The page (DEMO_DIR/index.html unless
OUT is given) shows the batch's counts as charts (inline SVG), then
each video's thumbnail, which plays its sprite sheet as the pointer moves
over it (the cues of its WebVTT index), with its tags and facts, then the
dead items with their reasons. Everything is in the page or beside it: no
script, style or font from anywhere else.
"""
import glob
import html
import json
import os
import sys

# A swatch for each colour name hopper-tag gives.
SWATCH = {"black": "#111", "white": "#f4f4f4", "gray": "#8a8a8a",
          "red": "#d22", "orange": "#f80", "yellow": "#ec0",
          "green": "#2a4", "cyan": "#1bc", "blue": "#23c",
          "purple": "#83c", "pink": "#e4a"}
BAR = "#4a6fa5"


def esc(s):
    return html.escape(str(s), quote=True)


def load_results(folder):
    out = []
    for f in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(f) as fh:
            out.append(json.load(fh))
    return out


def load_batch(path):
    """A reduce's result lines: the sink's records, or the bare results."""
    rows = []
    if os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                if line.strip():
                    rec = json.loads(line)
                    rows.append(rec.get("result", rec))
    return rows


def bucket_labels(edges, n):
    """Labels for n histogram counts over the bucket edges."""
    e = [f"{x:g}" for x in edges]
    if n == len(e) - 1:
        return [f"{e[i]}–{e[i + 1]} s" for i in range(n)]
    if n == len(e) + 1:
        return [f"< {e[0]} s"] + [f"{e[i]}–{e[i + 1]} s"
                                  for i in range(len(e) - 1)] + \
            [f"≥ {e[-1]} s"]
    return [f"≥ {x} s" for x in e[:n]]


def bars_of(rows):
    """(label, count) pairs from a reduce's results: one per key of a
    count by key, or a histogram's counts (by value, or by bucket)."""
    bars = []
    for r in rows:
        v = r["counts"] if "counts" in r else r.get("value")
        if isinstance(v, (int, float)):
            bars.append((str(r.get("key")), v))
        elif isinstance(v, list):
            labels = bucket_labels(r.get("buckets", []), len(v))
            # The open-ended buckets at either end only when used.
            bars += [(lb, c) for lb, c in zip(labels, v)
                     if c or not lb[0] in "<≥"]
        elif isinstance(v, dict):
            bars += [(str(k), c) for k, c in v.items()
                     if isinstance(c, (int, float))]
    return bars


def chart(title, bars, colours=False, sort=True):
    """An SVG bar chart, one labelled bar per (label, count)."""
    if sort:
        bars = sorted(bars, key=lambda b: (-b[1], b[0]))
    if not bars:
        return (f'<figure class="chart-box"><figcaption>{esc(title)}'
                '</figcaption><p>nothing counted</p></figure>')
    top = max(c for _, c in bars) or 1
    row, lw, bw = 22, 110, 190
    h = row * len(bars) + 4
    parts = []
    for i, (label, count) in enumerate(bars):
        y = i * row + 2
        w = max(2, round(bw * count / top))
        fill = SWATCH.get(label, BAR) if colours else BAR
        parts.append(
            f'<text x="{lw - 6}" y="{y + 15}" text-anchor="end">'
            f'{esc(label)}</text>'
            f'<rect x="{lw}" y="{y + 3}" width="{w}" height="{row - 6}" '
            f'fill="{fill}" stroke="#555" stroke-width="0.5">'
            f'<title>{esc(label)}: {count:g}</title></rect>'
            f'<text x="{lw + w + 4}" y="{y + 15}">{count:g}</text>')
    return (f'<figure class="chart-box"><figcaption>{esc(title)}'
            f'</figcaption><svg class="chart" width="{lw + bw + 40}" '
            f'height="{h}" role="img" aria-label="{esc(title)}">'
            f'{"".join(parts)}</svg></figure>')


def rel(path, base):
    return os.path.relpath(os.path.abspath(path), base)


def card(r, base):
    thumb = rel(r["thumbnail"], base)
    vtt = ""
    if r.get("vtt") and os.path.exists(r["vtt"]):
        with open(r["vtt"]) as fh:
            vtt = fh.read()
    sheet = rel(r["sheet"], base) if r.get("sheet") else ""
    chips = "".join(
        f'<span class="tag"><i style="background:{SWATCH[t]}"></i>{esc(t)}'
        f'</span>' if t in SWATCH else f'<span class="tag">{esc(t)}</span>'
        for t in r.get("tags", []))
    frames = "".join(
        f'<img class="frame" src="{esc(rel(f["image"], base))}" '
        f'alt="{esc(r["name"])} at {f["time"]:.2f} s" title="'
        f'{f["time"]:.2f} s{" (after a cut)" if f.get("scene") else ""}: '
        f'{esc(f.get("colour"))}, brightness {f.get("brightness", 0):.2f}, '
        f'sharpness {f.get("sharpness", 0):.0f}, motion '
        f'{f.get("motion", 0):.3f}">' for f in r.get("frames", []))
    coded = r.get("coded", "?")
    shape = (f' (stored {esc(coded)}'
             + (f', pixels {esc(r["sar"])}' if r.get("sar") not in
                (None, "1:1", "0:1") else "")
             + (f', turned {r["rotation"]}°' if r.get("rotation") else "")
             + ")") if coded != r.get("display") else ""
    errors = "".join(f'<li>{esc(e.get("stage", "?"))}: '
                     f'{esc(e.get("error", "?"))}</li>'
                     for e in r.get("errors", []))
    return f"""<figure class="video">
<div class="scrub" data-vtt="{esc(vtt)}" data-sheet="{esc(sheet)}"
     data-duration="{r.get('duration', 0)}">
<img class="thumb" src="{esc(thumb)}" alt="{esc(r['name'])}">
<div class="tile"></div><div class="bar"></div>
<img class="sheet" src="{esc(sheet)}" alt="" hidden>
</div>
<figcaption><b>{esc(r['name'])}</b>
<div class="facts">{esc(r.get('display'))}{shape} ·
<span title="{esc(r.get('container_long', ''))}">{esc(r.get('container'))}</span>
· {esc(r.get('codec'))} · {r.get('duration', 0):.1f} s</div>
<div class="tags">{chips}</div>
<div class="frames">{frames}</div>
{f'<ul class="part-errors">{errors}</ul>' if errors else ''}
</figcaption></figure>"""


def dead_items(folder, base):
    items = []
    for f in sorted(glob.glob(os.path.join(folder, "*.error.json"))):
        with open(f) as fh:
            rec = json.load(fh)
        src = f[:-len(".error.json")]
        items.append(
            f'<li><b>{esc(os.path.basename(src))}</b> '
            f'<code>{esc(rel(src, base))}</code>: '
            f'{esc(rec.get("error", "?"))} '
            f'<small>({rec.get("attempts", "?")} attempt(s))</small></li>')
    return items


SCRIPT = r"""
// Hovering a thumbnail shows the sprite-sheet tile of the time under the
// pointer, found in the video's WebVTT cues ("sheet.jpg#xywh=x,y,w,h").
function cues(text) {
  const ms = t => { const p = t.trim().split(':').map(Number);
                    return ((p[0] * 60 + p[1]) * 60 + p[2]) * 1000; };
  const out = [];
  for (const block of text.split(/\n\n+/)) {
    const lines = block.trim().split('\n');
    const i = lines.findIndex(l => l.includes('-->'));
    if (i < 0 || !lines[i + 1]) continue;
    const [a, b] = lines[i].split('-->');
    const m = /#xywh=(\d+),(\d+),(\d+),(\d+)/.exec(lines[i + 1]);
    if (m) out.push({start: ms(a), end: ms(b), x: +m[1], y: +m[2],
                     w: +m[3], h: +m[4]});
  }
  return out;
}
for (const box of document.querySelectorAll('.scrub')) {
  const list = cues(box.dataset.vtt || '');
  const tile = box.querySelector('.tile'), bar = box.querySelector('.bar');
  const img = box.querySelector('.thumb');
  if (!list.length) continue;
  box.addEventListener('mousemove', ev => {
    const r = img.getBoundingClientRect();
    const f = Math.min(Math.max((ev.clientX - r.left) / r.width, 0), 0.999);
    const t = f * list[list.length - 1].end;
    const c = list.find(c => t >= c.start && t < c.end) || list[list.length - 1];
    const k = r.width / c.w;
    tile.style.backgroundImage = `url("${box.dataset.sheet}")`;
    tile.style.backgroundPosition = `${-c.x * k}px ${-c.y * k}px`;
    const sheet = box.querySelector('.sheet');
    tile.style.backgroundSize = `${sheet.naturalWidth * k}px auto`;
    tile.style.display = 'block';
    bar.style.width = (f * 100) + '%';
  });
  box.addEventListener('mouseleave', () => {
    tile.style.display = 'none'; bar.style.width = '0';
  });
}
// For the tests: images decoded of all, and charts with bars of all.
window.addEventListener('load', () => {
  const all = [...document.images];
  const ok = all.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.images = ok + '/' + all.length;
  const charts = [...document.querySelectorAll('svg.chart')];
  const drawn = charts.filter(s => s.querySelectorAll('rect').length > 0 &&
                                   s.getBBox().width > 0).length;
  document.body.dataset.charts = drawn + '/' + charts.length;
  // With #selftest: a pointer at 3/4 of each thumbnail must show a tile
  // of its sheet, the one whose cue holds 3/4 of the video's time.
  if (location.hash !== '#selftest') return;
  const boxes = [...document.querySelectorAll('.scrub')];
  const shown = boxes.filter(box => {
    const r = box.querySelector('.thumb').getBoundingClientRect();
    box.dispatchEvent(new MouseEvent('mousemove', {
      clientX: r.left + r.width * 0.75, clientY: r.top + 5}));
    const tile = box.querySelector('.tile');
    return tile.style.display === 'block' &&
           tile.style.backgroundImage.includes(box.dataset.sheet) &&
           tile.style.backgroundPosition !== '0px 0px';
  }).length;
  document.body.dataset.scrub = shown + '/' + boxes.length;
});
"""

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 2em; background: #f6f6f4;
       color: #222; }
h1 { margin-bottom: .2em; } .sub { color: #666; margin-top: 0; }
.grid { display: flex; flex-wrap: wrap; gap: 1.2em; }
figure.video { margin: 0; padding: .6em; background: #fff; width: 330px;
               border: 1px solid #ddd; border-radius: 4px; }
.scrub { position: relative; width: 320px; height: 240px; background: #000;
         display: flex; align-items: center; justify-content: center;
         cursor: ew-resize; overflow: hidden; }
.scrub .thumb { max-width: 320px; max-height: 240px; display: block; }
.scrub .tile { position: absolute; inset: 0; display: none;
               background-repeat: no-repeat; background-color: #000; }
.scrub .bar { position: absolute; left: 0; bottom: 0; height: 4px; width: 0;
              background: #f80; }
.facts { color: #555; margin: .3em 0; }
.tag { display: inline-block; margin: 2px 3px 2px 0; padding: 1px 6px;
       background: #eef; border-radius: 9px; font-size: 12px; }
.tag i { display: inline-block; width: 9px; height: 9px; margin-right: 4px;
         border: 1px solid #555; border-radius: 50%; }
.frames { display: flex; gap: 3px; margin-top: .4em; }
.frames img { height: 36px; border: 1px solid #ccc; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5em; }
.chart-box { margin: 0; background: #fff; padding: .6em; border: 1px solid #ddd; }
.chart-box figcaption { font-weight: 600; margin-bottom: .4em; }
svg.chart text { font: 12px system-ui, sans-serif; fill: #333; }
.dead li { color: #a00; margin: .3em 0; } .dead code { color: #555; }
.part-errors { color: #a00; font-size: 12px; }
"""


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[2])
    demo = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) == 3 else os.path.join(demo,
                                                              "index.html")
    base = os.path.dirname(os.path.abspath(out))
    results = load_results(os.path.join(demo, "results"))
    dead = dead_items(os.path.join(demo, "videos", "failed"), base)
    batch = {n: load_batch(os.path.join(demo, "batch", n + ".jsonl"))
             for n in ("frame_colours", "colours", "codecs", "sizes",
                       "durations", "duration_mean")}
    mean = next((r["value"] for r in batch["duration_mean"]
                 if "value" in r), None)
    if isinstance(mean, dict):
        mean = mean.get("value")
    frames = sum(len(r.get("frames", [])) for r in results)
    counts = [
        ("frame colours", bars_of(batch["frame_colours"])),
        ("video colours", bars_of(batch["colours"])),
        ("codecs", bars_of(batch["codecs"])),
        ("display sizes", bars_of(batch["sizes"])),
        ("durations", bars_of(batch["durations"])),
    ]
    charts = [
        chart("Dominant colour of each frame", counts[0][1], colours=True),
        chart("Dominant colour of each video", counts[1][1], colours=True),
        chart("Videos by codec", counts[2][1]),
        chart("Videos by display size", counts[3][1]),
        chart("Videos by duration"
              + (f" (mean {mean:.2f} s)" if isinstance(mean, (int, float))
                 else ""), counts[4][1], sort=False),
    ]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hopper: tagged videos</title>
<style>{STYLE}</style></head>
<body data-images="pending" data-charts="pending">
<h1>hopper: {len(results)} video(s) tagged, {len(dead)} dead</h1>
<p class="sub">{frames} frames picked at scene changes and spread times,
each tagged by its pixels; hover a thumbnail to scrub through its sprite
sheet.</p>
<div class="charts">{''.join(charts)}</div>
<h2>The videos</h2>
<div class="grid">{''.join(card(r, base) for r in results)}</div>
<h2>Dead items</h2>
<ul class="dead">{''.join(dead) or '<li>none</li>'}</ul>
<script>{SCRIPT}</script>
</body></html>
"""
    tmp = out + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(page)
    os.replace(tmp, out)
    for title, bars in counts:
        if title != "durations":
            bars = sorted(bars, key=lambda b: (-b[1], b[0]))
        print(f"  {title}: " + ", ".join(
            f"{label} {c:g}" for label, c in bars if c) or "none")
    print(f"contact page: {out} ({len(results)} videos, {frames} frames, "
          f"{len(dead)} dead)")


if __name__ == "__main__":
    main()
