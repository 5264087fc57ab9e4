"""Sign-in security and the security headers, in one place.

* Throttling (Flask-Limiter): failed sign-ins, by the login form or by HTTP
  Basic, are counted per client address and per user name in the limiter's
  storage (`RATELIMIT_STORAGE_URI`: in memory by default, shared storage such
  as Redis for several processes).  Only failures count (answers 401); once a
  limit is spent every attempt gets `429` with `Retry-After`, the right
  password too, until the window has passed.
* `authenticate()` costs one password hash whether the user exists or not
  (unknown names are checked against a dummy hash), so user names cannot be
  probed by timing.
* Sessions carry the user's `session_version` (see `models.User.get_id`):
  signing out or changing the password bumps it, so a copy of an old session
  cookie stops working.
* `safe_next()` keeps a `next` target to a path on this site.
* Security headers on every answer by Flask-Talisman: a CSP with no inline
  script or style and `frame-ancestors 'none'`, `X-Frame-Options: DENY`,
  `nosniff`, `Referrer-Policy`; in production HSTS (over HTTPS) and `Secure`
  session cookies.
"""
from __future__ import annotations

import math
import secrets
import time
import unicodedata
from functools import lru_cache
from typing import Optional
from urllib.parse import unquote, urlsplit

from flask import Flask, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from flask_talisman import Talisman
from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from error_handlers import error_response
from models import User, db

limiter = Limiter(key_func=get_remote_address)

LOGIN_ENDPOINT = "auth.login"

# Pages use only same-origin files: no inline <script>, no style attributes
# (static/js and static/css hold everything), no frames, no plugins.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
THROTTLED_MESSAGE = "too many failed sign-ins; wait before trying again"


# ---------------------------------------------------------------------------
# Throttling failed sign-ins
# ---------------------------------------------------------------------------

def signin_name() -> Optional[str]:
    """The user name this request signs in as (login form or HTTP Basic), else None."""
    if request.endpoint == LOGIN_ENDPOINT:
        if request.method != "POST":
            return None
        name = request.form.get("username") or ""
    else:
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return None
        name = auth.username or ""
    return name.strip().casefold()[:200] or "-"


def _not_a_signin() -> bool:
    return signin_name() is None


def _failed(response) -> bool:
    return response.status_code == 401


def _limit(setting: str, scope: str, key_func):
    """A limit shared by the login form and the API's Basic: failures only."""
    return limiter.shared_limit(lambda: current_app.config[setting], scope=scope,
                                key_func=key_func, exempt_when=_not_a_signin,
                                deduct_when=_failed, error_message=THROTTLED_MESSAGE)


_per_address = _limit("SIGNIN_LIMIT_PER_ADDRESS", "signin-address", get_remote_address)
_per_name = _limit("SIGNIN_LIMIT_PER_NAME", "signin-name", signin_name)


def throttle_signin(target):
    """Count failed sign-ins of a view or of a blueprint (per address, per name)."""
    result = _per_address(target)
    result = _per_name(target if result is None else result)
    return target if result is None else result


def retry_after_seconds() -> int:
    """Seconds until the spent sign-in limit of this request allows a try again."""
    limit = limiter.current_limit
    if limit is None:
        return 60
    return max(1, math.ceil(limit.reset_at - time.time()))


# ---------------------------------------------------------------------------
# Passwords and sessions
# ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash of a random password, made like real ones (same method and cost)."""
    return generate_password_hash(secrets.token_urlsafe(24))


def authenticate(username: str, password: str) -> Optional[User]:
    """The active user with these credentials, else None, at the same cost either way."""
    user = db.session.scalar(select(User).where(User.username == username)) if username else None
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return None
    return user if user.check_password(password) and user.active else None


def end_sessions(user: User) -> None:
    """Make every session of `user` invalid (sign-out): bump its session version."""
    db.session.execute(update(User).where(User.id == user.id)
                       .values(session_version=User.session_version + 1))
    db.session.commit()


def load_session_user(user_id: str) -> Optional[User]:
    """Flask-Login's user loader: `<id>:<session version>`, current and active, else None.

    A request that carries HTTP Basic credentials is signed in by them alone
    (right or wrong), never by a session cookie that happens to come with it.
    """
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        return None
    number, _, version = (user_id or "").partition(":")
    if not (number.isdigit() and version.isdigit()) or len(number) > 18:
        return None
    user = db.session.get(User, int(number))
    if user is None or not user.active or user.session_version != int(version):
        return None
    return user


# ---------------------------------------------------------------------------
# Redirect targets
# ---------------------------------------------------------------------------

def safe_next(target: Optional[str]) -> Optional[str]:
    """`target` when it is a path on this site (no scheme, no host), else None.

    Browsers drop tabs and newlines and read a backslash as a slash, so
    `/\\t/evil.example` or `/\\\\evil.example` would leave the site: any control
    character or backslash, in the text or once percent-decoded, refuses it.
    """
    if not isinstance(target, str) or not target.startswith("/") or len(target) > 2000:
        return None
    for text in (target, unquote(target), unicodedata.normalize("NFKC", unquote(target))):
        if "\\" in text or any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text):
            return None
        if text.startswith("//"):
            return None
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            return None
    return target


# ---------------------------------------------------------------------------
# Wiring
# ---------------------------------------------------------------------------

def register_security(app: Flask) -> None:
    """Bind the limiter and Talisman; 429s through the app's error path, with Retry-After.

    Talisman keeps per-app settings on its instance, so each app gets its own.
    """
    limiter.init_app(app)
    Talisman(
        app,
        force_https=False,  # TLS ends at the proxy; HSTS tells browsers to stay on HTTPS
        strict_transport_security=app.config["HSTS_MAX_AGE"] > 0,
        strict_transport_security_max_age=app.config["HSTS_MAX_AGE"],
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        session_cookie_samesite=app.config["SESSION_COOKIE_SAMESITE"],
        content_security_policy=CONTENT_SECURITY_POLICY,
        frame_options="DENY",
        referrer_policy="same-origin",
        x_content_type_options=True,
    )

    @app.errorhandler(RateLimitExceeded)
    def too_many(exc: RateLimitExceeded):
        response, status = error_response(429, "rate_limited", THROTTLED_MESSAGE)
        response = current_app.make_response((response, status))
        response.headers["Retry-After"] = str(retry_after_seconds())
        return response
