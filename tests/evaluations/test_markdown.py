"""Markdown in prompts and responses: ordinary formatting rendered, anything active made inert."""

from __future__ import annotations

import time

import pytest

from evaluations.markdown import render_markdown, render_turns

REL = 'rel="noopener noreferrer nofollow"'


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"),
        ("<img src=x onerror=alert(1)>", "<p>&lt;img src=x onerror=alert(1)&gt;</p>\n"),
        ('<a href="javascript:alert(1)">x</a>', '<p>&lt;a href="javascript:alert(1)"&gt;x&lt;/a&gt;</p>\n'),
        ("<iframe src=https://evil></iframe>", "<p>&lt;iframe src=https://evil&gt;&lt;/iframe&gt;</p>\n"),
        ('<div style="position:fixed">x</div>', '<p>&lt;div style="position:fixed"&gt;x&lt;/div&gt;</p>\n'),
        ("x<!-- hidden -->y", "<p>x&lt;!-- hidden --&gt;y</p>\n"),
    ],
)
def test_raw_html_is_shown_as_text_never_as_markup(text, html):
    assert render_markdown(text) == html


@pytest.mark.parametrize(
    "text",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](java&#x09;script:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[x](vbscript:msgbox)",
        "<javascript:alert(1)>",
        "![x](data:image/png;base64,AAAA)",
        "[x](/staff/)",
    ],
)
def test_dangerous_and_relative_links_lose_their_href(text):
    html = render_markdown(text)
    assert "href" not in html
    assert "<img" not in html


def test_a_javascript_link_stays_plain_text():
    assert render_markdown("[x](javascript:alert(1))") == "<p>[x](javascript:alert(1))</p>\n"


def test_images_become_links_so_nothing_loads_by_itself():
    assert render_markdown("![a](http://evil/x.png)") == f'<p><a href="http://evil/x.png" {REL}>a</a></p>\n'
    assert (
        render_markdown("![](http://evil/x.png)") == f'<p><a href="http://evil/x.png" {REL}>http://evil/x.png</a></p>\n'
    )
    assert render_markdown("[![logo](http://evil/x.png)](https://example.com)") == (
        f'<p><a href="https://example.com" {REL}>logo</a></p>\n'
    )


def test_links_keep_only_their_href_and_get_rel():
    assert render_markdown('[docs](https://example.com/a?b=1&c="2" "title")') == (
        f'<p><a href="https://example.com/a?b=1&amp;c=%222%22" {REL}>docs</a></p>\n'
    )
    assert render_markdown("<https://example.com>") == (
        f'<p><a href="https://example.com" {REL}>https://example.com</a></p>\n'
    )
    assert render_markdown("[mail](mailto:a@example.com)") == f'<p><a href="mailto:a@example.com" {REL}>mail</a></p>\n'
    assert render_markdown("[ftp](ftp://example.com/f)") == f"<p><a {REL}>ftp</a></p>\n"


def test_emphasis_code_and_strikethrough():
    assert render_markdown("*em* **strong** ~~gone~~ `a<b`") == (
        "<p><em>em</em> <strong>strong</strong> <del>gone</del> <code>a&lt;b</code></p>\n"
    )


def test_a_fenced_code_block_keeps_its_text_and_drops_its_language_class():
    assert render_markdown('```python\nprint("<b>")\n```') == '<pre><code>print("&lt;b&gt;")\n</code></pre>\n'


def test_a_table_renders_without_alignment_styles():
    assert render_markdown("| a | b |\n|:--|--:|\n| 1 | **2** |") == (
        "<table>\n<thead>\n<tr>\n<th>a</th>\n<th>b</th>\n</tr>\n</thead>\n"
        "<tbody>\n<tr>\n<td>1</td>\n<td><strong>2</strong></td>\n</tr>\n</tbody>\n</table>\n"
    )


def test_blocks():
    assert render_markdown("# Title\n\n> quoted\n\n1. one\n2. two\n\n- dot\n\n---\nline  \nbreak") == (
        "<h1>Title</h1>\n<blockquote>\n<p>quoted</p>\n</blockquote>\n<ol>\n<li>one</li>\n<li>two</li>\n</ol>\n"
        "<ul>\n<li>dot</li>\n</ul>\n<hr>\n<p>line<br>\nbreak</p>\n"
    )


def test_a_single_turn_is_just_its_markdown():
    assert render_turns([{"role": "user", "content": "Is *this* right?"}]) == "<p>Is <em>this</em> right?</p>\n"


def test_several_turns_are_each_wrapped_with_their_role():
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi <b>"},
        {"role": "assistant", "content": "**Hello.**"},
    ]
    assert render_turns(turns) == (
        '<div class="turn turn-system"><p class="turn-role">System</p><p>Be brief.</p>\n</div>\n'
        '<div class="turn turn-user"><p class="turn-role">User</p><p>Hi &lt;b&gt;</p>\n</div>\n'
        '<div class="turn turn-assistant"><p class="turn-role">Assistant</p><p><strong>Hello.</strong></p>\n</div>'
    )


def test_an_unexpected_role_is_escaped_and_gets_a_neutral_class():
    turns = [{"role": '"><script>', "content": "a"}, {"role": "user", "content": "b"}]
    assert render_turns(turns).startswith(
        '<div class="turn turn-other"><p class="turn-role">&quot;&gt;&lt;script&gt;</p><p>a</p>\n</div>\n'
    )


def test_no_turns_render_as_nothing():
    assert render_turns([]) == ""


def test_rendering_is_fast():
    text = "## Answer\n\nSome *text* with a [link](https://example.com) and `code`.\n\n" * 20
    start = time.perf_counter()
    for _ in range(200):
        render_markdown(text)
    assert time.perf_counter() - start < 5
