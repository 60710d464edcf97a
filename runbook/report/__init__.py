"""Rendering a run for people: the text of `audit.show`, Markdown and self-contained HTML exports.

One renderer per format (``text``, ``markdown``, ``html``), the SVG timeline on its own
(``timeline``), what they share in ``common``. Renderers read nothing: the caller gives them
the run (``runbook.exports`` reads it, its verification and its links from the store).
"""

from __future__ import annotations

from .common import item_label, session_lines, shown_params, symbol, takeover_line
from .html import LEGEND, html_report, page, run_sections
from .markdown import markdown, markdown_links
from .text import text
from .timeline import svg_timeline

__all__ = ["LEGEND", "html_report", "item_label", "markdown", "markdown_links", "page", "run_sections",
           "session_lines", "shown_params", "svg_timeline", "symbol", "takeover_line", "text"]
