"""The stored raw mail: the command's password or API key masked, nothing else changed."""

from __future__ import annotations

import base64
import binascii
import quopri

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.core import redact
from mailbridge.core.mail import read_mail
from mailbridge.core.redact import DROPPED, mask_raw

HEAD = b"From: ops@example.com\r\nTo: send@localhost\r\nSubject: alert s3cret\r\n"


def plain(body: bytes, charset: str = "utf-8", cte: str = "8bit") -> bytes:
    return (
        HEAD
        + f"Content-Type: text/plain; charset={charset}\r\n".encode()
        + f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode()
        + body
    )


class TestMaskRaw:
    def test_plain_command(self) -> None:
        """The password after the login is masked; the same word elsewhere stays."""
        raw = plain(b"alex:s3cret::::+79991234567:disk s3cret full\r\n")
        out = mask_raw(raw, login="alex", secret="s3cret", charset="utf-8")
        assert out == plain(b"alex:***::::+79991234567:disk s3cret full\r\n")

    def test_spaces_around_colons(self) -> None:
        """Blanks around the colons do not hide the password."""
        raw = plain(b"alex : s3cret : : : :+79991234567:hi\r\n")
        out = mask_raw(raw, login="alex", secret="s3cret", charset="utf-8")
        assert b"alex : *** :" in out

    def test_short_password_masks_only_its_place(self) -> None:
        """A one-letter password masks the command's field, not every letter of the mail."""
        raw = plain(b"alex:a::::+79991234567:a banana\r\n")
        out = mask_raw(raw, login="alex", secret="a", charset="utf-8")
        assert out == plain(b"alex:***::::+79991234567:a banana\r\n")

    def test_koi8_password(self) -> None:
        """A Cyrillic password in KOI8-R bytes is masked in those bytes."""
        body = "alex:пароль::::+79991234567:привет\r\n".encode("koi8-r")
        out = mask_raw(plain(body, "koi8-r"), login="alex", secret="пароль", charset="koi8-r")
        assert "пароль".encode("koi8-r") not in out
        assert b"alex:***:" in out

    def test_quoted_printable(self) -> None:
        """In a quoted-printable body the encoded password is masked."""
        body = quopri.encodestring("alex:пароль::::+79991234567:hi\n".encode())
        raw = plain(body, cte="quoted-printable")
        out = mask_raw(raw, login="alex", secret="пароль", charset="utf-8")
        assert "пароль" not in read_mail(out).text
        assert "alex:***:" in read_mail(out).text

    def test_base64_part(self) -> None:
        """A base64 body is decoded, masked and encoded again; the rest of the text stays."""
        text = "alex:s3cret::::+79991234567:" + "long text " * 20 + "\r\n"
        body = base64.encodebytes(text.encode()).replace(b"\n", b"\r\n")
        out = mask_raw(plain(body, cte="base64"), login="alex", secret="s3cret", charset="utf-8")
        decoded = read_mail(out).text
        assert decoded == text.replace("s3cret", "***", 1).replace("\r\n", "\n")

    def test_api_key_anywhere(self) -> None:
        """An API key (empty login) is masked wherever it stands."""
        raw = plain(b":K3Y-0123456789:::::+79991234567:hi K3Y-0123456789\r\n")
        out = mask_raw(raw, login="", secret="K3Y-0123456789", charset="utf-8")
        assert b"K3Y-0123456789" not in out

    def test_unmaskable_keeps_headers_only(self) -> None:
        """A body the masking cannot reach (uuencoded) is dropped, the headers kept."""
        data = b"alex:s3cret::::+79991234567:hi\n"
        uu = b"begin 644 cmd.txt\n" + binascii.b2a_uu(data) + b"`\nend\n"
        raw = plain(uu, cte="x-uuencode")
        assert "alex:s3cret" in read_mail(raw).text  # the reader does decode it
        out = mask_raw(raw, login="alex", secret="s3cret", charset="utf-8")
        assert out.endswith(DROPPED)
        assert out.startswith(HEAD)

    def test_no_secret_no_change(self) -> None:
        """Nothing to mask: the raw mail is returned as it is."""
        raw = plain(b"hello\r\n")
        assert mask_raw(raw, login="alex", secret="", charset="utf-8") is raw

    @given(
        secret=st.text(
            alphabet=st.characters(exclude_categories=["Cs", "Cc"], exclude_characters=":"),
            min_size=1,
            max_size=20,
        ).filter(lambda s: s.strip() == s and s),
        cte=st.sampled_from(["8bit", "quoted-printable", "base64"]),
    )
    def test_secret_never_readable(self, secret: str, cte: str) -> None:
        """Whatever the password and transfer encoding, the stored mail's text does not hold it."""
        text = f"alex:{secret}::::+79991234567:hi\r\n".encode()
        if cte == "base64":
            body = base64.encodebytes(text)
        elif cte == "quoted-printable":
            body = quopri.encodestring(text)
        else:
            body = text
        out = mask_raw(plain(body, cte=cte), login="alex", secret=secret, charset="utf-8")
        assert f"alex:{secret}:" not in read_mail(out).text


@pytest.mark.parametrize("secret", ["s3cret", "x"])
def test_headers_are_untouched(secret: str) -> None:
    """Masking never changes the header block (the subject holds the word too)."""
    raw = plain(f"alex:{secret}::::+79991234567:hi\r\n".encode())
    out = mask_raw(raw, login="alex", secret=secret, charset="utf-8")
    assert out.startswith(HEAD)


# --- the second read is skipped only where it could not find the secret ---------------------

_CHARSETS = ["utf-8", "koi8-r", "windows-1251", "us-ascii", "utf-7", "cp037", "utf-16", "hz"]
_CTES = ["8bit", "7bit", "base64", "quoted-printable", "x-uuencode"]


def _encode(text: str, charset: str, cte: str) -> bytes:
    data = text.encode(charset, errors="replace")
    if cte == "base64":
        return base64.encodebytes(data)
    if cte == "quoted-printable":
        return quopri.encodestring(data)
    if cte == "x-uuencode":
        return b"begin 644 x\n" + binascii.b2a_uu(data[:45]) + b"`\nend\n"
    return data


@st.composite
def _mails(draw: st.DrawFn) -> tuple[bytes, str]:
    secret = draw(st.sampled_from(["s3cret", "pa ss", "пароль", "K3Y-abc", "+AHM-", "a~b"]))
    charset = draw(st.sampled_from(_CHARSETS))
    cte = draw(st.sampled_from(_CTES))
    kind = draw(st.sampled_from(["text/plain", "text/html"]))
    shown = draw(st.sampled_from([secret, secret.upper(), f"<b>{secret[:2]}</b>{secret[2:]}"]))
    text = f"alex:{shown}::::+79991234567:{draw(st.text(max_size=20))}\n"
    params = [f"charset={charset}", f'charset="{charset}"', f"charset*=utf-8''{charset}",
              f"charset=\r\n {charset}", ""]  # fmt: skip
    param = draw(st.sampled_from(params))
    head = HEAD.replace(b"s3cret", draw(st.sampled_from([b"s3cret", b"disk full"])))
    raw = (
        head + f"Content-Type: {kind}; {param}\r\n".encode()
        + f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode() + _encode(text, charset, cte)
    )  # fmt: skip
    return raw, secret


@settings(max_examples=500)  # about one case in twenty takes the short way
@given(_mails(), st.sampled_from(["koi8-r", "utf-8", "cp037"]))
def test_skipping_the_second_read_never_keeps_the_secret(
    case: tuple[bytes, str], default_charset: str
) -> None:
    """Wherever the cheap check says the secret is gone, the full read agrees."""
    raw, secret = case
    for masked in (raw, mask_raw(raw, login="alex", secret=secret, charset="utf-8")):
        if redact._plainly_gone(masked, secret, default_charset):
            assert not redact._still_there(masked, "alex", secret, default_charset)


@pytest.mark.parametrize(
    ("raw", "gone"),
    [
        (plain(b"alex:***::::+79991234567:disk full\r\n"), True),
        (plain(b"alex:***::::+79991234567:disk full\r\n", charset="koi8-r"), True),
        (plain(b"alex:***::::+79991234567:s3cret\r\n"), False),  # the bytes are still there
        (plain(b"alex:***::::+79991234567:x\r\n", cte="base64"), False),
        (plain(b"alex:***::::+79991234567:x\r\n", cte="quoted-printable"), False),
        (plain(b"alex:+AHMAMwBjAHIAZQB0-::::+79991234567:x\r\n", charset="utf-7"), False),
        (plain(b"alex:***::::+79991234567:x\r\n", charset="cp037"), False),
        (plain(b"alex:***::::+79991234567:x\r\n").replace(b"text/plain", b"text/html"), False),
        (plain(b"alex:***::::+79991234567:x\r\n").replace(b"charset=", b"charset*="), False),
    ],
)
def test_when_the_second_read_is_skipped(raw: bytes, gone: bool) -> None:
    """Skipped for plain text in ASCII-transparent charsets; run for anything that decodes."""
    raw = raw.replace(b"Subject: alert s3cret", b"Subject: alert")
    assert redact._plainly_gone(raw, "s3cret", "koi8-r") is gone


def test_the_secret_in_the_subject_means_the_full_read() -> None:
    raw = plain(b"alex:***::::+79991234567:x\r\n")
    assert not redact._plainly_gone(raw, "s3cret", "koi8-r")


def test_an_ebcdic_password_is_still_caught() -> None:
    """cp037 spells ``s3cret`` without its ASCII bytes: the full read runs and drops the body."""
    raw = plain("alex:s3cret::::+79991234567:x\r\n".encode("cp037"), charset="cp037")
    assert read_mail(raw).command.startswith("alex:s3cret:")
    out = mask_raw(raw, login="alex", secret="s3cret", charset="utf-8")
    assert out.endswith(DROPPED)
