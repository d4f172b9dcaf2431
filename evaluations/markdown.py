"""Markdown in prompts and responses, rendered to HTML that is safe to show raters.

Two layers: markdown-it renders CommonMark with raw HTML off (so any HTML in the text comes out as escaped
text), then nh3 (ammonia) keeps only ordinary formatting tags as defence in depth. Images are never shown:
an image URL would let a response's author see when, and from where, a rater reads it. An image becomes a
plain link to its URL instead, which the rater may open deliberately.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

Turn = dict[str, str]

ALLOWED_TAGS = frozenset(
    {
        *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6"),
        *("strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a"),
        *("table", "thead", "tbody", "tr", "th", "td"),
    }
)
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"
ROLE_LABELS = {"user": "User", "assistant": "Assistant", "system": "System"}


def _image_as_link(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    """An image as a link to it, labelled with its alt text (or its URL when there is none).

    Inside a link (a linked image) it is just that label: links cannot nest.
    """
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    label = escape(self.renderInlineAsText(token.children or [], options, env) or src)
    inside_link = sum(1 if t.type == "link_open" else -1 for t in tokens[:idx] if t.type in ("link_open", "link_close"))
    return label if inside_link else f'<a href="{escape(src)}">{label}</a>'


def _del_open(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return "<del>"


def _del_close(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return "</del>"


_markdown = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_markdown.add_render_rule("image", _image_as_link)
_markdown.add_render_rule("s_open", _del_open)  # ~~text~~ is deleted text: <del>, not markdown-it's <s>
_markdown.add_render_rule("s_close", _del_close)

_cleaner = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    attributes={"*": set(), "a": {"href"}},  # "*" empty: no title or lang anywhere
    url_schemes=set(LINK_SCHEMES),
    url_relative="deny",  # a relative link would point into this site
    link_rel=LINK_REL,
    strip_comments=True,
)


def render_markdown(text: str) -> str:
    """Markdown as sanitized HTML: formatting, tables, code and links (http, https, mailto) only."""
    return _cleaner.clean(_markdown.render(text))


def render_turns(turns: list[Turn]) -> str:
    """A conversation as HTML: one turn is just its markdown; several are each wrapped with their role."""
    if len(turns) == 1:
        return render_markdown(turns[0]["content"])
    parts = []
    for turn in turns:
        role = turn["role"]
        label = ROLE_LABELS.get(role, escape(role))
        css = role if role in ROLE_LABELS else "other"
        parts.append(
            f'<div class="turn turn-{css}"><p class="turn-role">{label}</p>{render_markdown(turn["content"])}</div>'
        )
    return "\n".join(parts)
