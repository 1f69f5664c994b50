"""The startup configuration check (docs/requirements.md: A1-1).

The issuer is an https URL with no query and no fragment; plain http only on a
loopback host (OAuth 2.1 §1.5, RFC 8414 §2). Production refuses to start without
its secrets. These are unit tests of ``Settings.validate`` / ``Settings.from_env``
and of ``create_app``, which runs the same check.
"""
from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from authz_server import create_app
from authz_server.cli import main as cli
from authz_server.config import DEV_KEY_ENCRYPTION_KEY, DEV_SECRET_KEY, SETTINGS, ConfigError, Settings

SECRET = "s" * 16 + "e" * 16 + "cret"  # 36 characters, not the development value
KEK = Fernet.generate_key().decode()


def prod_env(**overrides) -> dict:
    env = {
        "AUTHZ_ENV": "production",
        "AUTHZ_ISSUER": "https://auth.example.com",
        "AUTHZ_SECRET_KEY": SECRET,
        "AUTHZ_KEY_ENCRYPTION_KEY": KEK,
        "DATABASE_URL": "sqlite://",
        "STYTCH_PROJECT_ID": "project-live-00000000-0000-4000-8000-000000000000",
        "STYTCH_SECRET": "secret-live-not-a-real-one",
        "STYTCH_PUBLIC_TOKEN": "public-token-live-00000000-0000-4000-8000-000000000000",
        "STYTCH_ENVIRONMENT": "live",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def prod(**kw) -> Settings:
    base = dict(issuer="https://auth.example.com", secret_key=SECRET, key_encryption_key=KEK,
                environment="production", database_url="sqlite://",
                stytch_project_id="project-live-00000000-0000-4000-8000-000000000000",
                stytch_secret="secret-live-not-a-real-one",
                stytch_public_token="public-token-live-00000000-0000-4000-8000-000000000000",
                stytch_environment="live")
    base.update(kw)
    return Settings(**base)


def refused(fn, *words):
    with pytest.raises(ConfigError) as info:
        fn()
    message = str(info.value)
    for w in words:
        assert w in message, message
    return message


def test_a1_1_valid_production_settings_are_accepted():
    """A.1 #1: an https issuer with the secrets set passes, from the environment too."""
    prod().validate()
    s = Settings.from_env(prod_env())
    assert s.is_production and s.issuer == "https://auth.example.com"
    prod(issuer="https://auth.example.com/tenant-a").validate()  # a path is allowed (RFC 8414 §3.1)


@pytest.mark.parametrize("issuer", [
    "http://auth.example.com",
    "http://auth.example.com:8080",
    "http://10.0.0.5",
    "http://192.168.1.10:5000",
    "http://127.0.0.1.nip.io",
    "http://localhost.example.com",
])
def test_a1_1_http_issuer_on_a_non_loopback_host_is_refused_in_production(issuer):
    """A.1 #1: an http issuer outside loopback is refused (OAuth 2.1 §1.5)."""
    refused(prod(issuer=issuer).validate, "AUTHZ_ISSUER", "https")
    refused(lambda: Settings.from_env(prod_env(AUTHZ_ISSUER=issuer)), "AUTHZ_ISSUER", "https")


@pytest.mark.parametrize("issuer", [
    "http://127.0.0.1:5000",
    "http://localhost:8000",
    "http://[::1]:8000",
    "http://127.0.0.2",
])
def test_a1_1_http_issuer_on_loopback_is_allowed(issuer):
    """A.1 #1: plain http is allowed when the issuer host is loopback (development)."""
    prod(issuer=issuer).validate()
    Settings(issuer=issuer).validate()


@pytest.mark.parametrize("environment", ["production", "development", "test"])
@pytest.mark.parametrize("issuer", [
    "https://auth.example.com?tenant=a",
    "https://auth.example.com/?",
    "https://auth.example.com#frag",
    "https://auth.example.com/#",
    "https://auth.example.com/path?x=1#y",
    "http://127.0.0.1:5000?x=1",
])
def test_a1_1_issuer_with_query_or_fragment_is_refused(issuer, environment):
    """A.1 #1: the issuer has no query and no fragment (RFC 8414 §2), in every environment."""
    refused(prod(issuer=issuer, environment=environment).validate, "AUTHZ_ISSUER", "query or fragment")


@pytest.mark.parametrize("issuer", [
    "auth.example.com",
    "ftp://auth.example.com",
    "https://",
    "https:///path",
    "https://auth.example.com/",
])
def test_a1_1_issuer_that_is_not_a_canonical_https_url_is_refused(issuer):
    """A.1 #1 / A.8 #51: the issuer is an absolute https URL that clients compare byte for
    byte, so a non-URL, another scheme or a trailing slash is refused."""
    refused(prod(issuer=issuer).validate, "AUTHZ_ISSUER")


def test_a1_1_missing_issuer_is_refused_in_production():
    """A.1 #1: production has no default issuer."""
    refused(lambda: Settings.from_env(prod_env(AUTHZ_ISSUER=None)), "AUTHZ_ISSUER is required")
    refused(lambda: Settings.from_env(prod_env(AUTHZ_ISSUER="")), "AUTHZ_ISSUER is required")


@pytest.mark.parametrize("name,value,words", [
    ("AUTHZ_SECRET_KEY", None, ("AUTHZ_SECRET_KEY is required",)),
    ("AUTHZ_SECRET_KEY", "", ("AUTHZ_SECRET_KEY is required",)),
    ("AUTHZ_SECRET_KEY", DEV_SECRET_KEY, ("AUTHZ_SECRET_KEY", "32")),
    ("AUTHZ_SECRET_KEY", "short-secret", ("AUTHZ_SECRET_KEY", "32")),
    ("AUTHZ_KEY_ENCRYPTION_KEY", None, ("AUTHZ_KEY_ENCRYPTION_KEY is required",)),
    ("AUTHZ_KEY_ENCRYPTION_KEY", "", ("AUTHZ_KEY_ENCRYPTION_KEY is required",)),
    ("AUTHZ_KEY_ENCRYPTION_KEY", DEV_KEY_ENCRYPTION_KEY, ("AUTHZ_KEY_ENCRYPTION_KEY", "development key")),
    ("AUTHZ_KEY_ENCRYPTION_KEY", "not-a-fernet-key", ("AUTHZ_KEY_ENCRYPTION_KEY", "Fernet")),
])
def test_a1_1_missing_or_weak_secrets_are_refused_in_production(name, value, words):
    """A.1 #1: production refuses to start without its own cookie-signing
    secret and key-encryption key (a missing, development or malformed value)."""
    refused(lambda: Settings.from_env(prod_env(**{name: value})), *words)


def test_a1_1_every_problem_is_reported_at_once():
    """A.1 #1: the message lists every problem, so one restart fixes them all."""
    message = refused(lambda: Settings.from_env({"AUTHZ_ENV": "production"}),
                      "AUTHZ_ISSUER", "AUTHZ_SECRET_KEY", "AUTHZ_KEY_ENCRYPTION_KEY")
    assert message.count("\n  - ") >= 3
    assert SECRET not in message


def test_a1_1_development_defaults_start_on_loopback():
    """A.1 #1: with nothing set, development runs on a loopback http issuer."""
    s = Settings.from_env({})
    assert s.environment == "development" and s.issuer.startswith("http://127.0.0.1")
    s.validate()


def test_a1_1_unknown_environment_is_refused():
    """A.1 #1: a typo in AUTHZ_ENV must not silently mean development."""
    refused(lambda: Settings.from_env({"AUTHZ_ENV": "prod"}), "AUTHZ_ENV")


@pytest.mark.parametrize("name,value", [
    ("AUTHZ_CODE_TTL", "601"),
    ("AUTHZ_CODE_TTL", "0"),
    ("AUTHZ_CODE_TTL", "-5"),
    ("AUTHZ_CODE_TTL", "1m"),
    ("AUTHZ_ACCESS_TOKEN_TTL", "0"),
    ("AUTHZ_ACCESS_TOKEN_ALG", "HS256"),
    ("AUTHZ_ID_TOKEN_ALG", "none"),
])
def test_a1_1_unsafe_lifetimes_and_algorithms_are_refused(name, value):
    """A.3 #14 / A.21 #99: codes live at most 10 minutes; no symmetric or ``none`` signing."""
    refused(lambda: Settings.from_env(prod_env(**{name: value})), name)


def test_a1_1_create_app_runs_the_check():
    """A.1 #1: the app factory refuses unsafe settings (nothing starts half-configured)."""
    with pytest.raises(ConfigError):
        create_app(prod(issuer="http://auth.example.com"))
    with pytest.raises(ConfigError):
        create_app(prod(issuer="https://auth.example.com?x=1"))


@pytest.mark.parametrize("missing", ["STYTCH_PROJECT_ID", "STYTCH_SECRET", "STYTCH_PUBLIC_TOKEN"])
def test_production_requires_stytch_settings(missing):
    """In production the Stytch settings are required (no emulator)."""
    message = refused(lambda: Settings.from_env(prod_env(**{missing: None})), missing)
    assert "Stytch" in message


@pytest.mark.parametrize("environment", ["http://127.0.0.1:8787", "http://stytch.internal"])
def test_production_refuses_the_emulator(environment):
    """A production configuration refuses an emulator URL as its Stytch environment."""
    refused(lambda: Settings.from_env(prod_env(STYTCH_ENVIRONMENT=environment)), "STYTCH_ENVIRONMENT")


# --- dynamic client registration (docs/requirements.md: A.14, C-2, C-14) ----------------------------

def test_a14_registration_settings_defaults_and_parsing():
    """Documented defaults: open registration, 20 registrations a minute per
    source, never-used DCR clients collected after 7 days; the environment names
    of the README are read (policy case-insensitive, tokens comma-separated)."""
    s = Settings.from_env(prod_env())
    assert (s.registration_policy, s.registration_initial_tokens, s.registration_rate,
            s.dcr_client_ttl_days) == ("open", (), 20, 7)
    tokens = "a" * 20 + " , " + "b" * 20 + ","
    s = Settings.from_env(prod_env(AUTHZ_REGISTRATION="Token", AUTHZ_REGISTRATION_INITIAL_TOKENS=tokens,
                                   AUTHZ_REGISTRATION_RATE="5", AUTHZ_DCR_CLIENT_TTL_DAYS="30"))
    assert (s.registration_policy, s.registration_initial_tokens, s.registration_rate,
            s.dcr_client_ttl_days) == ("token", ("a" * 20, "b" * 20), 5, 30)
    assert Settings.from_env(prod_env(AUTHZ_REGISTRATION="off")).registration_policy == "off"


@pytest.mark.parametrize("env, words", [
    ({"AUTHZ_REGISTRATION": "closed"}, "AUTHZ_REGISTRATION must be open, token or off"),
    ({"AUTHZ_REGISTRATION": "token"}, "needs AUTHZ_REGISTRATION_INITIAL_TOKENS"),
    ({"AUTHZ_REGISTRATION": "token", "AUTHZ_REGISTRATION_INITIAL_TOKENS": "short"}, "at least 16 characters"),
    ({"AUTHZ_REGISTRATION_RATE": "fast"}, "integer number of registrations per minute"),
    ({"AUTHZ_DCR_CLIENT_TTL_DAYS": "-1"}, "must not be negative"),
])
def test_a14_bad_registration_settings_are_refused(env, words):
    with pytest.raises(ConfigError) as e:
        Settings.from_env(prod_env(**env))
    assert words in str(e.value)


def test_registration_client_credentials_resources_default_and_parsing():
    """Registrations get no client_credentials by default;
    AUTHZ_REGISTRATION_CLIENT_CREDENTIALS_RESOURCES is a comma-separated list of
    resource URIs, and anything else is refused at start."""
    assert Settings.from_env(prod_env()).registration_client_credentials_resources == ()
    s = Settings.from_env(prod_env(AUTHZ_REGISTRATION_CLIENT_CREDENTIALS_RESOURCES=" https://a.example/mcp,"
                                                                                    "https://b.example ,"))
    assert s.registration_client_credentials_resources == ("https://a.example/mcp", "https://b.example")
    for bad in ("a.example", "https://a.example/#f", "javascript:alert(1)"):
        refused(lambda: Settings.from_env(prod_env(AUTHZ_REGISTRATION_CLIENT_CREDENTIALS_RESOURCES=bad)),
                "AUTHZ_REGISTRATION_CLIENT_CREDENTIALS_RESOURCES")


def test_login_providers_default_and_configurable():
    """Issue 4: one login link per enabled provider, Google and Microsoft by default."""
    assert Settings.from_env({}).login_providers == ("google", "microsoft")
    assert Settings.from_env({"AUTHZ_LOGIN_PROVIDERS": "Microsoft"}).login_providers == ("microsoft",)
    refused(lambda: Settings.from_env({"AUTHZ_LOGIN_PROVIDERS": "myspace"}), "AUTHZ_LOGIN_PROVIDERS")


@pytest.mark.parametrize("name,value,words", [
    ("AUTHZ_DEVICE_CODE_TTL", "30", ("AUTHZ_DEVICE_CODE_TTL", "60 and 3600")),
    ("AUTHZ_DEVICE_CODE_TTL", "86400", ("AUTHZ_DEVICE_CODE_TTL",)),
    ("AUTHZ_DEVICE_POLL_INTERVAL", "0", ("AUTHZ_DEVICE_POLL_INTERVAL",)),
    ("AUTHZ_DEVICE_CODE_ATTEMPTS", "0", ("AUTHZ_DEVICE_CODE_ATTEMPTS",)),
    ("AUTHZ_DEVICE_CODE_ATTEMPTS", "ten", ("AUTHZ_DEVICE_CODE_ATTEMPTS", "integer")),
])
def test_a17_device_flow_settings_are_checked(name, value, words):
    """RFC 8628 §3.2: device-flow lifetimes and limits outside a sane range are refused."""
    refused(lambda: Settings.from_env({name: value}), *words)


def test_a17_device_flow_settings_from_the_environment():
    s = Settings.from_env({"AUTHZ_DEVICE_CODE_TTL": "900", "AUTHZ_DEVICE_POLL_INTERVAL": "10",
                           "AUTHZ_DEVICE_CODE_ATTEMPTS": "5"})
    assert (s.device_code_ttl, s.device_poll_interval, s.device_code_attempts) == (900, 10, 5)


@pytest.mark.parametrize("value", ["4", "600000"])
def test_member_session_minutes_within_stytchs_range(value):
    """Stytch accepts session_duration_minutes from 5 to 527040 (stytch-api.md §3.5)."""
    refused(lambda: Settings.from_env({"AUTHZ_MEMBER_SESSION_MINUTES": value}), "AUTHZ_MEMBER_SESSION_MINUTES")


def test_cimd_fetch_and_gc_settings_defaults_and_parsing():
    """A 3 s deadline per document fetch, 30 first fetches a
    minute per source, CIMD rows without grants collected after 7 days."""
    s = Settings.from_env({})
    assert (s.cimd_fetch_timeout, s.cimd_fetch_rate, s.cimd_client_ttl_days) == (3, 30, 7)
    s = Settings.from_env({"AUTHZ_CIMD_FETCH_TIMEOUT": "5", "AUTHZ_CIMD_FETCH_RATE": "0",
                           "AUTHZ_CIMD_CLIENT_TTL_DAYS": "0"})
    assert (s.cimd_fetch_timeout, s.cimd_fetch_rate, s.cimd_client_ttl_days) == (5, 0, 0)


@pytest.mark.parametrize("name,value,words", [
    ("AUTHZ_CIMD_FETCH_TIMEOUT", "0", ("AUTHZ_CIMD_FETCH_TIMEOUT", "between 1 and 30")),
    ("AUTHZ_CIMD_FETCH_TIMEOUT", "60", ("AUTHZ_CIMD_FETCH_TIMEOUT",)),
    ("AUTHZ_CIMD_FETCH_RATE", "-1", ("AUTHZ_CIMD_FETCH_RATE", "must not be negative")),
    ("AUTHZ_CIMD_CLIENT_TTL_DAYS", "1", ("AUTHZ_CIMD_CLIENT_TTL_DAYS", "at least 2")),
])
def test_cimd_fetch_and_gc_settings_are_checked(name, value, words):
    refused(lambda: Settings.from_env({name: value}), *words)


# --- settings declared once (authz_server.config.SETTINGS) ---------------------------------

BOOLEANS = [s.env for s in SETTINGS if s.kind == "bool"]


def test_every_setting_is_declared_once_and_is_a_settings_field():
    """One declaration per field and per variable; Settings has exactly the declared fields."""
    envs = [s.env for s in SETTINGS if s.env]
    names = [s.field for s in SETTINGS]
    assert len(set(envs)) == len(envs) and len(set(names)) == len(names)
    assert [f.name for f in dataclasses.fields(Settings)] == names
    assert {n: getattr(Settings(), n) for n in names} == {s.field: s.default for s in SETTINGS}


@pytest.mark.parametrize("name", BOOLEANS)
@pytest.mark.parametrize("value,expected", [
    ("1", True), ("true", True), ("YES", True), ("On", True),
    ("0", False), ("False", False), ("no", False), ("OFF", False),
])
def test_booleans_parse_one_way(name, value, expected):
    """Every boolean setting reads 1/true/yes/on and 0/false/no/off, in any case."""
    field_name = next(s.field for s in SETTINGS if s.env == name)
    assert getattr(Settings.from_env({name: value}), field_name) is expected


@pytest.mark.parametrize("name", BOOLEANS)
@pytest.mark.parametrize("value", ["maybe", "2", "enabled"])
def test_a_boolean_that_is_neither_is_refused_with_its_name(name, value):
    refused(lambda: Settings.from_env({name: value}), name, "true", "false", repr(value))


@pytest.mark.parametrize("name", BOOLEANS)
def test_an_empty_boolean_means_its_default(name):
    setting = next(s for s in SETTINGS if s.env == name)
    assert getattr(Settings.from_env({name: ""}), setting.field) is setting.default


def test_read_env_says_where_each_value_came_from():
    settings, sources = Settings.read_env({"AUTHZ_TOKEN_RATE": "5", "AUTHZ_ISSUER": ""})
    assert settings.token_rate == 5 and sources["AUTHZ_TOKEN_RATE"] == "env"
    assert sources["AUTHZ_ISSUER"] == "default" and sources["AUTHZ_LOGIN_RATE"] == "default"
    assert set(sources) == {s.env for s in SETTINGS if s.env}


def test_settings_repr_shows_no_secret():
    s = prod(registration_initial_tokens=("t" * 20,))
    text = repr(s)
    for secret in (SECRET, KEK, s.stytch_secret, "t" * 20):
        assert secret not in text
    assert "https://auth.example.com" in text


# --- authz-server config show ----------------------------------------------------------------

def _config_show(env: dict):
    clean = {s.env: None for s in SETTINGS if s.env}
    return CliRunner().invoke(cli, ["config", "show"], env={**clean, **env})


def test_config_show_prints_every_setting_with_its_source_and_masks_secrets():
    """`authz-server config show` needs no database: each variable, its effective value
    (secrets masked, a URL's password hidden) and whether it came from the environment."""
    env = prod_env(DATABASE_URL="postgresql+psycopg://authz:db-password-1234@db.internal/authz",
                   AUTHZ_TOKEN_RATE="10", AUTHZ_CIMD="off")
    res = _config_show(env)
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line.split()[1:] for line in res.output.splitlines()[1:] if line.strip()}
    assert set(lines) == {s.env for s in SETTINGS if s.env}
    assert lines["AUTHZ_TOKEN_RATE"] == ["10", "env"]
    assert lines["AUTHZ_LOGIN_RATE"] == ["300", "default"]
    assert lines["AUTHZ_CIMD"] == ["0", "env"]
    assert lines["AUTHZ_ISSUER"] == ["https://auth.example.com", "env"]
    assert lines["DATABASE_URL"] == ["postgresql+psycopg://authz:****@db.internal/authz", "env"]
    assert lines["AUTHZ_SECRET_KEY"] == ["****" + SECRET[-4:], "env"]
    assert lines["STYTCH_SECRET"] == ["****" + env["STYTCH_SECRET"][-4:], "env"]
    assert lines["AUTHZ_DEFAULT_AUDIENCE"] == ["(unset)", "default"]
    for secret in (SECRET, KEK, env["STYTCH_SECRET"], "db-password-1234"):
        assert secret not in res.output


def test_config_show_lists_the_settings_then_refuses_an_invalid_configuration():
    """An unsafe configuration is still shown (to find the culprit), then the problems, exit 1."""
    res = _config_show({"AUTHZ_ENV": "production"})
    assert res.exit_code == 1
    assert "AUTHZ_ISSUER" in res.output and "(unset)" in res.output
    assert "Error: Invalid configuration" in res.output and "AUTHZ_ISSUER is required" in res.output


def test_config_show_reports_a_value_it_cannot_parse():
    res = _config_show({"AUTHZ_CODE_TTL": "soon"})
    assert res.exit_code == 1 and "AUTHZ_CODE_TTL must be an integer" in res.output
