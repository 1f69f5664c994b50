"""Settings of the benchmark peer: django-oauth-toolkit under gunicorn.

Production-like: DEBUG off, persistent DB connections (CONN_MAX_AGE), no debug
toolbar, logging to stderr at WARNING. Everything the bench varies comes from
PEER_* environment variables set by bench/token_endpoint.py.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("PEER_SECRET_KEY", "bench-peer-insecure-secret-key-change-me-0123456789")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "oauth2_provider",
    "benchseed",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # the token view is csrf_exempt
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
if os.environ.get("PEER_SQL_COUNT") == "1":
    # Logs "sql_count path=... grant_type=... statements=N" per request, in the
    # same format as authz_server's AUTHZ_SQL_COUNT=1.
    MIDDLEWARE.insert(0, "peer_project.sqlcount.SqlCountMiddleware")

ROOT_URLCONF = "peer_project.urls"
WSGI_APPLICATION = "peer_project.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",  # psycopg 3
        "NAME": os.environ.get("PEER_DB_NAME", "bench_peer"),
        "HOST": os.environ.get("PEER_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("PEER_DB_PORT", "5432"),
        "USER": os.environ.get("PEER_DB_USER", "postgres"),
        "PASSWORD": os.environ.get("PEER_DB_PASSWORD", ""),
        # One persistent connection per gunicorn worker, as a production Django
        # deployment (and SQLAlchemy's pool on our side) would have.
        "CONN_MAX_AGE": 600,
    }
}

USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_rsa_key_file = os.environ.get("PEER_OIDC_RSA_KEY_FILE")
_rsa_key = Path(_rsa_key_file).read_text() if _rsa_key_file else ""
_hasher = os.environ.get("PEER_CLIENT_SECRET_HASHER", "plain")

OAUTH2_PROVIDER = {
    "SCOPES": {
        "openid": "OpenID Connect",
        "profile": "Profile",
        "email": "Email",
        "offline_access": "Offline access",
    },
    "ACCESS_TOKEN_EXPIRE_SECONDS": 900,
    # Rotation with a 60 s grace window and reuse detection, like authz_server.
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 60,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    # DOT looks tokens up by their SHA-256 checksum either way; it refuses to
    # combine hashed-only storage with a grace period (check E001), and the
    # grace period is part of the contract we compare against, so the token
    # column keeps the plaintext too. The per-request cost is the same.
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": False,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "PKCE_REQUIRED": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    # OIDC on: a refresh with scope "openid" returns a fresh RS256 id_token.
    "OIDC_ENABLED": bool(_rsa_key),
    "OIDC_RSA_PRIVATE_KEY": _rsa_key,
    "OIDC_ISS_ENDPOINT": os.environ.get("PEER_ISSUER", ""),
    # "plain" means applications are created with hash_client_secret=False
    # (see benchseed); otherwise the name of a Django password hasher
    # ("default" is PBKDF2-SHA256 with 1,000,000 iterations).
    "CLIENT_SECRET_HASHER": "default" if _hasher == "plain" else _hasher,
}

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "django.contrib.auth.hashers.MD5PasswordHasher",
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
