"""A tiny document model shared by ``report.md`` and the self-contained ``report.html``.

Text may use three inline Markdown forms: ``**bold**``, ```code``` and ``[label](href)``.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

from bgresample.reports.tables import Table


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str


@dataclass
class Headline:
    """The report's one-line result, set apart at its top."""

    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Image:
    """A PNG at ``path`` (relative to the report's folder) with a caption under it."""

    path: str
    alt: str
    caption: str


@dataclass
class Code:
    text: str
    lang: str = ""


Block = Heading | Text | Headline | Bullets | Table | Image | Code


def to_markdown(blocks: list[Block]) -> str:
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + b.text)
        elif isinstance(b, Text):
            parts.append(b.text)
        elif isinstance(b, Headline):
            parts.append(f"> {b.text}")
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            parts.append(b.markdown())
        elif isinstance(b, Image):
            parts.append(f"![{b.alt}]({b.path})\n\n*{b.caption}*")
        else:
            parts.append(f"```{b.lang}\n{b.text.rstrip()}\n```")
    return "\n\n".join(parts) + "\n"


_INLINE = re.compile(r"\*\*(.+?)\*\*|`(.+?)`|\[(.+?)\]\((.+?)\)")


def _inline(text: str) -> str:
    """Escape ``text`` for HTML and convert the inline Markdown forms."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        bold, code, label, href = m.groups()
        if bold is not None:
            out.append(f"<strong>{_inline(bold)}</strong>")
        elif code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        else:
            out.append(f'<a href="{html.escape(href)}">{html.escape(label)}</a>')
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1360px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; padding-bottom: .15em; margin-top: 2em; }
.headline { font-size: 1.08em; background: #eef4fb; border-left: 4px solid #1f77b4;
            padding: .6em .9em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; white-space: nowrap; }
.wide { overflow-x: auto; }
th[colspan] { text-align: center; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #444; font-size: .92em; margin-top: .3em; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
code { background: #f3f3f3; padding: 0 .2em; }
"""


def to_html(blocks: list[Block], base: Path, title: str) -> str:
    """A self-contained page: images inlined as base64 ``data:`` URIs read from ``base``."""
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Text):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Headline):
            body.append(f'<p class="headline">{_inline(b.text)}</p>')
        elif isinstance(b, Bullets):
            items = "".join(f"<li>{_inline(i)}</li>" for i in b.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(b, Table):
            body.append(b.html())
        elif isinstance(b, Image):
            data = base64.b64encode((base / b.path).read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{html.escape(b.alt)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline(b.caption)}</figcaption></figure>"
            )
        else:
            body.append(f"<pre><code>{html.escape(b.text.rstrip())}</code></pre>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
