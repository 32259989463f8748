"""User data in widgets that render Markdown, shown as the text it is.

Streamlit renders Markdown in st.markdown, st.caption, alerts, titles, labels, progress texts and
more. A product title, category name, file name or proxy header is data, not markup: a title
``![x](http://host/p.png)`` must not make every reviewer's browser fetch that address. Every such
string goes through :func:`plain` before it is put into a Markdown-rendering widget (dataframes,
select options and ``st.text`` show text as is and need nothing).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["plain"]

# Inline Markdown anywhere in a line: emphasis, code, links and images, HTML and autolinks,
# entities, strikethrough, LaTeX, tables and Streamlit's :directives[...] / :icons:.
_INLINE = re.compile(r"([\\`*_\[\]<&~$|])|(:)(?=\S)")
# Block Markdown at the start of the text: headings, quotes, lists, thematic breaks.
_BLOCK_START = re.compile(r"^(\s*)(#{1,6}(?=\s|$)|>|[-+](?=\s|$)|\d{1,9}(?=[.)](?:\s|$)))")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def plain(value: object) -> str:
    """``value`` as Markdown that renders as exactly its text, on one line.

    Control characters become spaces and bidirectional overrides become U+FFFD (they could make
    a title read backwards)."""
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in str(value))
    text = _BIDI.sub("\ufffd", text)
    text = _INLINE.sub(lambda m: "\\" + (m.group(1) or m.group(2)), text)
    match = _BLOCK_START.match(text)
    if match:
        lead, marker = match.groups()
        escaped = marker if marker[0].isdigit() else "\\" + marker
        rest = text[match.end() :]
        if marker[0].isdigit():  # 1. or 1) at the start: escape the punctuation after the number
            rest = "\\" + rest
        text = lead + escaped + rest
    return text
