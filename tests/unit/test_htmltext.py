"""Tests for mailbridge.core.mail.html: the text a reader sees in the HTML of a mail."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.core.mail.html import html_to_text

CASES = [
    # line breaks
    ("<p>a</p><p>b</p>", "a\nb"),
    ("<p>a<p>b", "a\nb"),
    ("a<br>b", "a\nb"),
    ("a<BR/>b", "a\nb"),
    ("a<br />b", "a\nb"),
    ("a</br>b", "a\nb"),
    ("a<br><br>b", "a\n\nb"),
    ("<div>a<div>b</div>c</div>", "a\nb\nc"),
    ("<div><div><p>a</p></div></div>", "a"),
    ("<h1>Title</h1>body<hr>end", "Title\nbody\nend"),
    ("<ul><li>one</li><li>two</li></ul>", "one\ntwo"),
    ("<table><tr><td>a</td><td>b</td></tr><tr><th>c</th></tr></table>", "a b\nc"),
    ("<br>a<br>", "a"),
    ("<pre>a\n  b\n\nc</pre>d", "a\nb\n\nc\nd"),
    # hidden content
    ("<script>alert('<p>x</p>')</script>ok", "ok"),
    ("<SCRIPT type=x>a</SCRIPT >ok", "ok"),
    ("<style>p { color: red }</style>ok", "ok"),
    ("<head><title>T</title><meta charset=utf-8></head><body>ok</body>", "ok"),
    ("<script>never closed <p>x", ""),
    ("<!-- a comment <p>x</p> -->ok", "ok"),
    ("<!-- never closed", ""),
    ("<!DOCTYPE html>ok", "ok"),
    ("<?xml version='1.0'?>ok", "ok"),
    ("<!--[if mso]><xml><o:x/></xml><![endif]-->ok", "ok"),
    ("<![if !mso]>ok<![endif]>", "ok"),
    # entities and whitespace
    ("&amp;&lt;&gt;&quot;&#39;&#1055;&#x41F;", "&<>\"'ПП"),
    ("a&nbsp;&nbsp;b", "a b"),
    ("&amp;lt;", "&lt;"),
    ("&lt;br&gt;", "<br>"),
    ("&unknown; &amp", "&unknown; &"),
    ("  a \n\t b  ", "a b"),
    ("a\u200bb\ufeff", "ab"),
    ("a\x00\x01\x02b", "ab"),
    # tags and stray brackets
    ('<a href="x" title="a>b">link</a>', "link"),
    ("<img alt='don't'>x", "x"),
    ("<span>in</span>line", "inline"),
    ("a < b", "a < b"),
    ("1<2", "1<2"),
    ("a <3", "a <3"),
    ("a<b", "a"),
    ("<a href='x", ""),
    ("x</ p>y", "xy"),
    ("x</>y", "xy"),
    # the command and the signature
    (
        "<p>[text]alex:s:42:::+7999:Привет &amp; <b>мир</b>[/text]</p>",
        "[text]alex:s:42:::+7999:Привет & мир[/text]",
    ),
    ("<div>-- <br>sig</div>", "-- \nsig"),
    ("<p>--&nbsp;</p><p>sig</p>", "-- \nsig"),
    ("<p>--</p>", "--"),
    ('<pre class="moz-signature">-- \nName</pre>', "-- \nName"),
]


class TestHtmlToText:
    """Rendering rules."""

    @pytest.mark.parametrize(("markup", "text"), CASES)
    def test_render(self, markup: str, text: str) -> None:
        """Table of markup and the text a reader sees."""
        assert html_to_text(markup) == text

    def test_outlook_paragraphs(self) -> None:
        """Outlook's MsoNormal paragraphs give one line each, &nbsp; paragraphs none."""
        markup = (
            '<p class="MsoNormal">line one<o:p></o:p></p>\n'
            '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>\n'
            '<p class="MsoNormal">line two<o:p></o:p></p>'
        )
        assert html_to_text(markup) == "line one\nline two"


MARKUP = st.text(alphabet="<>/!-=\"' &#;[]abdeilnoprstvxy\n\t\r\u00a0", max_size=300)


class TestProperties:
    """Invariants for any input."""

    @given(st.one_of(st.text(max_size=300), MARKUP))
    def test_lines_are_clean(self, markup: str) -> None:
        """Lines hold no CR, tabs or runs of blanks; only the signature line ends in a blank."""
        for line in html_to_text(markup).split("\n"):
            assert line == " ".join(line.split()) or line == "-- "

    @given(
        st.text(
            alphabet=st.characters(
                exclude_characters="<&\x00\x01\x02\u200b\u200c\u200d\u2060\ufeff"
            )
        )
    )
    def test_text_without_markup(self, plain: str) -> None:
        """Text with no markup or entities is only whitespace-collapsed."""
        rendered = html_to_text(plain)
        expected = " ".join(plain.split())
        assert rendered == expected or (rendered == "-- " and expected == "--")
