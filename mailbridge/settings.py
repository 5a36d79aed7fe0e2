"""The configuration as frozen values (SPEC §5).

``mailbridge.core.config`` reads TOML into these; everything else only reads them.
Defaults here are the embedded defaults: a gateway started on an empty
``[smtp]`` listens on loopback, stores in SQLite and delivers to the ``file``
provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from mailbridge.models import Format, OnError

__all__ = [
    "Account",
    "DeliverySettings",
    "ForwardAlias",
    "HttpSettings",
    "InboundSettings",
    "LimitsSettings",
    "LoggingSettings",
    "NumberAddressSettings",
    "ProviderSettings",
    "ReplySettings",
    "RouteRule",
    "RoutingSettings",
    "Settings",
    "SmppSettings",
    "SmtpSettings",
    "StorageSettings",
]

Network = IPv4Network | IPv6Network


def _loopback() -> tuple[Network, ...]:
    return (IPv4Network("127.0.0.0/8"), IPv6Network("::1/128"))


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpSettings:
    listen: tuple[str, ...] = ("127.0.0.1:2525",)
    hostname: str = "localhost"
    ident: str = "mailbridge ESMTP"
    domains: tuple[str, ...] = ("localhost",)
    command_address: str = "send"
    max_message_size: int = 102400
    trusted_networks: tuple[Network, ...] = field(default_factory=_loopback)
    default_charset: str = "koi8-r"
    default_region: str = "RU"
    on_error: OnError = OnError.REPLY
    tls_cert: str | None = None
    tls_key: str | None = None
    require_starttls: bool = False
    timeout_s: float = 300.0
    command_call_limit: int = 100
    max_connections: int = 200
    max_connections_per_ip: int = 50
    workers: int = 1
    # sessions from outside trusted_networks until they authenticate
    untrusted_timeout_s: float = 30.0  # from connect; NOOP and the like do not extend it
    untrusted_command_limit: int = 10
    untrusted_max_connections: int = 0  # 0: a quarter of max_connections (at least 1)

    @property
    def untrusted_share(self) -> int:
        """Sessions that untrusted, unauthenticated clients may hold at once."""
        if self.untrusted_max_connections:
            return self.untrusted_max_connections
        return max(1, self.max_connections // 4)


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageSettings:
    url: str = "sqlite:///mailbridge.db"
    retention_days: float = 90.0  # finished requests and all that hangs off them; 0: forever
    raw_retention_days: float = 14.0  # the raw mails of requests; 0: as long as the request


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverySettings:
    validity_s: float = 86400.0
    retry_first_s: float = 2.0
    retry_max_s: float = 600.0
    batch_size: int = 200
    lease_s: float = 120.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplySettings:
    smarthost: str | None = None  # "host:port"; None: replies are stored but not sent
    from_address: str = "mailbridge@localhost"  # TOML key: `from`
    reply_rate_per_hour: int = 30
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundSettings:
    """SMS from phones, mailed on (``[inbound]``)."""

    reply_window_s: float = 86400.0  # mail to the sender of the last request to the phone within
    mail_to: str | None = None  # otherwise here; None: kept, shown in `queue`


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsSettings:
    duplicate_window_s: float = 60.0
    duplicate_max: int = 2
    flood_max: int = 50
    flood_gap_s: float = 120.0
    error_block_after: int = 10
    error_block_window_s: float = 600.0
    error_block_for_s: float = 600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    login: str
    password_hash: str | None = field(default=None, repr=False)  # hash, or "plain:<password>"
    apikey_hash: str | None = field(default=None, repr=False)
    senders: tuple[str, ...] = ()
    default_sender: str = ""
    allowed_ips: tuple[Network, ...] = ()  # empty: any client allowed to submit
    tz: int = 0  # hours relative to Moscow
    balance: int | None = None  # SMS parts; None: unlimited
    groups: dict[int, tuple[str, ...]] = field(default_factory=dict, hash=False)
    deny_text: tuple[str, ...] = ()  # regular expressions
    blacklist: tuple[str, ...] = ()  # E.164 numbers


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardAlias:
    address: str  # full address, lower case
    account: str
    to: tuple[str, ...]
    allowed_senders: tuple[str, ...] | None = None  # None: any sender; (): nobody
    template: str = "{subject}: {body}"
    max_parts: int = 2
    sender: str | None = None  # None: the account's default_sender


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberAddressSettings:
    enabled: bool = False
    account: str = ""
    allowed_senders: tuple[str, ...] | None = None  # None: any sender; (): nobody
    template: str = "{subject}: {body}"
    max_parts: int = 2
    sender: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SmppSettings:
    """The session of an ``smpp`` provider (SMPP 3.4 ESME; ``seeds/smsc-smpp-submit.txt``)."""

    host: str
    port: int = 2775
    tls: bool = False
    tls_ca: str | None = None  # a CA file for the SMSC's certificate; None: the system's
    system_id: str
    system_type: str = ""  # "ISO": ISO-8859-1 replaces GSM 7-bit (SMSC)
    bind: str = "transceiver"  # transceiver | transmitter+receiver
    data_coding: str = "smsc"  # smsc: coding * 4 (0, 4, 8) | standard: 0x00, 0x03, 0x08
    source_ton: int | None = None  # None: 5/0 for a name, 1/1 for a number
    source_npi: int | None = None
    dest_ton: int = 1
    dest_npi: int = 1
    window: int = 10  # submit_sm awaiting their response at once, per connection
    connections: int = 1  # transmitting sessions
    enquire_link_s: float = 30.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    registered_delivery: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSettings:
    name: str
    type: str  # miatel | jsonapi | smsc | smpp | file
    url: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    path: str = ""  # `file` provider: where JSON lines go
    formats: frozenset[Format] | None = None  # None: all the type carries
    rate_per_s: float = 0.0  # 0: unlimited
    concurrency: int = 8
    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    max_recipients: int = 1  # recipients per request where the wire format allows several
    status_poll_s: float = 60.0  # `smsc`: ask the status of sent SMS this often; 0: never
    smpp: SmppSettings | None = None  # type smpp only


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteRule:
    prefix: str
    providers: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingSettings:
    default: tuple[str, ...] = ()
    rules: tuple[RouteRule, ...] = ()
    breaker_failures: int = 5
    breaker_reset_s: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingSettings:
    level: str = "info"
    format: str = "auto"  # auto | json | console


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    """``[http]``: metrics, health checks and the status page; ``listen`` empty: off."""

    listen: tuple[str, ...] = ()
    token_hash: str | None = field(default=None, repr=False)  # bearer token, hashed
    username: str | None = None  # basic auth, with password_hash
    password_hash: str | None = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @property
    def has_credentials(self) -> bool:
        return self.token_hash is not None or self.password_hash is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonSettings:
    pid_file: str | None = None  # absolute once loaded from a file; None: no PID file


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    reply: ReplySettings = field(default_factory=ReplySettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    accounts: tuple[Account, ...] = ()
    forward: tuple[ForwardAlias, ...] = ()
    number_addresses: NumberAddressSettings = field(default_factory=NumberAddressSettings)
    providers: tuple[ProviderSettings, ...] = ()
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    inbound: InboundSettings = field(default_factory=InboundSettings)
    source: str = ""  # the config file this came from ("" when built in code)

    def account(self, login: str) -> Account | None:
        for acc in self.accounts:
            if acc.login == login:
                return acc
        return None
