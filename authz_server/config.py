"""Settings read from the environment, validated once at start.

A production configuration refuses what would be unsafe to run: an ``http``
issuer on a non-loopback host (OAuth 2.1 §1.5, RFC 8414 §2), an issuer with a
query or fragment, a missing cookie-signing secret, or a missing key-encryption
key for the private signing keys at rest.

Every setting is declared once in ``SETTINGS`` (variable, field, parser,
default, check, one line of documentation); the ``Settings`` dataclass, the
parsing, the per-setting checks, ``authz-server config show`` and the README's
table are made from those declarations.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, make_dataclass, replace
from dataclasses import field as dataclass_field
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from cryptography.fernet import Fernet


class ConfigError(ValueError):
    """A setting is missing or unsafe; the message says which and how to fix it."""


# Fixed, well-known development values: only ever used with AUTHZ_ENV=development.
DEV_SECRET_KEY = "dev-secret-key-not-for-production"
DEV_KEY_ENCRYPTION_KEY = "ZGV2LWtleS1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcyE="


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- the declarations ------------------------------------------------------------
#
# Each setting is declared once, below: its environment variable, the Settings
# field, how it is parsed, its default, the check of its value and the line of
# documentation that the README's table shows. Parsing (Settings.from_env),
# validation (Settings.validate), `authz-server config show` and the README's
# table (render_readme_table, kept in step by tests/test_settings_doc.py) all
# read them. Checks that involve several settings or the environment stay in
# Settings.validate.

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
ENVIRONMENTS = ("development", "production", "test")
LOGIN_PROVIDERS = ("google", "microsoft", "github", "slack", "hubspot")
SIGNING_ALGS = ("ES256", "RS256")


@dataclass(frozen=True)
class Setting:
    """One setting. ``kind`` is how the environment's text is parsed: ``str``,
    ``url`` (a string whose password ``config show`` masks), ``int`` (a whole
    non-negative number of ``unit``), ``bool`` (one of TRUE_WORDS or FALSE_WORDS,
    any case) or ``list`` (comma-separated, blanks dropped). An unset or empty
    variable means the default. ``check`` is a predicate on the value, reported
    with ``problem`` by Settings.validate (so Settings built in code are checked
    too)."""

    env: str | None  # None: not read from the environment (fixed in code; tests override it)
    field: str
    kind: str
    default: object
    doc: str
    unit: str = "seconds"
    check: Callable[[object], bool] | None = None
    problem: str = ""
    secret: bool = False  # masked by `config show`
    required_in_production: bool = False  # no default in production: validate asks for it
    lower: bool = False  # keywords: compared in lower case
    shown_default: str | None = None  # the README's default column, when the value alone would mislead

    @property
    def annotation(self):
        base = {"str": str, "url": str, "int": int, "bool": bool, "list": tuple}[self.kind]
        return base | None if self.default is None else base

    def parse(self, raw: str):
        if self.kind == "int":
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{self.env} must be an integer number of {self.unit}, got {raw!r}") from None
            if value < 0:
                raise ConfigError(f"{self.env} must not be negative, got {value}")
            return value
        if self.kind == "bool":
            word = raw.strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ConfigError(f"{self.env} must be one of {', '.join(TRUE_WORDS)} or {', '.join(FALSE_WORDS)}, "
                              f"got {raw!r}")
        if self.kind == "list":
            items = (item.strip() for item in raw.split(","))
            return tuple(item.lower() if self.lower else item for item in items if item)
        return raw.strip().lower() if self.lower else raw

    def show(self, value) -> str:
        """The value as `config show` prints it: secrets masked, a URL's password hidden."""
        if value is None or value == ():
            return "(unset)"
        if self.kind == "bool":
            return "1" if value else "0"
        if self.kind == "list":
            return ",".join(_mask(v) if self.secret else v for v in value)
        if self.secret:
            return _mask(value)
        if self.kind == "url":
            return _hide_password(value)
        return str(value)

    def readme_default(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None or self.default == ():
            return "unset"
        return f"`{self.show(self.default)}`"


def _mask(secret: str) -> str:
    # The last 4 characters tell two secrets apart; short values show nothing.
    return "****" + secret[-4:] if len(secret) >= 16 else "****"


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":****@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _between(low, high):
    return lambda value: low <= value <= high


def _resource_uris(values) -> bool:
    from .rules.resource_uris import canonical_uri

    return all(canonical_uri(r) is not None for r in values)


DAY = 24 * 3600

SETTINGS: tuple[Setting, ...] = (
    Setting("AUTHZ_ENV", "environment", "str", "development", lower=True,
            doc="`production` enables the strict checks below; `development` or `test` otherwise"),
    Setting("AUTHZ_ISSUER", "issuer", "str", "http://127.0.0.1:5000", required_in_production=True,
            doc="required in production: https unless on loopback; no query, fragment or trailing slash"),
    Setting("DATABASE_URL", "database_url", "url", "sqlite:///instance/authz.db",
            doc="e.g. `postgresql+psycopg://user:pw@host/db`"),
    Setting("AUTHZ_SECRET_KEY", "secret_key", "str", DEV_SECRET_KEY, secret=True, required_in_production=True,
            shown_default="a fixed dev value",
            doc="cookie signing; required in production (≥ 32 chars)"),
    Setting("AUTHZ_KEY_ENCRYPTION_KEY", "key_encryption_key", "str", DEV_KEY_ENCRYPTION_KEY, secret=True,
            required_in_production=True, shown_default="a fixed dev value",
            doc="Fernet key for private signing keys and the refresh tokens kept for the grace window; "
                "required in production"),
    Setting("AUTHZ_APP_NAME", "app_name", "str", "authz_server",
            doc="the name on the server's pages"),
    Setting("STYTCH_PROJECT_ID", "stytch_project_id", "str", None,
            shown_default="unset: `make run` starts the emulator",
            doc="Stytch B2B project; required in production"),
    Setting("STYTCH_SECRET", "stytch_secret", "str", None, secret=True,
            shown_default="unset: `make run` starts the emulator",
            doc="Stytch B2B project secret; required in production"),
    Setting("STYTCH_PUBLIC_TOKEN", "stytch_public_token", "str", None,
            shown_default="unset: `make run` starts the emulator",
            doc="Stytch B2B public token; required in production"),
    Setting("STYTCH_ENVIRONMENT", "stytch_environment", "str", None,
            shown_default="unset: `make run` starts the emulator",
            doc="`test`, `live` or an https base URL in production"),
    Setting("REDIS_URL", "redis_url", "url", None,
            check=lambda v: not v or urlsplit(v).scheme in ("redis", "rediss", "unix"),
            problem="REDIS_URL must be a redis://, rediss:// or unix:// URL",
            doc="`redis://`, `rediss://` or `unix://`: rate-limit buckets shared by every node (atomic Lua "
                "script, keys expire after 61 s), and the used `private_key_jwt` assertion ids. Unset: rate "
                "limits per process (N workers allow N times the rate), assertion ids in the database. Redis "
                "unreachable: requests are allowed and a warning logged (fails open); assertion ids are "
                "checked in the database"),
    # Lifetimes, in seconds. Defaults follow the peers: short codes, short
    # access tokens, long but rotating refresh tokens.
    Setting("AUTHZ_CODE_TTL", "code_ttl", "int", 60, check=_between(1, 600),
            problem="AUTHZ_CODE_TTL must be between 1 and 600 seconds (RFC 6749 §4.1.2)",
            doc="authorization code lifetime (seconds, 1–600)"),
    Setting("AUTHZ_ACCESS_TOKEN_TTL", "access_token_ttl", "int", 3600, check=lambda v: v > 0,
            problem="AUTHZ_ACCESS_TOKEN_TTL must be positive",
            doc="access token lifetime (seconds)"),
    Setting("AUTHZ_ID_TOKEN_TTL", "id_token_ttl", "int", 3600,
            doc="id token lifetime (seconds)"),
    Setting("AUTHZ_REFRESH_TOKEN_IDLE_TTL", "refresh_token_idle_ttl", "int", 14 * DAY,
            shown_default="`1209600` (14 days)",
            doc="a refresh token unused this long expires (seconds)"),
    Setting("AUTHZ_REFRESH_TOKEN_ABSOLUTE_TTL", "refresh_token_absolute_ttl", "int", 90 * DAY,
            shown_default="`7776000` (90 days)",
            doc="a grant's refresh tokens stop working this long after the grant (seconds)"),
    Setting("AUTHZ_REFRESH_GRACE_SECONDS", "refresh_grace_seconds", "int", 60,
            doc="duplicate-refresh grace window (seconds)"),
    Setting(None, "pending_request_ttl", "int", 1800,
            doc="how long an authorization request waits for the member to log in and consent (seconds)"),
    # Device authorization grant (RFC 8628): how long the device and user codes
    # live, the polling interval the device is told (§3.2, default 5), and how
    # many wrong user codes a member may enter before the page locks for a while
    # (§5.1; with 8-character codes that makes guessing hopeless).
    Setting("AUTHZ_DEVICE_CODE_TTL", "device_code_ttl", "int", 600, check=_between(60, 3600),
            problem="AUTHZ_DEVICE_CODE_TTL must be between 60 and 3600 seconds (RFC 8628 §3.2)",
            doc="device flow: code lifetime (seconds, 60–3600)"),
    Setting("AUTHZ_DEVICE_POLL_INTERVAL", "device_poll_interval", "int", 5, check=_between(1, 60),
            problem="AUTHZ_DEVICE_POLL_INTERVAL must be between 1 and 60 seconds",
            doc="device flow: polling interval the device is told (seconds, 1–60)"),
    Setting("AUTHZ_DEVICE_CODE_ATTEMPTS", "device_code_attempts", "int", 10, unit="wrong codes",
            check=lambda v: v >= 1, problem="AUTHZ_DEVICE_CODE_ATTEMPTS must be at least 1",
            doc="wrong user codes a member may enter before the entry locks (then one per `60/N` s)"),
    Setting(None, "client_cache_ttl", "int", 30,
            doc="how long a process keeps a client's row in memory (seconds)"),
    # Algorithms. Access tokens ES256 (fast), id tokens RS256 (OIDC Core §15.1 requires it).
    Setting("AUTHZ_ACCESS_TOKEN_ALG", "access_token_alg", "str", "ES256", check=lambda v: v in SIGNING_ALGS,
            problem="AUTHZ_ACCESS_TOKEN_ALG must be ES256 or RS256",
            doc="access token signing algorithm: ES256 or RS256"),
    Setting("AUTHZ_ID_TOKEN_ALG", "id_token_alg", "str", "RS256", check=lambda v: v in SIGNING_ALGS,
            problem="AUTHZ_ID_TOKEN_ALG must be ES256 or RS256",
            doc="id token signing algorithm: RS256 or ES256"),
    # RFC 8707 / RFC 9068 §3: the audience used when a request names no resource.
    Setting("AUTHZ_DEFAULT_AUDIENCE", "default_audience", "str", None, shown_default="the issuer",
            doc="`aud` of tokens that name no resource"),
    # Identity providers offered on the login page (Stytch B2B OAuth providers).
    Setting("AUTHZ_LOGIN_PROVIDERS", "login_providers", "list", ("google", "microsoft"), lower=True,
            check=lambda v: bool(v) and all(p in LOGIN_PROVIDERS for p in v),
            problem="AUTHZ_LOGIN_PROVIDERS must list providers among " + ", ".join(LOGIN_PROVIDERS),
            doc="identity providers on the login page (also github, slack, hubspot)"),
    # Discovery flow: may a member create a new organization from the picker?
    Setting("AUTHZ_ALLOW_ORGANIZATION_CREATION", "allow_organization_creation", "bool", True,
            doc="may members create an organization from the picker"),
    # How long a member's "still active in Stytch" answer is trusted by the
    # refresh grant and introspection (docs/architecture.md#caches-and-scale).
    Setting("AUTHZ_MEMBER_CHECK_SECONDS", "member_check_seconds", "int", 60,
            doc="how long \"member still active in Stytch\" is cached (seconds)"),
    # A member's sign-in lasts this long (minutes) since their last visit: the
    # Stytch session is created with it and extended by it at each renewal, and
    # our session cookie lives as long. Stytch's own default is 60 minutes,
    # never extended, which would sign members out every hour.
    Setting("AUTHZ_MEMBER_SESSION_MINUTES", "member_session_minutes", "int", 7 * 24 * 60, unit="minutes",
            check=_between(5, 527040),
            problem="AUTHZ_MEMBER_SESSION_MINUTES must be between 5 and 527040 (a year; Stytch's range)",
            shown_default="`10080` (7 days)",
            doc="a member stays signed in this long after their last visit: the Stytch session is created "
                "with it and extended at each renewal, and the cookie lives as long (minutes, 5–527040)"),
    # Dynamic client registration (RFC 7591/7592; docs/requirements.md A14, A15):
    # "open" (default: MCP clients cannot obtain an initial access token, C-2),
    # "token" (an initial access token from registration_initial_tokens as a
    # Bearer token, RFC 7591 §3) or "off" (no endpoint, not advertised).
    Setting("AUTHZ_REGISTRATION", "registration_policy", "str", "open", lower=True,
            check=lambda v: v in ("open", "token", "off"),
            problem="AUTHZ_REGISTRATION must be open, token or off",
            doc="dynamic client registration: `open`, `token` (initial access token required) or `off`"),
    Setting("AUTHZ_REGISTRATION_INITIAL_TOKENS", "registration_initial_tokens", "list", (), secret=True,
            check=lambda v: all(len(t) >= 16 for t in v),
            problem="each AUTHZ_REGISTRATION_INITIAL_TOKENS entry must have at least 16 characters",
            doc="comma-separated initial access tokens (≥ 16 characters each) for `token`"),
    # New registrations per minute per source address (a token bucket, burst =
    # one minute's worth; 0 = unlimited). Per process, or shared through REDIS_URL.
    Setting("AUTHZ_REGISTRATION_RATE", "registration_rate", "int", 20, unit="registrations per minute",
            doc="new dynamic clients per minute per source address; `0` = unlimited"),
    # Resources (RFC 8707 URIs) that every dynamically registered (RFC 7591)
    # confidential client may get with the client_credentials grant. Empty (the
    # default): registrations do not get that grant at all, since anyone may
    # register (oauth.permissions).
    Setting("AUTHZ_REGISTRATION_CLIENT_CREDENTIALS_RESOURCES", "registration_client_credentials_resources",
            "list", (), check=_resource_uris,
            problem="AUTHZ_REGISTRATION_CLIENT_CREDENTIALS_RESOURCES must list absolute http(s) resource "
                    "URIs without a fragment, comma-separated (RFC 8707 section 2)",
            doc="comma-separated resource URIs that dynamically registered confidential clients may get with "
                "`client_credentials`; unset: registrations get no `client_credentials` grant"),
    # Other rate limits (policies in oauth.limits), per minute with a burst of
    # one minute's worth, 0 = unlimited; per process unless REDIS_URL is set
    # (then shared by every node, keys under rate_limit_prefix). Generous, so
    # that shared egress (docs/requirements.md: C-15) and one busy client are
    # not throttled by default.
    Setting("AUTHZ_TOKEN_RATE", "token_rate", "int", 1200, unit="token requests per minute",
            doc="tokens issued per minute per client and grant type (public clients: and per source address); "
                "`0` = unlimited"),
    Setting("AUTHZ_CLIENT_AUTH_FAILURE_RATE", "client_auth_failure_rate", "int", 60, unit="failures per minute",
            doc="failed client authentications per minute per source address and client_id (token, "
                "introspection, revocation); then 429 even with the right secret; `0` = unlimited"),
    Setting("AUTHZ_INTROSPECTION_RATE", "introspection_rate", "int", 6000, unit="requests per minute",
            doc="introspection requests per minute per authenticated caller; `0` = unlimited"),
    Setting("AUTHZ_LOGIN_RATE", "login_rate", "int", 300, unit="requests per minute",
            doc="login page requests per minute per source address (a company's NAT is one source); "
                "`0` = unlimited"),
    Setting("AUTHZ_RATE_LIMIT_PREFIX", "rate_limit_prefix", "str", "authz:ratelimit:",
            doc="prefix of this server's keys in Redis (one per deployment sharing a Redis)"),
    # Proxies in front of the app whose X-Forwarded-For/-Proto are trusted
    # (werkzeug ProxyFix); 0 = none, the header is ignored (anyone can send it).
    Setting("AUTHZ_TRUSTED_PROXIES", "trusted_proxies", "int", 0, unit="proxies", check=_between(0, 5),
            problem="AUTHZ_TRUSTED_PROXIES is the number of proxies in front of the server (0 to 5)",
            doc="proxies in front of the server whose `X-Forwarded-For`/`-Proto` are trusted (werkzeug "
                "ProxyFix; 0–5); with 0 the headers are ignored (anyone can send them). Set it behind a load "
                "balancer, or every request appears to come from the proxy"),
    # Dynamically registered clients that never got a token are deleted by
    # `authz-server clients gc` this many days after registration (docs/requirements.md: C-14).
    Setting("AUTHZ_DCR_CLIENT_TTL_DAYS", "dcr_client_ttl_days", "int", 7, unit="days",
            doc="`clients gc` deletes never-used dynamic clients older than this (days); `0` = never"),
    # Dynamically registered clients that did get tokens, but whose grants have
    # all expired or been revoked, are deleted by `clients gc` once no token was
    # issued to them and their registration was not touched for this many days.
    # 90 days is the default absolute refresh-token lifetime, so a client idle
    # that long has nothing left to refresh with (docs/requirements.md: C-14).
    Setting("AUTHZ_DCR_CLIENT_IDLE_DAYS", "dcr_client_idle_days", "int", 90, unit="days",
            doc="`clients gc` deletes dynamic clients whose grants all lapsed and that were idle this long "
                "(days); `0` = never"),
    # Client ID metadata documents (docs/requirements.md B4): a URL client_id is
    # fetched and trusted as the client's metadata. Loopback document hosts
    # (http allowed) only for development and tests; refused in production.
    Setting("AUTHZ_CIMD", "cimd_enabled", "bool", True,
            doc="accept client ID metadata documents (an https URL as `client_id`); `0` = off"),
    Setting("AUTHZ_CIMD_ALLOW_LOOPBACK", "cimd_allow_loopback", "bool", False,
            doc="development/test only: allow `http` document URLs on loopback (refused in production)"),
    # One deadline for fetching a document and its jwks_uri: DNS, connect, TLS,
    # headers and body together. A few seconds, as the CIMD draft suggests: the
    # fetch holds the member's /oauth/authorize request.
    Setting("AUTHZ_CIMD_FETCH_TIMEOUT", "cimd_fetch_timeout", "int", 3, check=_between(1, 30),
            problem="AUTHZ_CIMD_FETCH_TIMEOUT must be between 1 and 30 seconds",
            doc="seconds for fetching a client metadata document and its `jwks_uri`, all of it (DNS, connect, "
                "TLS, headers, body); 1–30"),
    # Each fetch is a connection to a host the caller chose. 30 leaves room for
    # a NAT full of people trying new clients.
    Setting("AUTHZ_CIMD_FETCH_RATE", "cimd_fetch_rate", "int", 30, unit="fetches per minute",
            doc="fetches of client metadata documents not cached yet, per minute per source address; "
                "`0` = unlimited"),
    # At least 2: a process caches a document up to a day and must not outlive its row.
    Setting("AUTHZ_CIMD_CLIENT_TTL_DAYS", "cimd_client_ttl_days", "int", 7, unit="days",
            check=lambda v: v == 0 or v >= 2,
            problem="AUTHZ_CIMD_CLIENT_TTL_DAYS must be 0 (never) or at least 2: a server caches a "
                    "client metadata document up to a day",
            doc="`clients gc` deletes metadata-document clients that never got a grant once their document "
                "was not fetched this long (days); `0` = never, else at least 2"),
    Setting("AUTHZ_SQL_COUNT", "sql_count", "bool", False,
            doc="`1` logs the number of SQL statements of each request (benchmarks)"),
)


class _SettingsBehaviour:
    """What Settings does besides holding values (its fields come from SETTINGS)."""

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def stytch_configured(self) -> bool:
        return bool(self.stytch_project_id and self.stytch_secret and self.stytch_public_token)

    @property
    def audience(self) -> str:
        return self.default_audience or self.issuer

    def with_overrides(self, **kw) -> "Settings":
        return replace(self, **kw)

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        settings, _ = cls.read_env(env)
        settings.validate()
        return settings

    @classmethod
    def read_env(cls, env: dict | None = None) -> tuple["Settings", dict[str, str]]:
        """Parse the environment without validating; also say where each value came
        from (``env`` or ``default``, by variable name). A value that cannot be parsed
        raises ConfigError at once."""
        env = dict(os.environ if env is None else env)
        # Unlike the other settings an empty AUTHZ_ENV is refused, not the default:
        # a typo or an empty substitution must not silently mean development.
        raw_environment = env.get("AUTHZ_ENV")
        environment = "development" if raw_environment is None else raw_environment.strip().lower()
        if environment not in ENVIRONMENTS:
            raise ConfigError("AUTHZ_ENV must be one of " + ", ".join(ENVIRONMENTS))
        production = environment == "production"
        values, sources = {}, {}
        for setting in SETTINGS:
            raw = env.get(setting.env) if setting.env else None
            if setting.field == "environment":
                values["environment"] = environment
            elif raw in (None, ""):
                values[setting.field] = None if production and setting.required_in_production else setting.default
            else:
                values[setting.field] = setting.parse(raw)
            if setting.env:
                sources[setting.env] = "default" if raw in (None, "") else "env"
        return cls(**values), sources

    def validate(self) -> None:
        """Raise ConfigError with an actionable message for any unsafe setting."""
        problems = []
        if not self.issuer:
            problems.append("AUTHZ_ISSUER is required (the canonical https URL of this server)")
        else:
            parts = urlsplit(self.issuer)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                problems.append(f"AUTHZ_ISSUER must be an absolute https URL, got {self.issuer!r}")
            elif parts.query or parts.fragment or "?" in self.issuer or "#" in self.issuer:
                problems.append("AUTHZ_ISSUER must not have a query or fragment (RFC 8414 §2)")
            elif self.issuer.endswith("/"):
                problems.append("AUTHZ_ISSUER must not end with '/': clients compare it byte for byte")
            elif parts.scheme == "http" and not is_loopback_host(parts.hostname) and self.is_production:
                problems.append(
                    f"AUTHZ_ISSUER uses http on the non-loopback host {parts.hostname!r}; "
                    "production requires https (OAuth 2.1 §1.5)"
                )
        if not self.secret_key:
            problems.append("AUTHZ_SECRET_KEY is required in production (signs the session cookie)")
        elif self.is_production and (self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32):
            problems.append("AUTHZ_SECRET_KEY must be a random string of at least 32 characters")
        if not self.key_encryption_key:
            problems.append(
                "AUTHZ_KEY_ENCRYPTION_KEY is required in production (a Fernet key that encrypts "
                "private signing keys; make one with: python -c 'from cryptography.fernet import "
                "Fernet; print(Fernet.generate_key().decode())')"
            )
        else:
            try:
                Fernet(self.key_encryption_key.encode())
            except Exception:
                problems.append("AUTHZ_KEY_ENCRYPTION_KEY is not a valid Fernet key (32 bytes, URL-safe base64)")
            if self.is_production and self.key_encryption_key == DEV_KEY_ENCRYPTION_KEY:
                problems.append("AUTHZ_KEY_ENCRYPTION_KEY is the public development key; generate a new one")
        if self.is_production:
            missing = [n for n, v in (("STYTCH_PROJECT_ID", self.stytch_project_id), ("STYTCH_SECRET", self.stytch_secret),
                                      ("STYTCH_PUBLIC_TOKEN", self.stytch_public_token)) if not v]
            if missing:
                problems.append(f"{', '.join(missing)} required in production (members log in through Stytch B2B)")
            env_ = (self.stytch_environment or "").strip()
            if env_ and env_ not in ("test", "live") and not env_.startswith("https://"):
                problems.append("STYTCH_ENVIRONMENT must be test, live or an https URL in production "
                                "(the embedded emulator is for development only)")
        for setting in SETTINGS:
            if setting.check is not None and not setting.check(getattr(self, setting.field)):
                problems.append(setting.problem)
        if self.registration_policy == "token" and not self.registration_initial_tokens:
            problems.append("AUTHZ_REGISTRATION=token needs AUTHZ_REGISTRATION_INITIAL_TOKENS "
                            "(comma-separated initial access tokens)")
        if self.is_production and self.cimd_allow_loopback:
            problems.append("AUTHZ_CIMD_ALLOW_LOOPBACK is for development only: it lets a client_id URL "
                            "point at this machine (SSRF)")
        if problems:
            raise ConfigError("Invalid configuration:\n  - " + "\n  - ".join(problems))


# The dataclass other code uses: one field per declaration, with its default.
Settings = make_dataclass(
    "Settings",
    # Secrets stay out of repr(), so a logged Settings shows none.
    [(s.field, s.annotation, dataclass_field(default=s.default, repr=not s.secret)) for s in SETTINGS],
    bases=(_SettingsBehaviour,),
    frozen=True,
)
Settings.__module__ = __name__
Settings.__doc__ = "The server's settings: one field per entry of SETTINGS, validated by validate()."


# --- the README's table ----------------------------------------------------------

README_TABLE_BEGIN = ("<!-- settings table: generated from SETTINGS in authz_server/config.py; "
                      "regenerate with `authz-server config readme-table --write README.md` -->")
README_TABLE_END = "<!-- end of settings table -->"


def render_readme_table() -> str:
    """The README's settings table (Markdown), one row per environment variable."""
    rows = ["| Name | Default (development) | |", "|---|---|---|"]
    rows += [f"| `{s.env}` | {s.readme_default()} | {s.doc} |" for s in SETTINGS if s.env]
    return "\n".join(rows)


def readme_table_of(text: str) -> str | None:
    """The table between the markers of a README's text (None when the markers are missing)."""
    try:
        start = text.index(README_TABLE_BEGIN) + len(README_TABLE_BEGIN)
        end = text.index(README_TABLE_END, start)
    except ValueError:
        return None
    return text[start:end].strip()


def with_readme_table(text: str) -> str:
    """The README's text with the table between the markers regenerated."""
    start = text.index(README_TABLE_BEGIN) + len(README_TABLE_BEGIN)
    end = text.index(README_TABLE_END, start)
    return text[:start] + "\n" + render_readme_table() + "\n" + text[end:]

