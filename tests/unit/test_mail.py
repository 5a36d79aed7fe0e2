"""Tests for mailbridge.core.mail: the bytes of an e-mail become a MailContent (SPEC §1)."""

from __future__ import annotations

import base64
import binascii
import importlib.util
import quopri
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbridge.core.mail import (
    MAX_DEPTH,
    MAX_HEADER_BYTES,
    MAX_MAIL_BYTES,
    MAX_PARTS,
    MAX_TEXT_BYTES,
    charset_label,
    read_mail,
)
from mailbridge.core.mail import guards as mail_guards
from mailbridge.errors import RequestError
from mailbridge.models import MailContent

DATA = Path(__file__).resolve().parents[1] / "data"
MAILS = DATA / "mails"
CMD = "alex:secret:42:::+79991234567:Привет, мир"
ASCII_CMD = "alex:secret:42:::+79991234567:hello"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_mails", DATA / "make_mails.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mail(body: bytes, *headers: str) -> bytes:
    """A single-part mail with the given header lines (LF line ends)."""
    head = "\n".join(("From: alex@example.com", "Subject: sms", *headers))
    return head.encode() + b"\n\n" + body


def uuencode(data: bytes) -> bytes:
    """``data`` as a uuencoded file."""
    lines = b"".join(binascii.b2a_uu(data[i : i + 45]) for i in range(0, len(data), 45))
    return b"begin 644 cmd.txt\n" + lines + b"`\nend\n"


def multipart(kind: str, boundary: str, *parts: bytes, headers: tuple[str, ...] = ()) -> bytes:
    """A multipart body (each part given with its own headers), closed."""
    body = b"".join(b"--" + boundary.encode() + b"\n" + part + b"\n" for part in parts)
    body += b"--" + boundary.encode() + b"--\n"
    return mail(body, f'Content-Type: multipart/{kind}; boundary="{boundary}"', *headers)


# --- the corpus ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    """What read_mail must give for one corpus file."""

    command: str
    charset: str
    subject: str = "sms"


def _cmd(number: int, text: str) -> str:
    return f"alex:secret:{number}:::+79991234567:{text}"


LINE_ENDINGS = Expected(
    command=_cmd(59, "Строка один\nстрока два\n"), charset="utf-8", subject="crlf"
)

CORPUS: dict[str, Expected] = {
    "koi8r_declared.eml": Expected(command=f"{CMD}\n", charset="koi8-r"),
    "koi8r_undeclared_8bit.eml": Expected(
        command=_cmd(43, "Сервер db01 недоступен, проверьте питание\n"), charset="koi8-r"
    ),
    "koi8r_undeclared_short.eml": Expected(command=_cmd(44, "ВНИМАНИЕ АВАРИЯ\n"), charset="koi8-r"),
    "cp1251_undeclared_8bit.eml": Expected(
        command=_cmd(45, "Сервер db01 недоступен, проверьте питание\n"), charset="windows-1251"
    ),
    "cp1251_quoted_printable.eml": Expected(
        command=_cmd(
            46,
            "Резервное копирование завершено успешно, архив 12 ГБ записан на ленту LTO-7"
            " в 03:15, следующий запуск завтра\n",
        ),
        charset="windows-1251",
        subject="Резервное копирование",
    ),
    "cp866_declared.eml": Expected(command=_cmd(55, "Задание 1С завершено\n"), charset="cp866"),
    "cp866_undeclared.eml": Expected(
        command=_cmd(71, "Задание резервного копирования завершено\n"), charset="cp866"
    ),
    "iso8859_5_declared.eml": Expected(
        command=_cmd(56, "Привет из ISO-8859-5\n"), charset="iso-8859-5"
    ),
    "utf8_base64.eml": Expected(
        command=_cmd(47, "Тест UTF-8 ✓\n"), charset="utf-8", subject="Тест"
    ),
    "utf8_bom_undeclared.eml": Expected(command=_cmd(68, "Файл из Блокнота\n"), charset="utf-8"),
    "lying_charset_utf8_is_cp1251.eml": Expected(
        command=_cmd(52, "Проверка связи, ответьте пожалуйста\n"), charset="windows-1251"
    ),
    "lying_charset_ascii_is_koi8r.eml": Expected(
        command=_cmd(53, "Проверка связи, ответьте пожалуйста\n"), charset="koi8-r"
    ),
    "unknown_charset_name.eml": Expected(
        command=_cmd(54, "Диск /var заполнен на 95%\n"), charset="koi8-r"
    ),
    "rfc2231_charset_parameter.eml": Expected(command=f"{CMD}\n", charset="koi8-r"),
    "subject_rfc2047_base64.eml": Expected(
        command=f"{CMD}\n", charset="koi8-r", subject="Проверка связи"
    ),
    "subject_rfc2047_qp_folded.eml": Expected(
        command=f"{CMD}\n", charset="utf-8", subject="Сбой сервера #17"
    ),
    "subject_raw_8bit_cp1251.eml": Expected(
        command=f"{CMD}\n", charset="windows-1251", subject="Сбой сервера"
    ),
    "html_only_with_text_tags.eml": Expected(
        command=_cmd(48, "Привет & пока, мир"), charset="utf-8", subject="html"
    ),
    "html_only_without_text_tags.eml": Expected(
        command=_cmd(49, "Цена 100 ₽ <ok>\n"), charset="koi8-r", subject="html"
    ),
    "outlook_alternative_cp1251.eml": Expected(
        command=_cmd(50, "Совещание переносится на 16:00\n\nС уважением,\nИван Петров\n"),
        charset="windows-1251",
        subject="Совещание",
    ),
    "alertmanager_html.eml": Expected(
        command="1 alert for alertname=DiskFull\n[1] Firing\nLabels\nalertname = DiskFull\n"
        "instance = node01:9100\nseverity = critical\nAnnotations\n"
        "summary = Диск / заполнен на 97%\nSource",
        charset="utf-8",
        subject="[FIRING:1] DiskFull (node01 critical)",
    ),
    "blank_plain_html_fallback.eml": Expected(
        command=_cmd(66, "Только в HTML"), charset="utf-8", subject="html"
    ),
    "signature_rfc3676.eml": Expected(command=f"{CMD}\n", charset="utf-8"),
    "signature_bare_dashes.eml": Expected(
        command=_cmd(51, "Итоги:\n--\nвсе тесты прошли\n"), charset="utf-8"
    ),
    "text_tags_case_insensitive.eml": Expected(
        command=_cmd(62, "Регистр тегов не важен"), charset="utf-8"
    ),
    "text_tag_unclosed.eml": Expected(command=_cmd(63, "Без закрывающего тега\n"), charset="utf-8"),
    "command_with_colons.eml": Expected(
        command=_cmd(60, "Встреча в 15:00: зал 3, Wi-Fi: guest:guest\n"), charset="utf-8"
    ),
    "list_mode_multiline.eml": Expected(
        command="alex:secret:61::,,,2::\n+79991234567:Первое сообщение\n"
        "+79997654321;89990000001:Второе сообщение\nпродолжение второго\n"
        "+79990000002:Третье: с двоеточием\\nи переносом\n",
        charset="koi8-r",
        subject="list",
    ),
    "mail_format_subject_line.eml": Expected(
        command="alex:secret:69::,8:ivan@example.com:__MAIL__:Текст письма\nsubj:Тема письма\n",
        charset="utf-8",
    ),
    "flash_translit_command.eml": Expected(
        command="alex:secret:70:0101251200,3:1,1,Alex,1:89991234567,+79997654321:Привет, мир\n",
        charset="koi8-r",
    ),
    "apikey_empty_login.eml": Expected(
        command=":0123456789abcdef0123456789abcdef:67:::+79991234567:Ключ API вместо логина\n",
        charset="utf-8",
    ),
    "zabbix_alert.eml": Expected(
        command="alex:secret:::,,,1:+79991234567:Problem started at 12:00:01 on 2024.05.06\n"
        "Problem name: Высокая загрузка процессора на web-01\nHost: web-01\nSeverity: High\n"
        "Operational data: 97.3 %\nOriginal problem ID: 1234567\n",
        charset="utf-8",
        subject="Problem: Высокая загрузка",
    ),
    "cron_mailto.eml": Expected(
        command="alex:secret::::+79991234567:Ночной бэкап backup01 завершён: 12 ГБ за 41 мин\n",
        charset="utf-8",
        subject="Cron <root@backup01> /usr/local/bin/nightly-backup.sh",
    ),
    "crlf_line_endings.eml": LINE_ENDINGS,
    "lf_line_endings.eml": LINE_ENDINGS,
    "lone_cr_line_endings.eml": LINE_ENDINGS,
    "mbox_from_line.eml": Expected(command=f"{CMD}\n", charset="koi8-r"),
    "auto_reply_headers.eml": Expected(
        command="Я в отпуске до 20 мая.\n", charset="utf-8", subject="Автоответ: sms"
    ),
    "attachment_before_text.eml": Expected(
        command=_cmd(58, "Команда после вложения"), charset="utf-8", subject="att first"
    ),
    "nested_mixed_related_alternative.eml": Expected(
        command=_cmd(64, "Глубоко вложенный текст\n"), charset="koi8-r", subject="nested"
    ),
    "forwarded_message_rfc822.eml": Expected(
        command=_cmd(65, "Своя команда"), charset="utf-8", subject="Fwd: old"
    ),
    "giant_base64_attachment.eml": Expected(command=CMD, charset="utf-8", subject="dump"),
    "large_100kb.eml": Expected(
        command=_cmd(57, "Бэкап завершён"), charset="utf-8", subject="backup log"
    ),
    "mime_bomb_after_text.eml": Expected(command=CMD, charset="utf-8", subject="bomb after text"),
    "parts_flood_after_text.eml": Expected(
        command=CMD, charset="utf-8", subject="flood after text"
    ),
    "dsn_bounce.eml": Expected(
        command="This is the mail system at host mx.example.com.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients.\n\n<nobody@example.org>: user unknown",
        charset="us-ascii",
        subject="Undelivered Mail Returned to Sender",
    ),
}

HOSTILE = (
    "mime_bomb_1000_levels.eml",
    "too_many_parts.eml",
    "huge_header.eml",
    "delivery_status_flood.eml",
)


class TestCorpus:
    """Every real-shaped mail of tests/data/mails reads as documented."""

    def test_every_file_is_in_the_table(self) -> None:
        """The table covers the corpus exactly, and the corpus is large enough."""
        files = {path.name for path in MAILS.glob("*.eml")}
        assert files == set(CORPUS) | set(HOSTILE)
        assert len(files) >= 30

    def test_files_match_the_generator(self) -> None:
        """The files are what make_mails.py writes today."""
        generator = _load_generator()
        for name, build in generator.MAILS.items():
            assert (MAILS / name).read_bytes() == build(), name

    @pytest.mark.parametrize(("name", "expected"), CORPUS.items(), ids=list(CORPUS))
    def test_command_subject_and_charset(self, name: str, expected: Expected) -> None:
        """The decoded command, subject and charset of each corpus mail."""
        content = read_mail((MAILS / name).read_bytes())
        assert (content.command, content.subject, content.charset) == (
            expected.command,
            expected.subject,
            expected.charset,
        )

    @pytest.mark.parametrize("name", HOSTILE)
    def test_hostile_mail_is_error_1(self, name: str) -> None:
        """A MIME bomb, too many parts or a huge header is ERROR = 1."""
        with pytest.raises(RequestError) as caught:
            read_mail((MAILS / name).read_bytes())
        assert caught.value.code == 1

    def test_outlook_from_address(self) -> None:
        """The addr-spec is taken from a From with an encoded display name."""
        content = read_mail((MAILS / "outlook_alternative_cp1251.eml").read_bytes())
        assert content.from_address == "ivan.petrov@corp.example.ru"

    def test_reply_relevant_headers(self) -> None:
        """Message-ID, Auto-Submitted, Precedence and a folded List-Id come out raw and unfolded."""
        content = read_mail((MAILS / "auto_reply_headers.eml").read_bytes())
        assert content.message_id == "<auto@example.com>"
        assert content.auto_submitted == "auto-replied"
        assert content.precedence == "bulk"
        assert content.list_id == "Alerts list <alerts.lists.example.com>"

    def test_large_mail_text_is_whole(self) -> None:
        """The text of the 100 KB mail holds the whole log, the command only the block."""
        content = read_mail((MAILS / "large_100kb.eml").read_bytes())
        assert content.text.endswith("копирую блок 1369 из 1370\n")
        assert content.text.count("\n") == 1373


# --- charsets ------------------------------------------------------------------------------

RUSSIAN_SENTENCES = [
    "Привет, мир",
    "Сервер db01 недоступен",
    "Высокая загрузка процессора на web-01",
    "Съешь же ещё этих мягких французских булок, да выпей чаю",
    "Проблема решена",
    "Диск /var заполнен на 95%",
    "ПРОВЕРКА СВЯЗИ",
    "Код подтверждения: 1234",
    "Ваш пароль изменён",
    "Резервное копирование завершено успешно",
    "Иван Петрович, перезвоните",
    "Уровень: Высокий",
    "Оплата получена",
]


class TestCharset:
    """SPEC §1 Charset: declared when clean, else detected, else the default."""

    @pytest.mark.parametrize(
        ("declared", "body", "charset"),
        [
            ("koi8-r", CMD.encode("koi8-r"), "koi8-r"),
            ('"KOI8-R"', CMD.encode("koi8-r"), "koi8-r"),
            ("windows-1251", CMD.encode("cp1251"), "windows-1251"),
            ("cp1251", CMD.encode("cp1251"), "windows-1251"),
            ("utf-8", CMD.encode(), "utf-8"),
            ("UTF8", CMD.encode(), "utf-8"),
            ("ibm866", CMD.encode("cp866"), "cp866"),
            ("iso-8859-5", CMD.encode("iso8859-5"), "iso-8859-5"),
            ("utf-16", CMD.encode("utf-16"), "utf-16"),
            ("koi8-r", ASCII_CMD.encode(), "koi8-r"),
            ("x-unknown", ASCII_CMD.encode(), "us-ascii"),
            ("base64", CMD.encode("koi8-r"), "koi8-r"),
            ("rot13", CMD.encode("koi8-r"), "koi8-r"),
            ("unicode-escape", CMD.encode("koi8-r"), "koi8-r"),
            ("undefined", CMD.encode(), "utf-8"),
        ],
    )
    def test_declared(self, declared: str, body: bytes, charset: str) -> None:
        """A declared charset is used when the bytes decode in it; odd names count as none."""
        content = read_mail(mail(body, f"Content-Type: text/plain; charset={declared}"))
        assert (content.charset, content.text) == (charset, ASCII_CMD if body.isascii() else CMD)

    @pytest.mark.parametrize("sentence", RUSSIAN_SENTENCES)
    @pytest.mark.parametrize(
        ("codec", "charset"),
        [("koi8-r", "koi8-r"), ("cp1251", "windows-1251"), ("cp866", "cp866")],
    )
    def test_undeclared_russian_is_detected(self, sentence: str, codec: str, charset: str) -> None:
        """Undeclared Russian text is detected, not defaulted: a wrong default does not matter."""
        body = f"alex:secret:42:::+79991234567:{sentence}\n".encode(codec)
        content = read_mail(mail(body), default_charset="iso-8859-5")
        assert (content.charset, content.text) == (charset, body.decode(codec))

    @pytest.mark.parametrize(
        ("lie", "codec", "charset"),
        [
            ("utf-8", "cp1251", "windows-1251"),
            ("utf-8", "koi8-r", "koi8-r"),
            ("us-ascii", "cp1251", "windows-1251"),
            ("us-ascii", "koi8-r", "koi8-r"),
        ],
    )
    def test_lying_charset_is_detected(self, lie: str, codec: str, charset: str) -> None:
        """Bytes that do not decode strictly in the declared charset are detected."""
        body = "alex:secret:42:::+79991234567:Проверка связи, ответьте пожалуйста".encode(codec)
        content = read_mail(mail(body, f"Content-Type: text/plain; charset={lie}"))
        assert (content.charset, content.text) == (charset, body.decode(codec))

    @pytest.mark.parametrize(
        ("body", "charset"),
        [
            (b"alex:secret:42:::+79991234567:hello", "us-ascii"),
            (CMD.encode(), "utf-8"),
            (b"", "us-ascii"),
        ],
    )
    def test_undeclared_ascii_and_utf8(self, body: bytes, charset: str) -> None:
        """Pure ASCII needs no detection; valid UTF-8 is UTF-8."""
        assert read_mail(mail(body)).charset == charset

    @pytest.mark.parametrize(
        ("default", "charset"),
        [("koi8-r", "koi8-r"), ("windows-1251", "windows-1251"), ("cp1251", "windows-1251")],
    )
    def test_inconclusive_uses_default(self, default: str, charset: str) -> None:
        """A two-letter all-caps message is inconclusive: the default charset decides."""
        body = "alex:secret:42:::+79991234567:ОК".encode("cp1251")
        content = read_mail(mail(body), default_charset=default)
        assert (content.charset, content.text) == (charset, body.decode(default))

    def test_undecodable_is_error_1(self) -> None:
        """Inconclusive bytes that the default cannot decode are ERROR = 1."""
        body = "alex:secret:42:::+79991234567:ОК".encode("cp1251")
        with pytest.raises(RequestError) as caught:
            read_mail(mail(body), default_charset="utf-8")
        assert caught.value.code == 1

    def test_unknown_default_is_a_config_error(self) -> None:
        """An unknown default charset is a programming/config error, not a mail error."""
        with pytest.raises(ValueError, match="x-unknown"):
            read_mail(mail(b"hi"), default_charset="x-unknown")

    @pytest.mark.parametrize(
        ("name", "label"),
        [
            ("koi8-r", "koi8-r"),
            ("KOI8-R", "koi8-r"),
            ("Windows-1251", "windows-1251"),
            ("cp1251", "windows-1251"),
            ("utf8", "utf-8"),
            ("ascii", "us-ascii"),
            ("IBM866", "cp866"),
            ("ISO_8859-5", "iso-8859-5"),
            ("big5", "big5"),
            ("x-unknown", None),
            ("base64", None),
            ("", None),
            ("../../etc", None),
        ],
    )
    def test_charset_label(self, name: str, label: str | None) -> None:
        """charset_label names the charsets mailbridge reports and refuses unknown ones."""
        assert charset_label(name) == label


# --- transfer encodings and line ends ------------------------------------------------------


class TestBody:
    """Transfer encodings, line breaks and the byte-order mark."""

    @pytest.mark.parametrize(
        ("encoding", "payload"),
        [
            ("base64", base64.encodebytes(CMD.encode())),
            ("BASE64", base64.b64encode(CMD.encode())),
            ("base64", base64.b64encode(CMD.encode()).rstrip(b"=")),
            ("base64", b"!" + base64.encodebytes(CMD.encode()) + b"*"),
            ("quoted-printable", quopri.encodestring(CMD.encode())),
            ("8bit", CMD.encode()),
            ("binary", CMD.encode()),
            ("7bit", CMD.encode()),
            ("x-unknown", CMD.encode()),
            ('"base64"', base64.encodebytes(CMD.encode())),
            ("base64 ", base64.encodebytes(CMD.encode())),
            ("x-uuencode", uuencode(CMD.encode())),
            ("x-uuencode", CMD.encode()),
        ],
    )
    def test_transfer_encodings(self, encoding: str, payload: bytes) -> None:
        """base64 (lenient about padding, stray characters, quotes), QP, uuencode, identity."""
        raw = mail(
            payload,
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Transfer-Encoding: {encoding}",
        )
        assert read_mail(raw).text.rstrip("\n") == CMD

    @pytest.mark.parametrize("text", ["a\r\nb\r\nc", "a\rb\rc", "a\nb\nc", "a\r\nb\rc"])
    def test_line_breaks_become_lf(self, text: str) -> None:
        """CRLF and bare CR become LF, also inside base64 where the mail's ends do not reach."""
        payload = base64.b64encode(text.encode())
        raw = mail(
            payload, "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64"
        )
        assert read_mail(raw).text == "a\nb\nc"

    def test_bom_is_dropped(self) -> None:
        """A byte-order mark does not become part of the login."""
        raw = mail(b"\xef\xbb\xbf" + CMD.encode(), "Content-Type: text/plain; charset=utf-8")
        assert read_mail(raw).command == CMD


# --- the command ---------------------------------------------------------------------------


class TestCommand:
    """[text]…[/text] and the RFC 3676 signature."""

    @pytest.mark.parametrize(
        ("text", "command"),
        [
            (f"[text]{CMD}[/text]", CMD),
            (f"Hi\n[text]{CMD}[/text]\nBye", CMD),
            (f"[TEXT]{CMD}[/TEXT]", CMD),
            (f"[Text]{CMD}[/tExt]", CMD),
            (f"[text]{CMD}", CMD),
            (f"[text]{CMD}[/text] and [text]second[/text]", CMD),
            (f"[/text] [text]{CMD}[/text]", CMD),
            (f"[text]\n{CMD}\n[/text]", f"\n{CMD}\n"),
            (f"[text]{CMD}\n-- \nsig[/text]", f"{CMD}\n-- \nsig"),
            ("[text][/text]", ""),
            (f"{CMD}\n-- \nsig", f"{CMD}\n"),
            (f"{CMD}\n-- \nsig\n-- \nmore", f"{CMD}\n-- \nsig\n"),
            (f"{CMD}\n-- ", f"{CMD}\n"),
            (f"-- \n{CMD}", ""),
            (f"{CMD}\n--\nsig", f"{CMD}\n--\nsig"),
            (f"{CMD}\n--  \nsig", f"{CMD}\n--  \nsig"),
            (f"{CMD}\n -- \nsig", f"{CMD}\n -- \nsig"),
            (f"{CMD} -- \nsig", f"{CMD} -- \nsig"),
            (CMD, CMD),
        ],
    )
    def test_command(self, text: str, command: str) -> None:
        """The block between tags, else the text without its last `-- ` signature."""
        raw = mail(text.encode(), "Content-Type: text/plain; charset=utf-8")
        content = read_mail(raw)
        assert (content.text, content.command) == (text, command)

    def test_text_tag_needs_ascii_letters(self) -> None:
        """Only ASCII case folding counts: a Kelvin sign is not a K."""
        text = f"[TEXT]{CMD}[/TE\u212aT]"  # the Kelvin sign folds to "k" in Unicode
        assert (
            read_mail(mail(text.encode(), "Content-Type: text/plain; charset=utf-8")).command
            == (text[6:])
        )


# --- headers -------------------------------------------------------------------------------


class TestHeaders:
    """Subject, From and the raw reply-relevant headers."""

    @pytest.mark.parametrize(
        ("subject", "decoded"),
        [
            ("plain", "plain"),
            ("=?utf-8?B?0J/RgNC40LLQtdGC?=", "Привет"),
            ("=?UTF-8?b?0J/RgNC40LLQtdGC?=", "Привет"),
            ("=?koi8-r?Q?=F0=D2=C9=D7=C5=D4_=CD=C9=D2?=", "Привет мир"),
            ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
            ("=?utf-8?q?a?=\n =?utf-8?q?b?=", "ab"),
            ("=?utf-8?q?a?= b =?utf-8?q?c?=", "a b c"),
            ("Re: =?utf-8?B?0J/RgNC40LLQtdGC?= !", "Re: Привет !"),
            ("=?utf-8?B?0J/R?= =?utf-8?B?gNC4?=", "При"),
            ("=?utf-8*ru?B?0J/RgNC40LLQtdGC?=", "Привет"),
            ("=?x-unknown?Q?abc?=", "abc"),
            ("=?utf-8?B?@@@?=", ""),
            ("=?utf-8?B?0J/RgNC4", "=?utf-8?B?0J/RgNC4"),
            ("=?utf-8?Q?a=0D=0ABcc:_evil?=", "a  Bcc: evil"),
            ("=?utf-8?X?abc?=", "=?utf-8?X?abc?="),
            ("=?utf-8?B?Y?= x", "=?utf-8?B?Y?= x"),
            ("C:\\users =?utf-8?q?a?=", "C:\\users a"),
            ("Привет =?utf-8?q?a?= C:\\u0", "Привет a C:\\u0"),
            ("a\tb", "a b"),
            ("  spaced  ", "spaced"),
            ("", ""),
        ],
    )
    def test_subject(self, subject: str, decoded: str) -> None:
        """RFC 2047 words decode (joined when adjacent); bad ones never raise; no CR/LF."""
        assert read_mail(
            mail(b"x").replace(b"Subject: sms", f"Subject: {subject}".encode())
        ).subject == (decoded)

    def test_long_subject(self) -> None:
        """Only the first 2048 characters of a Subject are searched for encoded words."""
        words = "=?utf-8?q?a?= " * 300  # 4200 characters
        raw = mail(b"x").replace(b"Subject: sms", f"Subject: {words}".encode())
        subject = read_mail(raw).subject
        assert subject.startswith("a" * 146 + " =?utf-8?q?a?= ")
        assert subject.endswith(" =?utf-8?q?a?=")

    @pytest.mark.parametrize(
        ("raw_subject", "decoded"),
        [
            ("Сбой сервера".encode(), "Сбой сервера"),
            ("Сбой сервера".encode("koi8-r"), "Сбой сервера"),
            ("Сбой сервера".encode("cp1251"), "Сбой сервера"),
        ],
    )
    def test_raw_8bit_subject(self, raw_subject: bytes, decoded: str) -> None:
        """A Subject in raw 8-bit bytes is UTF-8 or detected like a body."""
        raw = mail(b"x").replace(b"Subject: sms", b"Subject: " + raw_subject)
        assert read_mail(raw).subject == decoded

    def test_missing_subject(self) -> None:
        """No Subject header gives an empty subject."""
        assert read_mail(b"From: a@b.example\n\nhi").subject == ""

    @pytest.mark.parametrize(
        ("header", "address"),
        [
            ("alex@example.com", "alex@example.com"),
            ("Alex <alex@example.com>", "alex@example.com"),
            ('"Doe, John <fake@x>" <john@example.com>', "john@example.com"),
            ("=?utf-8?B?0JDQu9C10LrRgQ==?= <alex@example.com>", "alex@example.com"),
            ("alex@example.com (Alex (the admin))", "alex@example.com"),
            ("root (Cron Daemon)", "root"),
            ("<  alex@example.com  >", "alex@example.com"),
            ("a@x.example, b@y.example", "a@x.example"),
            ("Alex Smith alex@example.com", "alex@example.com"),
            ("<<alex@example.com>>", "alex@example.com"),
            ('"john doe"@example.com', "@example.com"),
            ("o'neil+sms@example.com", "o'neil+sms@example.com"),
            ("x" * 1030 + " <alex@example.com>", "x" * 1024),
            ("", ""),
            ("(" * 5000, ""),
            ('"' + "\\" * 5001, ""),
        ],
    )
    def test_from_address(self, header: str, address: str) -> None:
        """The addr-spec of From, also for nested comments and quoted display names."""
        raw = f"From: {header}\nSubject: x\n\nbody".encode()
        assert read_mail(raw).from_address == address

    def test_raw_header_values(self) -> None:
        """Message-ID, Auto-Submitted, Precedence, List-Id: raw, unfolded, stripped, first wins."""
        raw = (
            b"Message-ID:\n <a.b@example.com>\nAuto-Submitted:  Auto-Generated \n"
            b"Precedence: junk\nPrecedence: bulk\nlist-id: x\n\t<x.example>\n\nbody"
        )
        content = read_mail(raw)
        assert (
            content.message_id,
            content.auto_submitted,
            content.precedence,
            content.list_id,
        ) == ("<a.b@example.com>", "Auto-Generated", "junk", "x <x.example>")

    @pytest.mark.parametrize(
        "header", ["Message-ID: <a\r@x>", "Message-ID: <a\x00@x>", "Message-ID: <a\x85\u2028@x>"]
    )
    def test_header_values_hold_no_line_breaks(self, header: str) -> None:
        """Nothing taken from a header can break a line of the reply (CR/LF injection)."""
        content = read_mail(header.encode() + b"\n\nbody")
        assert not any(char in content.message_id for char in "\r\n\x00\x85\u2028")


# --- the MIME structure --------------------------------------------------------------------

PLAIN = b"Content-Type: text/plain; charset=utf-8\n\n" + CMD.encode()
HTML = b"Content-Type: text/html; charset=utf-8\n\n<p>" + CMD.encode() + b"</p>"
OTHER_PLAIN = b"Content-Type: text/plain; charset=utf-8\n\nother"


class TestStructure:
    """Which part gives the text."""

    @pytest.mark.parametrize(
        ("raw", "text"),
        [
            (multipart("alternative", "b", PLAIN, HTML), CMD),
            (multipart("alternative", "b", HTML, PLAIN), CMD),
            (multipart("alternative", "b", HTML), CMD),
            (multipart("mixed", "b", PLAIN, OTHER_PLAIN), CMD),
            (
                multipart(
                    "mixed",
                    "b",
                    b"Content-Disposition: attachment\n" + OTHER_PLAIN,
                    b"Content-Disposition: inline\n" + PLAIN,
                ),
                CMD,
            ),
            (
                multipart("mixed", "b", b"Content-Type: text/plain\n\n  \n", HTML),
                CMD,
            ),
            (multipart("mixed", "b", b"Content-Type: text/plain\n\n  "), "  "),
            (multipart("mixed", "b", b"Content-Type: image/png\n\nxx"), ""),
            (multipart("mixed", "b", b"\n" + CMD.encode()), CMD),
            (multipart("digest", "b", b"\n" + CMD.encode(), PLAIN), CMD),
            (multipart("mixed", "b", b"Content-Type: message/rfc822\n\n" + mail(b"x"), PLAIN), CMD),
            (mail(b"--b\n" + PLAIN, 'Content-Type: multipart/mixed; boundary="b"'), CMD),
            (
                mail(
                    b"preamble\n--b  \n" + PLAIN + b"\n--b--  \nepilogue",
                    'Content-Type: multipart/mixed; boundary="b"',
                ),
                CMD,
            ),
            (mail(b"--b\n" + PLAIN, "Content-Type: multipart/mixed"), ""),
            (mail(b"--b\n" + PLAIN, 'Content-Type: multipart/mixed; boundary="c"'), ""),
            (mail(b"--b--\n--b\n" + PLAIN, 'Content-Type: multipart/mixed; boundary="b"'), ""),
            (
                mail(
                    b"--bb\n" + OTHER_PLAIN + b"\n--b\n" + PLAIN,
                    'Content-Type: multipart/mixed; boundary="b"',
                ),
                CMD,
            ),
            (
                mail(
                    b"x--b\n" + OTHER_PLAIN + b"\n--b\n" + PLAIN,
                    'Content-Type: multipart/mixed; boundary="b"',
                ),
                CMD,
            ),
            (mail(b"--b\n" + PLAIN, "Content-Type: multipart/mixed; boundary*0=b"), CMD),
            (mail(b"--a b\n" + PLAIN, 'Content-Type: multipart/mixed; boundary="a b"'), CMD),
            (mail(CMD.encode(), "Content-Type: text/plain charset=utf-8"), CMD),
            (mail(CMD.encode(), "Content-Type: garbage"), CMD),
            (mail(CMD.encode(), "Content-Type: application/json"), ""),
            (mail(CMD.encode(), "Content-Type: text/plain", "Content-Disposition: attachment"), ""),
            (mail(CMD.encode(), "Content-Disposition: attachment filename=x"), ""),
            (mail(CMD.encode(), "Content-Disposition: inline filename=x"), CMD),
            (mail(b"<b>" + CMD.encode() + b"</b>", "Content-Type: text/html"), CMD),
        ],
    )
    def test_text_source(self, raw: bytes, text: str) -> None:
        """First usable text/plain, else text/html rendered, else a blank text/plain, else ''."""
        assert read_mail(raw).text == text

    def test_headers_end_at_a_line_that_is_no_header(self) -> None:
        """As in the stdlib parser, a line that is not a header starts the body."""
        raw = b"Subject: s\nno colon here\nsecond line"
        content = read_mail(raw)
        assert (content.subject, content.text) == ("s", "no colon here\nsecond line")

    def test_mail_without_headers(self) -> None:
        """A mail that starts with an empty line is all body."""
        assert read_mail(b"\n" + CMD.encode()).text == CMD


def nested(depth: int) -> bytes:
    """A mail whose text/plain sits inside ``depth`` nested multiparts."""
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(depth)
    )
    closing = b"".join(b"\n--b%d--" % i for i in reversed(range(depth)))
    return b"Subject: x\n" + opening + PLAIN + closing


class TestCaps:
    """Hostile mails cost bounded time: caps give ERROR = 1."""

    def test_depth_cap_edge(self) -> None:
        """MAX_DEPTH nested multiparts are read; one more is ERROR = 1."""
        assert read_mail(nested(MAX_DEPTH)).text == CMD
        with pytest.raises(RequestError):
            read_mail(nested(MAX_DEPTH + 1))

    def test_parts_cap_edge(self) -> None:
        """The text may be the last of MAX_PARTS entities; one more is ERROR = 1."""
        filler = b"Content-Type: image/png\n\nxx"
        ok = multipart("mixed", "p", *([filler] * (MAX_PARTS - 2)), PLAIN)
        assert read_mail(ok).text == CMD
        with pytest.raises(RequestError):
            read_mail(multipart("mixed", "p", *([filler] * (MAX_PARTS - 1)), PLAIN))

    def test_parts_after_the_text_are_not_walked(self) -> None:
        """A text part before a flood of parts is read: the walk stops at it."""
        filler = b"Content-Type: image/png\n\nxx"
        assert read_mail(multipart("mixed", "p", PLAIN, *([filler] * 1000))).text == CMD

    def test_header_cap_edge(self) -> None:
        """MAX_HEADER_BYTES of header lines are read; one byte more is ERROR = 1."""
        prefix = b"X-Pad: "
        fill = MAX_HEADER_BYTES - len(prefix) - 1
        assert read_mail(prefix + b"a" * fill + b"\n\n" + CMD.encode()).text == CMD
        with pytest.raises(RequestError):
            read_mail(prefix + b"a" * (fill + 1) + b"\n\n" + CMD.encode())

    def test_header_cap_counts_all_parts(self) -> None:
        """Header bytes of all parts count together."""
        part = b"X-Pad: " + b"a" * (MAX_HEADER_BYTES // 50) + b"\n" + OTHER_PLAIN
        with pytest.raises(RequestError):
            read_mail(
                multipart("mixed", "p", *([b"Content-Disposition: attachment\n" + part] * 60))
            )

    def test_text_cap_edge(self) -> None:
        """MAX_TEXT_BYTES of decoded text is read; one byte more is ERROR = 1."""
        assert len(read_mail(mail(b"a" * MAX_TEXT_BYTES)).text) == MAX_TEXT_BYTES
        with pytest.raises(RequestError):
            read_mail(mail(b"a" * (MAX_TEXT_BYTES + 1)))

    def test_mail_size_cap(self) -> None:
        """A mail over MAX_MAIL_BYTES is refused before it is parsed."""
        with pytest.raises(RequestError):
            read_mail(b"a" * (MAX_MAIL_BYTES + 1))


def error_code(raw: bytes) -> int | None:
    """The RequestError code read_mail raises, or None when it reads the mail."""
    try:
        read_mail(raw)
    except RequestError as error:
        return error.code
    return None


IMAGE = b"Content-Type: image/png\n\nxx"
CONTAINER = b'Content-Type: multipart/mixed; boundary="q"\n\n--q\n' + IMAGE + b"\n--q--"
LONG_CONTAINER = (
    b'Content-Type: multipart/mixed; a="' + b";" * 40 + b'"; boundary=q\n\n--q\n' + IMAGE
)
STATUS = b"Content-Type: message/delivery-status\n\nAction: failed\n\nStatus: 5.1.1"
MANY_LINES = b"Content-Type: application/octet-stream\n\n" + b"\n" * 60_000


class TestGuards:
    """The mail given to the standard parser stops before its slow paths; the text may not."""

    @pytest.mark.parametrize(
        ("after_text", "before_text"),
        [
            ([CONTAINER] * 60, [CONTAINER] * 60),
            ([LONG_CONTAINER], [LONG_CONTAINER]),
            ([IMAGE] * 300, [IMAGE] * 300),
            ([b"X-Pad: y\n" * 100 + IMAGE] * 60, [b"X-Pad: y\n" * 100 + IMAGE] * 60),
            ([STATUS], [STATUS]),
            ([MANY_LINES], [MANY_LINES]),
        ],
        ids=["containers", "long-content-type", "delimiters", "header-lines", "status", "lines"],
    )
    def test_text_before_the_cut_is_read(
        self, after_text: list[bytes], before_text: list[bytes]
    ) -> None:
        """Past a cut the text is read when it comes first, and is ERROR = 1 when it comes later."""
        assert read_mail(multipart("mixed", "p", PLAIN, *after_text)).text == CMD
        assert error_code(multipart("mixed", "p", *before_text, PLAIN)) == 1

    def test_quoted_declarations_do_not_cut_the_text(self) -> None:
        """A few Content-Type lines quoted in the text itself leave it whole."""
        text = (CMD + '\nContent-Type: multipart/mixed; boundary="b"\n\n--b\n') * 20
        raw = mail(text.encode(), "Content-Type: text/plain; charset=utf-8")
        assert read_mail(raw).text == text

    @pytest.mark.parametrize(("lines", "code"), [(5000, None), (5001, 1)], ids=["5000", "5001"])
    def test_header_lines_cap_edge(self, lines: int, code: int | None) -> None:
        """5000 header lines (fields and continuations) are read; one more is ERROR = 1."""
        assert error_code(b"X: y\n" * lines + b"\n" + CMD.encode()) == code

    @pytest.mark.parametrize(
        ("lines", "code"), [(200_000, None), (200_001, 1)], ids=["200000", "200001"]
    )
    def test_line_cap_edge(self, lines: int, code: int | None) -> None:
        """The parser is given at most 200 000 lines: a text running past them is ERROR = 1."""
        assert error_code(b"Subject: x\n\n" + b"x\n" * (lines - 2)) == code

    def test_huge_content_type_charset(self) -> None:
        """The charset of a Content-Type too long for get_param is still found."""
        header = 'Content-Type: text/plain; a="' + ";" * 2000 + '"; charset=koi8-r'
        content = read_mail(mail(CMD.encode("koi8-r"), header))
        assert (content.text, content.charset) == (CMD, "koi8-r")

    def test_parser_failure_is_error_1(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Whatever the standard parser raises (RecursionError) becomes ERROR = 1."""

        def explode(data: bytes) -> None:
            raise RecursionError

        monkeypatch.setattr(mail_guards.PARSER, "parsebytes", explode)
        assert error_code(mail(CMD.encode())) == 1


# --- properties ----------------------------------------------------------------------------

CHARSET_NAMES = st.sampled_from(
    [
        "utf-8",
        "koi8-r",
        "windows-1251",
        "cp866",
        "iso-8859-5",
        "us-ascii",
        "utf-16",
        "utf-7",
        "x-unknown",
        "base64",
        "idna",
        "punycode",
        "unicode-escape",
        "undefined",
        '"utf-8',
        "",
    ]
)
CONTENT_TYPES = st.sampled_from(
    ["text/plain", "text/html", "text/x", "application/octet-stream", "message/rfc822", "garbage"]
)
ENCODINGS = st.sampled_from(["base64", "quoted-printable", "8bit", "7bit", "binary", "x-uuencode"])
BODIES = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=100).map(str.encode),
    st.text(max_size=100).map(lambda text: text.encode("koi8-r", "replace")),
    st.text(alphabet="<>/!-=\"' &#;[]textbrpdivscriptstyle\r\n", max_size=200).map(str.encode),
)
HEADER_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], max_codepoint=0x44F), max_size=40
)


@st.composite
def leaves(draw: st.DrawFn) -> bytes:
    """One non-multipart entity: random headers and body."""
    lines = [
        f"Content-Type: {draw(CONTENT_TYPES)}; charset={draw(CHARSET_NAMES)}",
        f"Content-Transfer-Encoding: {draw(ENCODINGS)}",
    ]
    if draw(st.booleans()):
        lines.append(f"Content-Disposition: {draw(st.sampled_from(['attachment', 'inline']))}")
    if draw(st.booleans()):
        lines.append(f"Subject: {draw(HEADER_TEXT)}")
    head = "\n".join(draw(st.permutations(lines))).encode("utf-8", "surrogateescape")
    return head + b"\n\n" + draw(BODIES)


def trees(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """A multipart entity around some children, sometimes left unclosed."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        boundary = draw(st.sampled_from(["b", "=_x", "a b", "b--", "--", ""]))
        kind = draw(st.sampled_from(["mixed", "alternative", "digest", "related"]))
        parts = draw(st.lists(children, max_size=4))
        body = b"".join(b"--" + boundary.encode() + b"\n" + part + b"\n" for part in parts)
        if draw(st.booleans()):
            body += b"--" + boundary.encode() + b"--\n"
        header = f'Content-Type: multipart/{kind}; boundary="{boundary}"'.encode()
        return header + b"\n\n" + body

    return build()


ENTITIES = st.recursive(leaves(), trees, max_leaves=12)

#: Lines that hit the guards in front of the standard parser.
JUNK_LINES = st.sampled_from(
    [
        b'Content-Type: multipart/mixed; boundary="p"',
        b"Content-Type: multipart/digest; boundary=q",
        b'Content-Type: multipart/mixed; a="' + b";" * 40 + b'"; boundary=q',
        b"Content-Type: message/rfc822",
        b"Content-Type: message/delivery-status",
        b"Content-Type: text/plain",
        b"--p",
        b"--p--",
        b"--q",
        b"X-Pad: " + b"y" * 2000,
        b" folded",
        b"",
        b"\n" * 500,
        b"x",
    ]
)


def assert_well_formed(content: MailContent) -> None:
    """Invariants every MailContent keeps."""
    assert "\r" not in content.text
    assert content.command in content.text
    for value in (
        content.subject,
        content.from_address,
        content.message_id,
        content.auto_submitted,
        content.precedence,
        content.list_id,
    ):
        assert not any(char in value for char in "\r\n\x00")


def assert_read_or_error_1(raw: bytes, *, default: str) -> None:
    """read_mail gives a well-formed MailContent or raises RequestError(1), nothing else."""
    try:
        result: MailContent | RequestError = read_mail(raw, default_charset=default)
    except RequestError as error:
        result = error
    if isinstance(result, RequestError):
        assert result.code == 1
    else:
        assert_well_formed(result)


class TestProperties:
    """Any bytes give a MailContent or a RequestError, never anything else."""

    @given(st.binary(max_size=2000))
    def test_any_bytes(self, raw: bytes) -> None:
        """st.binary(): MailContent or RequestError."""
        assert_read_or_error_1(raw, default="koi8-r")

    @settings(suppress_health_check=[HealthCheck.too_slow])
    @given(
        entity=ENTITIES,
        subject=HEADER_TEXT,
        sender=HEADER_TEXT,
        crlf=st.booleans(),
        default=st.sampled_from(["koi8-r", "utf-8", "windows-1251"]),
    )
    def test_structured_mails(
        self, entity: bytes, subject: str, sender: str, crlf: bool, default: str
    ) -> None:
        """Random MIME trees with random headers: MailContent or RequestError."""
        head = f"From: {sender}\nSubject: {subject}\nMessage-ID: <{sender}>\n".encode(
            "utf-8", "surrogateescape"
        )
        raw = head + entity
        if crlf:
            raw = raw.replace(b"\n", b"\r\n")
        assert_read_or_error_1(raw, default=default)

    @settings(suppress_health_check=[HealthCheck.too_slow])
    @given(
        text=st.text(alphabet="abc АБВ:+\n", min_size=1, max_size=300).filter(str.strip),
        junk=st.lists(JUNK_LINES, max_size=300),
    )
    def test_text_first_is_read_whatever_follows(self, text: str, junk: list[bytes]) -> None:
        """A text part first is read as it is, whatever hostile MIME follows it."""
        first = b"Content-Type: text/plain; charset=utf-8\n\n" + text.encode()
        raw = mail(
            b"--p\n" + first + b"\n--p\n" + b"\n".join(junk),
            'Content-Type: multipart/mixed; boundary="p"',
        )
        assert read_mail(raw).text == text

    @given(
        text=st.text(max_size=300),
        charset=st.sampled_from(["utf-8", "koi8-r", "windows-1251", "cp866", "iso-8859-5"]),
        encoding=st.sampled_from(["base64", "quoted-printable", "8bit"]),
    )
    def test_declared_text_round_trips(self, text: str, charset: str, encoding: str) -> None:
        """Text in a declared charset and any transfer encoding reads back, LF-normalised."""
        try:
            data = text.encode(charset)
        except UnicodeEncodeError:
            data = text.encode("utf-8")
            charset = "utf-8"
        if encoding == "base64":
            payload = base64.encodebytes(data)
        elif encoding == "quoted-printable":
            payload = binascii.b2a_qp(data, quotetabs=True)
        else:
            payload = data
        raw = mail(
            payload,
            f"Content-Type: text/plain; charset={charset}",
            f"Content-Transfer-Encoding: {encoding}",
        )
        expected = text.replace("\r\n", "\n").replace("\r", "\n").removeprefix("\ufeff")
        content = read_mail(raw)
        assert (content.text, content.charset) == (expected, charset)
