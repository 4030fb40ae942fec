"""Documents: a report as a list of blocks, rendered once as HTML and once as Markdown so the
two files never disagree. The HTML is one self-contained file: plots are embedded (SVG
inline, so every point's hover title works; PNG as base64 where no SVG exists).
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

# A document is a list of blocks, rendered once as HTML and once as Markdown so the two
# files never disagree:
#   ("h2", text, anchor) ("h3", text) ("p", text) ("note", text) ("list", [text]) ("pre", text)
#   ("table", headers or None, rows, numeric column indices, small column indices, note column)
#   where the note column (long text: warnings, reasons) becomes a full-width line under
#   its row in HTML, so that it does not squeeze the numbers into tall narrow cells
#   ("img", path to the PNG, alt text) ("details", summary, text)
#   ("svg", path to the SVG, path to the PNG, alt text): the SVG inline in HTML (its hover
#   titles work there), the PNG in Markdown

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1400px; padding: 1.5em 2em 4em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 2px solid #ddd; padding-bottom: 0.2em; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
div.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f3f6; position: sticky; top: 0; }
tbody.striped tr:nth-child(even) td { background: #fafafa; }
td { white-space: nowrap; }
td.wrap, td.subrow { white-space: normal; }
td.small { white-space: pre-line; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.small { font-size: 0.85em; color: #666; max-width: 30em; }
td.subrow { font-size: 0.82em; color: #8a5a00; padding-top: 0; border-top: none; white-space: pre-line; }
tr.has-subrow td { border-bottom: none; }
td.key { font-weight: 600; white-space: nowrap; background: #f6f8fa; }
.note { color: #555; font-size: 0.9em; }
nav { background: #f6f8fa; padding: 0.5em 1em; border-radius: 4px; font-size: 0.9em; }
nav a { margin-right: 1em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: 0.5em 0; }
figure.plot { margin: 0.5em 0; border: 1px solid #eee; max-width: 100%; }
figure.plot svg { max-width: 100%; height: auto; }
pre { background: #f6f8fa; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
details { margin: 0.3em 0; } summary { cursor: pointer; }
.status-ok { color: #1a7f37; } .status-failed { color: #cf222e; font-weight: bold; }
.status-skipped { color: #9a6700; }
"""


def render_html(title: str, subtitle: str, blocks: list) -> str:
    esc = html.escape
    toc = [f'<a href="#{b[2]}">{esc(b[1])}</a>' for b in blocks if b[0] == "h2"]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{esc(title)}</title>", f"<style>{CSS}</style></head><body>",
           f"<h1>{esc(title)}</h1>", f'<p class="note">{esc(subtitle)}</p>']
    if toc:
        out.append("<nav>" + " ".join(toc) + "</nav>")
    for block in blocks:
        kind = block[0]
        if kind == "h2":
            out.append(f'<h2 id="{block[2]}">{esc(block[1])}</h2>')
        elif kind == "h3":
            out.append(f"<h3>{esc(block[1])}</h3>")
        elif kind == "p":
            out.append(f"<p>{esc(block[1])}</p>")
        elif kind == "note":
            out.append(f'<p class="note">{esc(block[1])}</p>')
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{esc(str(i))}</li>" for i in block[1]) + "</ul>")
        elif kind == "pre":
            out.append(f"<pre>{esc(block[1])}</pre>")
        elif kind == "details":
            out.append(f"<details><summary>{esc(block[1])}</summary><pre>{esc(block[2])}</pre></details>")
        elif kind == "table":
            _, headers, rows, numeric, small, note = block
            out.append('<div class="scroll"><table>')
            if headers:
                out.append("<thead><tr>" + "".join(f"<th>{esc(str(h))}</th>" for i, h in enumerate(headers)
                                                    if i != note) + "</tr></thead>")
            # Zebra stripes only without note lines: a note line under a row would break them.
            out.append("<tbody>" if note is not None else '<tbody class="striped">')
            for row in rows:
                cells = []
                for i, cell in enumerate(row):
                    if i == note:
                        continue
                    css = "num" if i in numeric else "small" if i in small else ""
                    if headers is None and i == 0:
                        css = "key"
                    if headers and headers[i] == "status":
                        css = f"status-{cell}"
                    text = esc(str(cell))
                    if len(text) > 40 and css != "small":  # short cells stay on one line, long ones wrap
                        css = (css + " wrap").strip()
                    cells.append(f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>")
                text = str(row[note]) if note is not None and note < len(row) else ""
                if text:
                    out.append('<tr class="has-subrow">' + "".join(cells) + "</tr>")
                    out.append(f'<tr><td class="subrow" colspan="{len(cells)}">{esc(text)}</td></tr>')
                else:
                    out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table></div>")
        elif kind == "img":
            data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
            out.append(f'<img alt="{esc(block[2])}" src="data:image/png;base64,{data}">')
        elif kind == "svg":
            svg = Path(block[1]).read_text(encoding="utf-8")
            svg = svg[svg.index("<svg"):]  # the XML prolog and DOCTYPE are not allowed inside HTML
            out.append(f'<figure class="plot" role="img" aria-label="{esc(block[3])}">{svg}</figure>')
    out.append("</body></html>")
    return "\n".join(out)


def render_markdown(title: str, subtitle: str, blocks: list, base: Path) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    out = [f"# {title}", "", subtitle, ""]
    for block in blocks:
        kind = block[0]
        if kind == "h2":
            out += [f"## {block[1]}", ""]
        elif kind == "h3":
            out += [f"### {block[1]}", ""]
        elif kind in ("p", "note"):
            out += [block[1] if kind == "p" else f"*{block[1]}*", ""]
        elif kind == "list":
            out += [f"- {i}" for i in block[1]] + [""]
        elif kind == "pre":
            out += ["```", block[1], "```", ""]
        elif kind == "details":
            out += [f"<details><summary>{html.escape(block[1])}</summary>", "", "```", block[2], "```",
                    "", "</details>", ""]
        elif kind == "table":
            _, headers, rows, numeric, _small, _note = block
            width = len(headers) if headers else len(rows[0]) if rows else 0
            out.append("| " + " | ".join(cell(h) for h in (headers or [""] * width)) + " |")
            out.append("|" + "|".join("---:" if i in numeric else "---" for i in range(width)) + "|")
            out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
            out.append("")
        elif kind in ("img", "svg"):
            png, alt = (block[1], block[2]) if kind == "img" else (block[2], block[3])
            rel = Path(png).relative_to(base) if Path(png).is_relative_to(base) else Path(png)
            out += [f"![{alt}]({rel.as_posix()})", ""]
    return "\n".join(out) + "\n"


def plot_blocks(written: list, alt: str) -> list:
    """The blocks that show a plot written as PNG and SVG: inline SVG where there is one."""
    png = next((p for p in written if Path(p).suffix == ".png"), None)
    svg = next((p for p in written if Path(p).suffix == ".svg"), None)
    if svg and png:
        return [("svg", svg, png, alt)]
    return [("img", png, alt)] if png else []


def table(headers, rows, numeric=(), small=(), note=None):
    """headers None: a key/value table, keys in the first column."""
    return ("table", list(headers) if headers else None, [list(r) for r in rows], set(numeric), set(small), note)


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def h2(text: str):
    return ("h2", text, anchor(text))
