"""The SMSC e-mail grammar: command text → :class:`~mailbridge.models.Command` (SPEC §1).

Each fragment below quotes the line of ``seeds/smsc-smtp-email-gateway.txt``
it implements and is compiled once. The parser only splits the command into
its fields, still as strings; what the fields mean (numbers, phones, times,
prefixes) is checked by :mod:`mailbridge.core.request`. Any text either parses or
raises ``RequestError(1)``.

Decisions where the seed is silent:

* ``<mes>`` is everything after the sixth colon to the end of the command
  text, stripped of surrounding whitespace; CRLF and lone CR become LF.
* The ``subj:``/``voice:`` last lines and the ``~~~`` param are taken off the
  text only when the request is an e-mail (format 8 or ``__MAIL__:``) or a
  call (format 9 or ``__CALL__:``); otherwise they stay in the text. In list
  mode the format is read from the format field or the prefix of the first
  line's message.
* List mode: blank lines are skipped, a line without a colon is an error
  (``1``) unless ``test=2``, where it continues the previous message. Inside a
  continued message, blank lines are kept as line breaks; each message is
  stripped at its ends. A ``~~~`` param must be the same for every message.
"""

from __future__ import annotations

import re

from mailbridge.errors import RequestError
from mailbridge.models import Command, CommandEntry

__all__ = ["parse_command", "split_prefix"]

# seed: "<login>:<psw>:<id>:<time>,<tz>:<translit>,<format>,<sender>,<test>:<phones>:<mes>"
# seed: "If some optional parameter is missing, then the colon must remain."
#   A field is anything up to the next colon; the last one (<mes> or <list>)
#   takes the rest of the text, colons included.
field = r"[^:]*"
command = (
    rf"(?P<login>{field}):"
    rf"(?P<psw>{field}):"
    rf"(?P<id>{field}):"
    rf"(?P<when>{field}):"
    rf"(?P<options>{field}):"
    rf"(?P<phones>{field}):"
    r"(?P<mes>.*)"
)

# seed: "<time>,<tz>"
#   The time itself never holds a comma (``DD.MM.YY hh.mm``); what follows the
#   first comma is the tz, checked later.
when = r"(?P<time>[^,]*)(?:,(?P<tz>.*))?"

# seed: "In the composite field <translate>,<format>,<sender>,<test>, any parameter
#        can be omitted, keeping the initial comma."
#   ``,1`` / ``,1,Alex`` / ``,1,,1`` / ``1``; a sender never holds a comma.
options = (
    r"(?P<translit>[^,]*)"
    r"(?:,(?P<format>[^,]*)"
    r"(?:,(?P<sender>[^,]*)"
    r"(?:,(?P<test>.*))?)?)?"
)

# seed: "list | ... presented as: phones1:mes1 / phones2:mes2 ..."
list_line = r"(?P<phones>[^:]*):(?P<mes>.*)"

# seed: "If you want to pass a newline character in the mes message, specify it with \n."
escaped_newline = r"\\n"

# seed: "it is possible to enable a special mode for transmitting this type of message.
#        To do this, pass a value equal to 2 in the test parameter."
#   A line starts a new message when it begins with a phone list and a colon:
#   numbers (at least 7 digits, so "10:30 restart" stays text), G<n>, #id, e-mail.
_phone = r"(?:\+[ \t]*)?\(*\d(?:[ \t\-()]*\d){6,}\)*"
_group = r"[Gg]\d+"
_telegram = r"\#-?[A-Za-z0-9_]+"
_email = r"[^\s@:,;]+@[^\s@:,;]+"
_entry = rf"(?:{_phone}|{_group}|{_telegram}|{_email})"
#   (No two neighbouring fragments can both match a blank: the pattern stays linear.)
phone_list_start = rf"[ \t]*{_entry}(?:[ \t]*[,;][ \t]*{_entry})*[ \t]*(?:[,;][ \t]*)?:"

# seed: "8 – e-mail. The subject of the letter is indicated at the end of the message text
#        through a line feed in the form "subj:Theme"."
# seed: "9 – voice message (call). The voice ... is indicated at the end of the message
#        text through a line feed in the form of "voice:The voice.""
param_line = r"[ \t]*(?P<key>subj|voice)[ \t]*:(?P<value>.*)"

# seed: "a special combination "\n~~~\n" (line feed, 3 of the tilde character, and again
#        line feed), after which you can pass the param parameter"
tilde_line = r"[ \t]*~~~[ \t]*"

# seed: "__CALL__: message", "__VIBER__: message", "__SOC__: message", "__MAIL__: message",
#       "__BOT__: message", "__PING__", "__HLR__"
#   Matched case-insensitively, with optional blanks before the colon. The parser
#   itself needs only __CALL__/__MAIL__ (they decide whether subj/voice/~~~ are
#   parameters); the request builder takes each message's prefix from split_prefix.
prefix = r"__(?:(?P<name>CALL|VIBER|SOC|MAIL|BOT)__[ \t]*:|(?P<bare>PING|HLR)__(?:[ \t]*:)?)"

_COMMAND_RE = re.compile(command, re.DOTALL)
_WHEN_RE = re.compile(when, re.DOTALL)
_OPTIONS_RE = re.compile(options, re.DOTALL)
_LIST_LINE_RE = re.compile(list_line, re.DOTALL)
_ESCAPED_NEWLINE_RE = re.compile(escaped_newline)
_PHONE_LIST_START_RE = re.compile(phone_list_start)
_PARAM_LINE_RE = re.compile(param_line, re.IGNORECASE)
_TILDE_LINE_RE = re.compile(tilde_line)
_PREFIX_RE = re.compile(prefix, re.IGNORECASE)

_PARAM_KEYS = {"8": "subj", "9": "voice"}
_PREFIX_FORMATS = {"MAIL": "8", "CALL": "9"}


def parse_command(text: str) -> Command:
    """Split the command text of a mail into its fields (SPEC §1).

    Raises ``RequestError(1)`` when the text does not have the six colons of
    the grammar or a list-mode line cannot be read.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    head = _COMMAND_RE.fullmatch(text)
    if head is None:
        raise RequestError(1, "command needs six colons")
    when_m = _WHEN_RE.fullmatch(head["when"])
    opts_m = _OPTIONS_RE.fullmatch(head["options"])
    assert when_m is not None  # both patterns match any string
    assert opts_m is not None
    fmt = (opts_m["format"] or "").strip()
    test = (opts_m["test"] or "").strip()
    phones = head["phones"].strip()
    rest = head["mes"]
    list_mode = not phones

    if list_mode:
        entries, subject, voice, param = _parse_list(rest, fmt=fmt, continued=test == "2")
    else:
        mes = rest.strip()
        key = _param_key(fmt, mes)
        lines, params = _take_params(mes.split("\n"), key)
        mes, param = _take_tilde("\n".join(lines).strip(), key)
        entries = (CommandEntry(phones=phones, text=mes),)
        subject, voice = params.get("subj"), params.get("voice")

    return Command(
        login=head["login"].strip(),
        psw=head["psw"].strip(),
        id=head["id"].strip(),
        time=when_m["time"].strip(),
        tz=(when_m["tz"] or "").strip(),
        translit=opts_m["translit"].strip(),
        format=fmt,
        sender=(opts_m["sender"] or "").strip(),
        test=test,
        entries=entries,
        list_mode=list_mode,
        subject=subject,
        voice=voice,
        param=param,
    )


def split_prefix(text: str) -> tuple[str | None, str]:
    """The prefix a message starts with (upper case, or None) and the text after it, stripped.

    Without a prefix the text is returned as it is.
    """
    m = _PREFIX_RE.match(text)
    if m is None:
        return None, text
    return (m["name"] or m["bare"]).upper(), text[m.end() :].strip()


def _param_key(fmt: str, mes: str) -> str | None:
    """``subj``/``voice`` when the request is an e-mail/call, else ``None``."""
    m = _PREFIX_RE.match(mes)
    if m is not None and m["name"] is not None:
        fmt = _PREFIX_FORMATS.get(m["name"].upper(), fmt)
    return _PARAM_KEYS.get(fmt)


def _take_params(lines: list[str], key: str | None) -> tuple[list[str], dict[str, str]]:
    """Take the trailing ``subj:``/``voice:`` line off ``lines`` (blank lines around it too)."""
    params: dict[str, str] = {}
    if key is None:
        return lines, params
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    if end:
        m = _PARAM_LINE_RE.fullmatch(lines[end - 1])
        if m is not None and m["key"].lower() == key:
            params[key] = m["value"].strip()
            end -= 1
    return lines[:end], params


def _take_tilde(text: str, key: str | None) -> tuple[str, str | None]:
    """Split a call's text at the first ``~~~`` line: (text, param)."""
    if key != "voice":
        return text, None
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _TILDE_LINE_RE.fullmatch(line):
            return "\n".join(lines[:i]).strip(), "\n".join(lines[i + 1 :]).strip()
    return text, None


def _parse_list(
    rest: str, *, fmt: str, continued: bool
) -> tuple[tuple[CommandEntry, ...], str | None, str | None, str | None]:
    """Read ``<list>``: one ``<phones>:<mes>`` a line (SPEC §1, list mode)."""
    lines = rest.split("\n")
    first = next((line for line in lines if line.strip()), "")
    first_m = _LIST_LINE_RE.fullmatch(first)
    key = _param_key(fmt, first_m["mes"].strip() if first_m else "")
    lines, params = _take_params(lines, key)

    pairs: list[tuple[str, list[str]]] = []
    for line in lines:
        if continued and pairs and not _PHONE_LIST_START_RE.match(line):
            pairs[-1][1].append(line)
            continue
        if not line.strip():
            continue
        m = _LIST_LINE_RE.fullmatch(line)
        if m is None:
            raise RequestError(1, "list line without <phones>:<mes>")
        pairs.append((m["phones"].strip(), [m["mes"]]))

    entries: list[CommandEntry] = []
    tilde_params: set[str] = set()
    for phones, mes_lines in pairs:
        mes = _ESCAPED_NEWLINE_RE.sub("\n", "\n".join(mes_lines)).strip()
        mes, param = _take_tilde(mes, key)
        if param is not None:
            tilde_params.add(param)
        entries.append(CommandEntry(phones=phones, text=mes))
    if len(tilde_params) > 1:
        raise RequestError(1, "different ~~~ params in one list")
    param = tilde_params.pop() if tilde_params else None
    return tuple(entries), params.get("subj"), params.get("voice"), param
