"""Settings read from the environment, validated once at start.

A production configuration refuses what would be unsafe to run: an ``http``
issuer on a non-loopback host (OAuth 2.1 §1.5, RFC 8414 §2), an issuer with a
query or fragment, a missing cookie-signing secret, or a missing key-encryption
key for the private signing keys at rest.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

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


def _int(env, name, default, unit="seconds"):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer number of {unit}, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    issuer: str = "http://127.0.0.1:5000"
    database_url: str = "sqlite:///instance/authz.db"
    secret_key: str = DEV_SECRET_KEY
    key_encryption_key: str = DEV_KEY_ENCRYPTION_KEY
    environment: str = "development"  # "development" | "production" | "test"
    app_name: str = "authz_server"

    stytch_project_id: str | None = None
    stytch_secret: str | None = None
    stytch_public_token: str | None = None
    stytch_environment: str | None = None
    redis_url: str | None = None

    # Lifetimes, in seconds. Defaults follow the peers (peers.md): short codes,
    # short access tokens, long but rotating refresh tokens.
    code_ttl: int = 60
    access_token_ttl: int = 3600
    id_token_ttl: int = 3600
    refresh_token_idle_ttl: int = 14 * 24 * 3600
    refresh_token_absolute_ttl: int = 90 * 24 * 3600
    refresh_grace_seconds: int = 60
    pending_request_ttl: int = 1800
    # Device authorization grant (RFC 8628): how long the device and user codes
    # live, the polling interval the device is told (§3.2, default 5), and how
    # many wrong user codes a member may enter before the page locks for a while
    # (§5.1; with 8-character codes that makes guessing hopeless).
    device_code_ttl: int = 600
    device_poll_interval: int = 5
    device_code_attempts: int = 10
    client_cache_ttl: int = 30

    # Algorithms. Access tokens ES256 (fast), id tokens RS256 (OIDC Core §15.1 requires it).
    access_token_alg: str = "ES256"
    id_token_alg: str = "RS256"
    # RFC 8707 / RFC 9068 §3: the audience used when a request names no resource.
    default_audience: str | None = None

    # Identity providers offered on the login page (Stytch B2B OAuth providers).
    login_providers: tuple = ("google", "microsoft")
    # Discovery flow: may a member create a new organization from the picker?
    allow_organization_creation: bool = True
    # How long a member's "still active in Stytch" answer is trusted by the
    # refresh grant and introspection (seconds; docs/architecture.md#caches-and-scale).
    member_check_seconds: int = 60
    # A member's sign-in lasts this long (minutes) since their last visit: the
    # Stytch session is created with it and extended by it at each renewal, and
    # our session cookie lives as long. Stytch's own default is 60 minutes,
    # never extended, which would sign members out every hour.
    member_session_minutes: int = 7 * 24 * 60

    # Dynamic client registration (RFC 7591/7592; docs/requirements.md A14, A15):
    # "open" (default: MCP clients cannot obtain an initial access token, C-2),
    # "token" (an initial access token from registration_initial_tokens as a
    # Bearer token, RFC 7591 §3) or "off" (no endpoint, not advertised).
    registration_policy: str = "open"
    registration_initial_tokens: tuple = ()
    # New registrations per minute per source address (a token bucket, burst =
    # one minute's worth; 0 = unlimited). Per process, or shared through REDIS_URL.
    registration_rate: int = 20
    # Resources (RFC 8707 URIs) that every dynamically registered (RFC 7591)
    # confidential client may get with the client_credentials grant. Empty (the
    # default): registrations do not get that grant at all, since anyone may
    # register (oauth.permissions).
    registration_client_credentials_resources: tuple = ()
    # Other rate limits (policies in oauth.limits), per minute with a
    # burst of one minute's worth, 0 = unlimited; per process unless REDIS_URL is
    # set (then shared by every node, keys under rate_limit_prefix). Generous, so
    # that shared egress (docs/requirements.md: C-15) and one busy client are not throttled by default:
    # tokens issued per client and grant type (public clients: and per source);
    token_rate: int = 1200
    # failed client authentications per source and claimed client_id (secret guessing);
    client_auth_failure_rate: int = 60
    # introspection requests per authenticated caller (a resource server);
    introspection_rate: int = 6000
    # login page requests per source address (a company's NAT is one source).
    login_rate: int = 300
    rate_limit_prefix: str = "authz:ratelimit:"
    # Proxies in front of the app whose X-Forwarded-For/-Proto are trusted
    # (werkzeug ProxyFix); 0 = none, the header is ignored (anyone can send it).
    trusted_proxies: int = 0
    # Dynamically registered clients that never got a token are deleted by
    # `authz-server clients gc` this many days after registration (0 = never; docs/requirements.md: C-14).
    dcr_client_ttl_days: int = 7
    # Dynamically registered clients that did get tokens, but whose grants have
    # all expired or been revoked, are deleted by `clients gc` once no token was
    # issued to them and their registration was not touched for this many days
    # (0 = never). 90 days is the default absolute refresh-token lifetime, so a
    # client idle that long has nothing left to refresh with (docs/requirements.md: C-14).
    dcr_client_idle_days: int = 90
    # Client ID metadata documents (docs/requirements.md B4): a URL client_id is
    # fetched and trusted as the client's metadata. Loopback document hosts
    # (http allowed) only for development and tests; refused in production.
    cimd_enabled: bool = True
    cimd_allow_loopback: bool = False
    # One deadline for fetching a document and its jwks_uri: DNS, connect, TLS,
    # headers and body together (seconds). A few seconds, as the CIMD draft
    # suggests: the fetch holds the member's /oauth/authorize request.
    cimd_fetch_timeout: int = 3
    # Fetches of documents not cached in this process, per minute per source
    # address (0 = unlimited): each is a connection to a host the caller chose.
    # 30 leaves room for a NAT full of people trying new clients.
    cimd_fetch_rate: int = 30
    # `clients gc` deletes CIMD rows that never got a grant once their document
    # was not fetched for this many days (0 = never). At least 2: a process
    # caches a document up to a day and must not outlive its row.
    cimd_client_ttl_days: int = 7

    sql_count: bool = False

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
        env = dict(os.environ if env is None else env)
        environment = env.get("AUTHZ_ENV", "development").strip().lower()
        if environment not in ("development", "production", "test"):
            raise ConfigError("AUTHZ_ENV must be one of development, production, test")
        production = environment == "production"

        def get(name):
            value = env.get(name)
            return value if value not in (None, "") else None

        defaults = cls()
        settings = cls(
            issuer=get("AUTHZ_ISSUER") or (None if production else defaults.issuer),
            database_url=get("DATABASE_URL") or defaults.database_url,
            secret_key=get("AUTHZ_SECRET_KEY") or (None if production else DEV_SECRET_KEY),
            key_encryption_key=get("AUTHZ_KEY_ENCRYPTION_KEY") or (None if production else DEV_KEY_ENCRYPTION_KEY),
            environment=environment,
            app_name=get("AUTHZ_APP_NAME") or defaults.app_name,
            stytch_project_id=get("STYTCH_PROJECT_ID"),
            stytch_secret=get("STYTCH_SECRET"),
            stytch_public_token=get("STYTCH_PUBLIC_TOKEN"),
            stytch_environment=get("STYTCH_ENVIRONMENT"),
            redis_url=get("REDIS_URL"),
            code_ttl=_int(env, "AUTHZ_CODE_TTL", defaults.code_ttl),
            access_token_ttl=_int(env, "AUTHZ_ACCESS_TOKEN_TTL", defaults.access_token_ttl),
            id_token_ttl=_int(env, "AUTHZ_ID_TOKEN_TTL", defaults.id_token_ttl),
            refresh_token_idle_ttl=_int(env, "AUTHZ_REFRESH_TOKEN_IDLE_TTL", defaults.refresh_token_idle_ttl),
            refresh_token_absolute_ttl=_int(env, "AUTHZ_REFRESH_TOKEN_ABSOLUTE_TTL", defaults.refresh_token_absolute_ttl),
            refresh_grace_seconds=_int(env, "AUTHZ_REFRESH_GRACE_SECONDS", defaults.refresh_grace_seconds),
            device_code_ttl=_int(env, "AUTHZ_DEVICE_CODE_TTL", defaults.device_code_ttl),
            device_poll_interval=_int(env, "AUTHZ_DEVICE_POLL_INTERVAL", defaults.device_poll_interval),
            device_code_attempts=_int(env, "AUTHZ_DEVICE_CODE_ATTEMPTS", defaults.device_code_attempts, "wrong codes"),
            access_token_alg=get("AUTHZ_ACCESS_TOKEN_ALG") or defaults.access_token_alg,
            id_token_alg=get("AUTHZ_ID_TOKEN_ALG") or defaults.id_token_alg,
            default_audience=get("AUTHZ_DEFAULT_AUDIENCE"),
            login_providers=tuple(p.strip().lower() for p in (get("AUTHZ_LOGIN_PROVIDERS") or "google,microsoft")
                                  .split(",") if p.strip()),
            allow_organization_creation=(get("AUTHZ_ALLOW_ORGANIZATION_CREATION") or "1") not in ("0", "false", "no"),
            member_check_seconds=_int(env, "AUTHZ_MEMBER_CHECK_SECONDS", defaults.member_check_seconds),
            member_session_minutes=_int(env, "AUTHZ_MEMBER_SESSION_MINUTES", defaults.member_session_minutes,
                                        "minutes"),
            registration_policy=(get("AUTHZ_REGISTRATION") or defaults.registration_policy).strip().lower(),
            registration_initial_tokens=tuple(
                t.strip() for t in (get("AUTHZ_REGISTRATION_INITIAL_TOKENS") or "").split(",") if t.strip()
            ),
            registration_rate=_int(env, "AUTHZ_REGISTRATION_RATE", defaults.registration_rate,
                                   "registrations per minute"),
            registration_client_credentials_resources=tuple(
                r.strip() for r in (get("AUTHZ_REGISTRATION_CLIENT_CREDENTIALS_RESOURCES") or "").split(",")
                if r.strip()
            ),
            token_rate=_int(env, "AUTHZ_TOKEN_RATE", defaults.token_rate, "token requests per minute"),
            client_auth_failure_rate=_int(env, "AUTHZ_CLIENT_AUTH_FAILURE_RATE", defaults.client_auth_failure_rate,
                                          "failures per minute"),
            introspection_rate=_int(env, "AUTHZ_INTROSPECTION_RATE", defaults.introspection_rate,
                                    "requests per minute"),
            login_rate=_int(env, "AUTHZ_LOGIN_RATE", defaults.login_rate, "requests per minute"),
            rate_limit_prefix=get("AUTHZ_RATE_LIMIT_PREFIX") or defaults.rate_limit_prefix,
            trusted_proxies=_int(env, "AUTHZ_TRUSTED_PROXIES", defaults.trusted_proxies, "proxies"),
            dcr_client_ttl_days=_int(env, "AUTHZ_DCR_CLIENT_TTL_DAYS", defaults.dcr_client_ttl_days, "days"),
            dcr_client_idle_days=_int(env, "AUTHZ_DCR_CLIENT_IDLE_DAYS", defaults.dcr_client_idle_days, "days"),
            sql_count=get("AUTHZ_SQL_COUNT") == "1",
            cimd_enabled=(get("AUTHZ_CIMD") or "1") not in ("0", "false", "no"),
            cimd_allow_loopback=get("AUTHZ_CIMD_ALLOW_LOOPBACK") in ("1", "true", "yes"),
            cimd_fetch_timeout=_int(env, "AUTHZ_CIMD_FETCH_TIMEOUT", defaults.cimd_fetch_timeout),
            cimd_fetch_rate=_int(env, "AUTHZ_CIMD_FETCH_RATE", defaults.cimd_fetch_rate, "fetches per minute"),
            cimd_client_ttl_days=_int(env, "AUTHZ_CIMD_CLIENT_TTL_DAYS", defaults.cimd_client_ttl_days, "days"),
        )
        settings.validate()
        return settings

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
        unknown = [p for p in self.login_providers if p not in ("google", "microsoft", "github", "slack", "hubspot")]
        if unknown or not self.login_providers:
            problems.append("AUTHZ_LOGIN_PROVIDERS must list providers among google, microsoft, github, slack, hubspot")
        if self.access_token_alg not in ("ES256", "RS256"):
            problems.append("AUTHZ_ACCESS_TOKEN_ALG must be ES256 or RS256")
        if self.id_token_alg not in ("ES256", "RS256"):
            problems.append("AUTHZ_ID_TOKEN_ALG must be ES256 or RS256")
        if self.code_ttl == 0 or self.code_ttl > 600:
            problems.append("AUTHZ_CODE_TTL must be between 1 and 600 seconds (RFC 6749 §4.1.2)")
        if not 60 <= self.device_code_ttl <= 3600:
            problems.append("AUTHZ_DEVICE_CODE_TTL must be between 60 and 3600 seconds (RFC 8628 §3.2)")
        if not 1 <= self.device_poll_interval <= 60:
            problems.append("AUTHZ_DEVICE_POLL_INTERVAL must be between 1 and 60 seconds")
        if not 5 <= self.member_session_minutes <= 527040:
            problems.append("AUTHZ_MEMBER_SESSION_MINUTES must be between 5 and 527040 (a year; Stytch's range)")
        if self.device_code_attempts < 1:
            problems.append("AUTHZ_DEVICE_CODE_ATTEMPTS must be at least 1")
        if self.access_token_ttl == 0:
            problems.append("AUTHZ_ACCESS_TOKEN_TTL must be positive")
        if self.registration_policy not in ("open", "token", "off"):
            problems.append("AUTHZ_REGISTRATION must be open, token or off")
        elif self.registration_policy == "token" and not self.registration_initial_tokens:
            problems.append("AUTHZ_REGISTRATION=token needs AUTHZ_REGISTRATION_INITIAL_TOKENS "
                            "(comma-separated initial access tokens)")
        if any(len(t) < 16 for t in self.registration_initial_tokens):
            problems.append("each AUTHZ_REGISTRATION_INITIAL_TOKENS entry must have at least 16 characters")
        from .oauth.resources import normalize

        if any(normalize(r) is None for r in self.registration_client_credentials_resources):
            problems.append("AUTHZ_REGISTRATION_CLIENT_CREDENTIALS_RESOURCES must list absolute http(s) resource "
                            "URIs without a fragment, comma-separated (RFC 8707 section 2)")
        if self.is_production and self.cimd_allow_loopback:
            problems.append("AUTHZ_CIMD_ALLOW_LOOPBACK is for development only: it lets a client_id URL "
                            "point at this machine (SSRF)")
        if not 1 <= self.cimd_fetch_timeout <= 30:
            problems.append("AUTHZ_CIMD_FETCH_TIMEOUT must be between 1 and 30 seconds")
        if self.cimd_client_ttl_days == 1 or self.cimd_client_ttl_days < 0:
            problems.append("AUTHZ_CIMD_CLIENT_TTL_DAYS must be 0 (never) or at least 2: a server caches a "
                            "client metadata document up to a day")
        if self.redis_url and urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            problems.append("REDIS_URL must be a redis://, rediss:// or unix:// URL")
        if self.trusted_proxies > 5:
            problems.append("AUTHZ_TRUSTED_PROXIES is the number of proxies in front of the server (0 to 5)")
        if problems:
            raise ConfigError("Invalid configuration:\n  - " + "\n  - ".join(problems))
