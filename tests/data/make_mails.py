"""Write the real-shaped mails of ``tests/data/mails/`` (run from anywhere).

Each mail is built byte by byte (not through ``email.generator``) so the
corpus holds exactly the encodings, line endings and mistakes that real
senders produce. The output is deterministic: running this again rewrites
the same bytes. ``tests/data/README.md`` says what each file checks.
"""

from __future__ import annotations

import base64
import quopri
from collections.abc import Callable
from pathlib import Path

__all__ = ["MAILS", "write_all"]

HERE = Path(__file__).resolve().parent / "mails"
CMD = "alex:secret:42:::+79991234567:Привет, мир"
DATE = "Date: Mon, 06 May 2024 10:15:00 +0300"


def _mail(headers: list[str], body: bytes, *, eol: bytes = b"\n") -> bytes:
    head = b"\n".join(h.encode("ascii") for h in headers)
    return (head + b"\n\n" + body).replace(b"\n", eol)


def _std(subject: str, mid: str, *extra: str, sender: str = "Alex <alex@example.com>") -> list[str]:
    return [
        f"From: {sender}",
        "To: send@sms.example.com",
        f"Subject: {subject}",
        DATE,
        f"Message-ID: <{mid}@example.com>",
        "MIME-Version: 1.0",
        *extra,
    ]


def _qp(text: str, charset: str) -> bytes:
    return quopri.encodestring(text.encode(charset))


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data)


def _word_b(text: str, charset: str) -> str:
    """An RFC 2047 encoded word in the B encoding."""
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def _word_q(text: str, charset: str) -> str:
    """An RFC 2047 encoded word in the Q encoding."""
    encoded = "".join(
        chr(byte) if chr(byte).isalnum() and byte < 128 else "_" if byte == 32 else f"={byte:02X}"
        for byte in text.encode(charset)
    )
    return f"=?{charset}?Q?{encoded}?="


def koi8r_declared() -> bytes:
    return _mail(
        _std(
            "sms",
            "koi8r-declared",
            'Content-Type: text/plain; charset="koi8-r"',
            "Content-Transfer-Encoding: 8bit",
        ),
        f"{CMD}\n".encode("koi8-r"),
    )


def koi8r_undeclared_8bit() -> bytes:
    return _mail(
        _std("sms", "koi8r-undeclared", "Content-Transfer-Encoding: 8bit"),
        "alex:secret:43:::+79991234567:Сервер db01 недоступен, проверьте питание\n".encode(
            "koi8-r"
        ),
    )


def koi8r_undeclared_short() -> bytes:
    return _mail(
        ["From: alex@example.com", "Subject: sms"],
        "alex:secret:44:::+79991234567:ВНИМАНИЕ АВАРИЯ\n".encode("koi8-r"),
    )


def cp1251_undeclared_8bit() -> bytes:
    return _mail(
        _std("sms", "cp1251-undeclared", "Content-Type: text/plain"),
        "alex:secret:45:::+79991234567:Сервер db01 недоступен, проверьте питание\n".encode(
            "cp1251"
        ),
    )


def cp1251_quoted_printable() -> bytes:
    text = (
        "alex:secret:46:::+79991234567:Резервное копирование завершено успешно, "
        "архив 12 ГБ записан на ленту LTO-7 в 03:15, следующий запуск завтра\n"
    )
    return _mail(
        _std(
            _word_q("Резервное копирование", "windows-1251"),
            "cp1251-qp",
            "Content-Type: text/plain; charset=windows-1251",
            "Content-Transfer-Encoding: quoted-printable",
        ),
        _qp(text, "cp1251"),
    )


def utf8_base64() -> bytes:
    return _mail(
        _std(
            _word_b("Тест", "UTF-8"),
            "utf8-b64",
            "Content-Type: text/plain; charset=UTF-8",
            "Content-Transfer-Encoding: base64",
        ),
        _b64("alex:secret:47:::+79991234567:Тест UTF-8 ✓\r\n".encode()),
    )


def html_only_with_text_tags() -> bytes:
    html = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Уведомление</title>"
        "<style>p { color: red }</style></head><body>"
        "<p>Здравствуйте!</p>"
        "<p>[text]alex:secret:48:::+79991234567:Привет &amp; пока, <b>мир</b>[/text]</p>"
        "<p>Это письмо отправлено автоматически.</p></body></html>\n"
    )
    return _mail(
        _std(
            "html",
            "html-text-tags",
            "Content-Type: text/html; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ),
        html.encode(),
    )


def html_only_without_text_tags() -> bytes:
    html = (
        "<html><body><div>alex:secret:49:::+79991234567:Цена&nbsp;100&nbsp;&#8381; &lt;ok&gt;"
        "</div><div>-- <br>Отдел мониторинга</div></body></html>\n"
    )
    return _mail(
        _std("html", "html-plain", "Content-Type: text/html; charset=koi8-r"),
        html.encode("koi8-r"),
    )


def outlook_alternative_cp1251() -> bytes:
    boundary = "_000_DB6PR0801MB1782A1B2C3D4E5F6DB6PR0801MB1782eurp_"
    plain = (
        "alex:secret:50:::+79991234567:Совещание переносится на 16:00\n"
        "\n"
        "С уважением,\n"
        "Иван Петров\n"
    )
    html = (
        '<html xmlns:o="urn:schemas-microsoft-com:office:office">\n'
        '<head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">\n'
        "<style><!--\np.MsoNormal {margin:0cm; font-size:11.0pt;}\n--></style>\n"
        '<!--[if gte mso 9]><xml><o:shapedefaults v:ext="edit" spidmax="1026" /></xml>'
        "<![endif]-->\n</head>\n"
        '<body lang="RU" link="#0563C1">\n<div class="WordSection1">\n'
        '<p class="MsoNormal">alex:secret:50:::+79991234567:Совещание переносится на 16:00'
        "<o:p></o:p></p>\n"
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>\n'
        '<p class="MsoNormal">С уважением,<o:p></o:p></p>\n'
        '<p class="MsoNormal">Иван Петров<o:p></o:p></p>\n'
        "</div>\n</body>\n</html>\n"
    )
    body = (
        f"--{boundary}\n"
        'Content-Type: text/plain; charset="windows-1251"\n'
        "Content-Transfer-Encoding: quoted-printable\n\n"
    ).encode() + _qp(plain, "cp1251")
    body += (
        f"\n--{boundary}\n"
        'Content-Type: text/html; charset="windows-1251"\n'
        "Content-Transfer-Encoding: quoted-printable\n\n"
    ).encode() + _qp(html, "cp1251")
    body += f"\n--{boundary}--\n".encode()
    headers = [
        f'From: "{_word_b("Иван Петров", "windows-1251")}" <ivan.petrov@corp.example.ru>',
        "To: send@sms.example.com",
        f"Subject: {_word_b('Совещание', 'windows-1251')}",
        f"Thread-Topic: {_word_b('Совещание', 'windows-1251')}",
        "Thread-Index: AdqfE2m1Yw7c0n9dQmKpL8r3v5x0Bg==",
        DATE,
        "Message-ID: <DB6PR0801MB1782A1B2C3D4E5F6@DB6PR0801MB1782.eurprd08.prod.outlook.com>",
        "Accept-Language: ru-RU, en-US",
        "Content-Language: ru-RU",
        "X-MS-Has-Attach:",
        "X-MS-TNEF-Correlator:",
        f'Content-Type: multipart/alternative;\n\tboundary="{boundary}"',
        "MIME-Version: 1.0",
    ]
    return _mail(headers, body, eol=b"\r\n")


def signature_rfc3676() -> bytes:
    return _mail(
        _std("sms", "sig", "Content-Type: text/plain; charset=utf-8"),
        f"{CMD}\n-- \nАлекс\nтел. +7 999 000-00-00\n".encode(),
    )


def signature_bare_dashes() -> bytes:
    return _mail(
        _std("sms", "sig-bare", "Content-Type: text/plain; charset=utf-8"),
        "alex:secret:51:::+79991234567:Итоги:\n--\nвсе тесты прошли\n".encode(),
    )


def lying_charset_utf8_is_cp1251() -> bytes:
    return _mail(
        _std("sms", "lying-utf8", "Content-Type: text/plain; charset=utf-8"),
        "alex:secret:52:::+79991234567:Проверка связи, ответьте пожалуйста\n".encode("cp1251"),
    )


def lying_charset_ascii_is_koi8r() -> bytes:
    return _mail(
        _std("sms", "lying-ascii", "Content-Type: text/plain; charset=us-ascii"),
        "alex:secret:53:::+79991234567:Проверка связи, ответьте пожалуйста\n".encode("koi8-r"),
    )


def unknown_charset_name() -> bytes:
    return _mail(
        _std("sms", "x-unknown", "Content-Type: text/plain; charset=x-unknown"),
        "alex:secret:54:::+79991234567:Диск /var заполнен на 95%\n".encode("koi8-r"),
    )


def subject_rfc2047_base64() -> bytes:
    return _mail(
        _std(
            _word_b("Проверка связи", "koi8-r"),
            "subj-b",
            "Content-Type: text/plain; charset=koi8-r",
        ),
        f"{CMD}\n".encode("koi8-r"),
    )


def subject_rfc2047_qp_folded() -> bytes:
    return _mail(
        _std(
            "=?utf-8?Q?=D0=A1=D0=B1=D0=BE=D0=B9_?=\n"
            " =?utf-8?Q?=D1=81=D0=B5=D1=80=D0=B2=D0=B5=D1=80=D0=B0?= #17",
            "subj-q",
            "Content-Type: text/plain; charset=utf-8",
        ),
        f"{CMD}\n".encode(),
    )


def subject_raw_8bit_cp1251() -> bytes:
    head = _std("PLACEHOLDER", "subj-raw", "Content-Type: text/plain; charset=windows-1251")
    raw = _mail(head, f"{CMD}\n".encode("cp1251"))
    return raw.replace(b"PLACEHOLDER", "Сбой сервера".encode("cp1251"))


def rfc2231_charset_parameter() -> bytes:
    return _mail(
        _std(
            "sms",
            "rfc2231",
            "Content-Type: text/plain;\n charset*=us-ascii'en'koi8-r",
            "Content-Transfer-Encoding: 8bit",
        ),
        f"{CMD}\n".encode("koi8-r"),
    )


def cp866_declared() -> bytes:
    return _mail(
        _std("sms", "cp866", "Content-Type: text/plain; charset=cp866", sender="bat@dos.example"),
        "alex:secret:55:::+79991234567:Задание 1С завершено\n".encode("cp866"),
    )


def iso8859_5_declared() -> bytes:
    return _mail(
        _std("sms", "iso5", "Content-Type: text/plain; charset=ISO-8859-5"),
        "alex:secret:56:::+79991234567:Привет из ISO-8859-5\n".encode("iso8859-5"),
    )


def large_100kb() -> bytes:
    lines = [
        f"2024-05-06 03:{i // 60 % 60:02d}:{i % 60:02d} backup[4242]: копирую блок {i} из 1370"
        for i in range(1370)
    ]
    body = "[text]alex:secret:57:::+79991234567:Бэкап завершён[/text]\n\nЖурнал:\n"
    body += "\n".join(lines) + "\n"
    return _mail(
        _std("backup log", "large", "Content-Type: text/plain; charset=utf-8"), body.encode()
    )


def mime_bomb_1000_levels() -> bytes:
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(1000)
    )
    closing = b"".join(b"\n--b%d--" % i for i in reversed(range(1000)))
    return (
        "\n".join(_std("bomb", "bomb")).encode()
        + b"\n"
        + opening
        + b"Content-Type: text/plain; charset=utf-8\n\n"
        + f"{CMD}\n".encode()
        + closing
        + b"\n"
    )


def mime_bomb_after_text() -> bytes:
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="n%d"\n\n--n%d\n' % (i, i) for i in range(1000)
    )
    return _mail(
        _std("bomb after text", "bomb-after", 'Content-Type: multipart/mixed; boundary="top"'),
        b"--top\nContent-Type: text/plain; charset=utf-8\n\n"
        + f"{CMD}\n".encode()
        + b"--top\n"
        + opening
        + b"text\n--top--\n",
    )


def too_many_parts() -> bytes:
    empty = b"--p\nContent-Type: application/octet-stream\n\nAA==\n" * 150
    return _mail(
        _std("parts", "parts", 'Content-Type: multipart/mixed; boundary="p"'),
        empty + b"--p\nContent-Type: text/plain\n\n" + CMD.encode() + b"\n--p--\n",
    )


def dsn_bounce() -> bytes:
    report = (
        b"Reporting-MTA: dns; mx.example.com\n"
        b"Arrival-Date: Mon, 06 May 2024 10:14:58 +0300\n\n"
        b"Final-Recipient: rfc822; nobody@example.org\n"
        b"Action: failed\nStatus: 5.1.1\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: user unknown\n"
    )
    body = (
        b"--dsn\nContent-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n"
        b"This is the mail system at host mx.example.com.\n\n"
        b"I'm sorry to have to inform you that your message could not\n"
        b"be delivered to one or more recipients.\n\n"
        b"<nobody@example.org>: user unknown\n"
        b"--dsn\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
        + report
        + b"\n--dsn\nContent-Description: Undelivered Message Headers\n"
        b"Content-Type: text/rfc822-headers\n\n"
        b"From: Alex <alex@example.com>\nTo: nobody@example.org\nSubject: report\n"
        b"--dsn--\n"
    )
    headers = [
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)",
        "To: send@sms.example.com",
        "Subject: Undelivered Mail Returned to Sender",
        DATE,
        "Message-ID: <dsn@mx.example.com>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"',
    ]
    return _mail(headers, body)


def parts_flood_after_text() -> bytes:
    return _mail(
        _std("flood after text", "flood-after", 'Content-Type: multipart/mixed; boundary="f"'),
        b"--f\nContent-Type: text/plain; charset=utf-8\n\n"
        + f"{CMD}\n".encode()
        + b"--f\n\n" * 18000
        + b"--f--\n",
    )


def delivery_status_flood() -> bytes:
    return _mail(
        _std("status flood", "status-flood", 'Content-Type: multipart/report; boundary="r"'),
        b"--r\nContent-Type: message/delivery-status\n\n"
        + b"Action: failed\n\n" * 5000
        + b"--r\nContent-Type: text/plain; charset=utf-8\n\n"
        + f"{CMD}\n".encode()
        + b"--r--\n",
    )


def huge_header() -> bytes:
    junk = "X-Junk: start\n" + "".join(f" folded line {i:05d} of junk\n" for i in range(4000))
    return _mail([*_std("huge header", "huge-header"), junk.rstrip("\n")], f"{CMD}\n".encode())


def giant_base64_attachment() -> bytes:
    blob = bytes((i * 7919) % 251 for i in range(64 * 1024))
    body = (
        b"--att\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        + f"{CMD}\n".encode()
        + b"--att\nContent-Type: application/octet-stream; name=dump.bin\n"
        b"Content-Disposition: attachment; filename=dump.bin\n"
        b"Content-Transfer-Encoding: base64\n\n" + _b64(blob) + b"--att--\n"
    )
    return _mail(_std("dump", "giant", 'Content-Type: multipart/mixed; boundary="att"'), body)


def attachment_before_text() -> bytes:
    body = (
        b"--mix\nContent-Type: text/plain; charset=utf-8; name=old.txt\n"
        b"Content-Disposition: attachment; filename=old.txt\n\n"
        + "alex:secret:1:::+79990000000:это вложение, не команда\n".encode()
        + b"--mix\nContent-Type: text/plain; charset=utf-8\n\n"
        + "alex:secret:58:::+79991234567:Команда после вложения\n".encode()
        + b"--mix--\n"
    )
    return _mail(
        _std("att first", "att-first", 'Content-Type: multipart/mixed; boundary="mix"'), body
    )


def _line_endings_body() -> bytes:
    return "alex:secret:59:::+79991234567:Строка один\nстрока два\n".encode()


def crlf_line_endings() -> bytes:
    return _mail(
        _std("crlf", "crlf", "Content-Type: text/plain; charset=utf-8"),
        _line_endings_body(),
        eol=b"\r\n",
    )


def lf_line_endings() -> bytes:
    return _mail(
        _std("crlf", "lf", "Content-Type: text/plain; charset=utf-8"), _line_endings_body()
    )


def lone_cr_line_endings() -> bytes:
    return _mail(
        _std("crlf", "cr", "Content-Type: text/plain; charset=utf-8"),
        _line_endings_body(),
        eol=b"\r",
    )


def zabbix_alert() -> bytes:
    text = (
        "alex:secret:::,,,1:+79991234567:Problem started at 12:00:01 on 2024.05.06\n"
        "Problem name: Высокая загрузка процессора на web-01\n"
        "Host: web-01\n"
        "Severity: High\n"
        "Operational data: 97.3 %\n"
        "Original problem ID: 1234567\n"
    )
    return _mail(
        [
            "From: Zabbix <zabbix@monitoring.example.com>",
            "To: send@sms.example.com",
            "Date: Mon, 06 May 2024 12:00:05 +0300",
            f"Subject: {_word_b('Problem: Высокая загрузка', 'UTF-8')}",
            "Message-ID: <20240506090005.1234567@monitoring.example.com>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=UTF-8",
            "Content-Transfer-Encoding: base64",
        ],
        _b64(text.encode()),
        eol=b"\r\n",
    )


def cron_mailto() -> bytes:
    return _mail(
        [
            "From: root (Cron Daemon)",
            "To: send@sms.example.com",
            "Subject: Cron <root@backup01> /usr/local/bin/nightly-backup.sh",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=UTF-8",
            "Content-Transfer-Encoding: 8bit",
            "X-Cron-Env: <MAILTO=send@sms.example.com>",
            "X-Cron-Env: <SHELL=/bin/sh>",
            "X-Cron-Env: <HOME=/root>",
            "Message-Id: <20240506000501.8F2A1C0123@backup01.example.com>",
            DATE,
        ],
        "alex:secret::::+79991234567:Ночной бэкап backup01 завершён: 12 ГБ за 41 мин\n".encode(),
    )


def alertmanager_html() -> bytes:
    html = (
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN">\n'
        "<html><head>\n"
        '<meta name="viewport" content="width=device-width">\n'
        '<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">\n'
        "<title>[FIRING:1] DiskFull (node01 critical)</title>\n"
        "<style>\n/* Email styles */\n* { margin: 0; }\ntable td { vertical-align: top; }\n"
        "</style>\n</head>\n"
        '<body itemscope itemtype="http://schema.org/EmailMessage">\n'
        '<table class="body-wrap"><tr><td></td><td class="container" width="600">\n'
        '<table class="main" width="100%" cellpadding="0" cellspacing="0">\n'
        '<tr><td class="alert alert-warning">1 alert for alertname=DiskFull</td></tr>\n'
        '<tr><td class="content-wrap">\n'
        "<table><tr><td><strong>[1] Firing</strong></td></tr>\n"
        "<tr><td>Labels<br />alertname = DiskFull<br />instance = node01:9100<br />"
        "severity = critical<br />Annotations<br />summary = Диск / заполнен на 97%<br />"
        '<a href="http://prometheus:9090/graph?g0.expr=disk&amp;g0.tab=1">Source</a><br />'
        "</td></tr></table>\n</td></tr></table>\n</td></tr></table>\n</body></html>\n"
    )
    return _mail(
        [
            "From: alertmanager@example.com",
            "To: +79991234567@sms.example.com",
            "Subject: [FIRING:1] DiskFull (node01 critical)",
            "Message-Id: <1715000000000000000.42@alertmanager-0>",
            DATE,
            "MIME-Version: 1.0",
            'Content-Type: multipart/alternative;  boundary="6f1d3e0b"',
        ],
        b"--6f1d3e0b\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b"Content-Type: text/html; charset=UTF-8\r\nDate: Mon, 06 May 2024 10:15:00 +0300\r\n\r\n"
        + _qp(html, "utf-8").replace(b"\n", b"\r\n")
        + b"\r\n--6f1d3e0b--\r\n",
    )


def command_with_colons() -> bytes:
    return _mail(
        _std("sms", "colons", "Content-Type: text/plain; charset=utf-8"),
        "alex:secret:60:::+79991234567:Встреча в 15:00: зал 3, Wi-Fi: guest:guest\n".encode(),
    )


def list_mode_multiline() -> bytes:
    text = (
        "alex:secret:61::,,,2::\n"
        "+79991234567:Первое сообщение\n"
        "+79997654321;89990000001:Второе сообщение\n"
        "продолжение второго\n"
        "+79990000002:Третье: с двоеточием\\nи переносом\n"
    )
    return _mail(
        _std("list", "list", "Content-Type: text/plain; charset=koi8-r"), text.encode("koi8-r")
    )


def text_tags_case_insensitive() -> bytes:
    text = (
        "Добрый день!\n\n[TEXT]alex:secret:62:::+79991234567:Регистр тегов не важен[/Text]\n\n"
        "CONFIDENTIALITY NOTICE: this e-mail may contain [text] that is not for you.\n"
    )
    return _mail(_std("sms", "tags-case", "Content-Type: text/plain; charset=utf-8"), text.encode())


def text_tag_unclosed() -> bytes:
    return _mail(
        _std("sms", "tag-open", "Content-Type: text/plain; charset=utf-8"),
        "Привет\n[text]alex:secret:63:::+79991234567:Без закрывающего тега\n".encode(),
    )


def nested_mixed_related_alternative() -> bytes:
    body = (
        b'--outer\nContent-Type: multipart/related; boundary="rel";\n'
        b' type="multipart/alternative"\n\n'
        b'--rel\nContent-Type: multipart/alternative; boundary="alt"\n\n'
        b'--alt\nContent-Type: text/plain; charset="koi8-r"\nContent-Transfer-Encoding: 8bit\n\n'
        + "alex:secret:64:::+79991234567:Глубоко вложенный текст\n".encode("koi8-r")
        + b'\n--alt\nContent-Type: text/html; charset="koi8-r"\n\n'
        + "<p>alex:secret:64:::+79991234567:Глубоко вложенный текст</p>\n".encode("koi8-r")
        + b"\n--alt--\n\n--rel\nContent-Type: image/png\nContent-ID: <logo>\n"
        b"Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--rel--\n"
        b'\n--outer\nContent-Type: application/pdf; name="report.pdf"\n'
        b'Content-Disposition: attachment; filename="report.pdf"\n'
        b"Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--outer--\n"
    )
    return _mail(_std("nested", "nested", 'Content-Type: multipart/mixed; boundary="outer"'), body)


def forwarded_message_rfc822() -> bytes:
    inner = _mail(
        ["From: someone@else.example", "Subject: old", "Content-Type: text/plain; charset=utf-8"],
        "alex:secret:1:::+79990000000:чужая команда\n".encode(),
    )
    body = (
        b"--fwd\nContent-Type: message/rfc822\n\n"
        + inner
        + b"\n--fwd\nContent-Type: text/plain; charset=utf-8\n\n"
        + "alex:secret:65:::+79991234567:Своя команда\n".encode()
        + b"--fwd--\n"
    )
    return _mail(_std("Fwd: old", "fwd", 'Content-Type: multipart/mixed; boundary="fwd"'), body)


def blank_plain_html_fallback() -> bytes:
    body = (
        b"--alt\nContent-Type: text/plain; charset=utf-8\n\n \n\n"
        b"--alt\nContent-Type: text/html; charset=utf-8\n\n"
        + "<p>alex:secret:66:::+79991234567:Только в HTML</p>\n".encode()
        + b"--alt--\n"
    )
    return _mail(
        _std("html", "blank-plain", 'Content-Type: multipart/alternative; boundary="alt"'), body
    )


def apikey_empty_login() -> bytes:
    return _mail(
        _std("sms", "apikey", "Content-Type: text/plain; charset=utf-8"),
        ":0123456789abcdef0123456789abcdef:67:::+79991234567:Ключ API вместо логина\n".encode(),
    )


def utf8_bom_undeclared() -> bytes:
    return _mail(
        ["From: script@example.com", "Subject: sms"],
        "\ufeffalex:secret:68:::+79991234567:Файл из Блокнота\n".encode(),
    )


def mbox_from_line() -> bytes:
    return b"From alex@example.com Mon May  6 10:15:00 2024\n" + koi8r_declared()


def auto_reply_headers() -> bytes:
    return _mail(
        [
            *_std(_word_q("Автоответ: sms", "utf-8"), "auto"),
            "Auto-Submitted: auto-replied",
            "Precedence: bulk",
            "List-Id: Alerts list\n <alerts.lists.example.com>",
            "Content-Type: text/plain; charset=utf-8",
        ],
        "Я в отпуске до 20 мая.\n".encode(),
    )


def mail_format_subject_line() -> bytes:
    return _mail(
        _std("sms", "mail-format", "Content-Type: text/plain; charset=utf-8"),
        "alex:secret:69::,8:ivan@example.com:__MAIL__:Текст письма\nsubj:Тема письма\n".encode(),
    )


def flash_translit_command() -> bytes:
    return _mail(
        _std("sms", "flash", "Content-Type: text/plain; charset=koi8-r"),
        "alex:secret:70:0101251200,3:1,1,Alex,1:89991234567,+79997654321:Привет, мир\n".encode(
            "koi8-r"
        ),
    )


def cp866_undeclared() -> bytes:
    return _mail(
        ["From: bat@dos.example", "Subject: sms"],
        "alex:secret:71:::+79991234567:Задание резервного копирования завершено\n".encode("cp866"),
    )


MAILS: dict[str, Callable[[], bytes]] = {
    f"{function.__name__}.eml": function
    for function in (
        koi8r_declared,
        koi8r_undeclared_8bit,
        koi8r_undeclared_short,
        cp1251_undeclared_8bit,
        cp1251_quoted_printable,
        utf8_base64,
        html_only_with_text_tags,
        html_only_without_text_tags,
        outlook_alternative_cp1251,
        signature_rfc3676,
        signature_bare_dashes,
        lying_charset_utf8_is_cp1251,
        lying_charset_ascii_is_koi8r,
        unknown_charset_name,
        subject_rfc2047_base64,
        subject_rfc2047_qp_folded,
        subject_raw_8bit_cp1251,
        rfc2231_charset_parameter,
        cp866_declared,
        cp866_undeclared,
        iso8859_5_declared,
        large_100kb,
        mime_bomb_1000_levels,
        mime_bomb_after_text,
        too_many_parts,
        huge_header,
        giant_base64_attachment,
        attachment_before_text,
        crlf_line_endings,
        lf_line_endings,
        lone_cr_line_endings,
        zabbix_alert,
        cron_mailto,
        alertmanager_html,
        command_with_colons,
        list_mode_multiline,
        text_tags_case_insensitive,
        text_tag_unclosed,
        nested_mixed_related_alternative,
        forwarded_message_rfc822,
        blank_plain_html_fallback,
        apikey_empty_login,
        utf8_bom_undeclared,
        mbox_from_line,
        auto_reply_headers,
        mail_format_subject_line,
        flash_translit_command,
        dsn_bounce,
        parts_flood_after_text,
        delivery_status_flood,
    )
}


def write_all(folder: Path = HERE) -> None:
    """Write every mail of :data:`MAILS` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, build in MAILS.items():
        (folder / name).write_bytes(build())


if __name__ == "__main__":
    write_all()
