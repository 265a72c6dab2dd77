"""Writes the demo's contact page: every thumbnail with its source's name,
then the dead items with their errors.

usage: contact_page.py RESULTS_DIR FAILED_DIR OUT.html
RESULTS_DIR holds the dir sink's ID.json files (the thumbnail worker's
results); FAILED_DIR the dir source's NAME.error.json dead letters.
"""
import html
import json
import os
import sys


def rel(path, base):
    return os.path.relpath(os.path.abspath(path), base)


def card(name, res, base):
    imgs = "".join(
        f'<img src="{html.escape(rel(f, base))}" alt="{html.escape(name)}" '
        f'width="{res.get("width", "")}" height="{res.get("height", "")}">'
        for f in res.get("files", []) if not f.endswith(".vtt"))
    facts = (f'{res.get("codec", "?")} in {res.get("container", "?")}, '
             f'{res.get("source_width", "?")}x{res.get("source_height", "?")}, '
             f'{res.get("duration", 0):.1f} s; frame at '
             f'{res.get("position", 0):.2f} s in {res.get("ms", 0):.0f} ms')
    return (f'<figure>{imgs}<figcaption><b>{html.escape(name)}</b><br>'
            f'<small>{html.escape(facts)}</small></figcaption></figure>')


def main():
    results, failed, out = sys.argv[1:4]
    base = os.path.dirname(os.path.abspath(out))
    cards, dead = [], []
    for f in sorted(os.listdir(results)):
        if f.endswith(".json"):
            with open(os.path.join(results, f)) as fh:
                cards.append(card(f[:-5], json.load(fh), base))
    if os.path.isdir(failed):
        for f in sorted(os.listdir(failed)):
            if f.endswith(".error.json"):
                with open(os.path.join(failed, f)) as fh:
                    rec = json.load(fh)
                dead.append(f'<li><b>{html.escape(f[:-11])}</b>: '
                            f'{html.escape(rec.get("error", "?"))} '
                            f'<small>({rec.get("attempts", "?")} attempt(s))'
                            f'</small></li>')
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hopper thumbnails</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; background: #fafafa; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 1.2em; }}
figure {{ margin: 0; padding: .6em; background: #fff; border: 1px solid #ddd; }}
figure img {{ display: block; max-width: 320px; height: auto; }}
figcaption {{ margin-top: .4em; max-width: 320px; }}
.dead li {{ color: #a00; margin: .3em 0; }}
</style></head>
<body data-images="pending">
<h1>hopper: {len(cards)} thumbnail(s), {len(dead)} dead</h1>
<div class="grid">{''.join(cards)}</div>
<h2>Dead items</h2>
<ul class="dead">{''.join(dead) or '<li>none</li>'}</ul>
<script>
// For the tests: how many images decoded, of how many.
window.addEventListener('load', () => {{
  const all = [...document.images];
  const ok = all.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.images = ok + '/' + all.length;
}});
</script>
</body></html>
"""
    with open(out, "w") as fh:
        fh.write(page)
    print(f"contact page: {out} ({len(cards)} thumbnails, {len(dead)} dead)")


if __name__ == "__main__":
    main()
