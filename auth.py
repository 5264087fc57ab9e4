"""Sign-in and sign-out: session login for pages, API tokens and HTTP Basic for the JSON
API (tokens.py checks a token), roles.

`admin_required` guards the admin views; `create_user` is what the CLI and the
bootstrap admin use.
"""
from __future__ import annotations

import logging
from functools import wraps
from typing import Optional

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

import security
import tokens
from error_handlers import is_api_request
from extensions import login_manager
from models import ROLES, ApiError, DomainError, User, db

log = logging.getLogger("app")

bp = Blueprint("auth", __name__)

login_manager.user_loader(security.load_session_user)


@login_manager.request_loader
def load_user_from_request(req) -> Optional[User]:
    """An API token (`Authorization: Bearer`: a hash and one query), or HTTP Basic
    (`curl -u name:password`: the slow way, a password hash per request; failures are
    throttled).  Either exempts the request from CSRF (`g.basic_auth`)."""
    auth = req.authorization
    if auth is not None and auth.type == "bearer":
        user = tokens.user_for_token(auth.token or "")
    elif auth is None or auth.type != "basic" or not auth.username:
        return None
    else:
        user = security.authenticate(auth.username, auth.password or "")
    if user is not None:
        g.basic_auth = True
    return user


@login_manager.unauthorized_handler
def unauthorized():
    """401 JSON for the API, a redirect to the login page for pages."""
    if is_api_request():
        raise ApiError(401, "unauthorized", "sign in first: send an API token, or a user name and password "
                                            "(HTTP Basic)")
    return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))


def admin_required(view):
    """Signed in as an admin, else 401/redirect (anonymous) or 403 (scheduler)."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_admin:
            if is_api_request():
                raise ApiError(403, "forbidden", "this needs the admin role")
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def create_user(username: str, password: str, role: str = "scheduler") -> User:
    """Create (or update the password and role of) a user."""
    if role not in ROLES:
        raise DomainError(f"role must be one of {', '.join(ROLES)}", field="role")
    if not username or len(username) > 80:
        raise DomainError("username must be 1–80 characters", field="username")
    if len(password) < 8:
        raise DomainError("password must be at least 8 characters", field="password")
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, role=role)
        db.session.add(user)
    user.role = role
    user.active = True
    user.set_password(password)
    db.session.commit()
    return user


@bp.route("/login", methods=["GET", "POST"])
@security.throttle_signin
def login():
    """Sign in with a username and password (failures are throttled: 429)."""
    error = None
    if request.method == "POST":
        username = (request.form.get("username") or "").strip()
        user = security.authenticate(username, request.form.get("password") or "")
        if user is not None:
            login_user(user)
            return redirect(security.safe_next(request.args.get("next")) or url_for("pages.index"))
        error = "Unknown username or wrong password."
        log.info("failed login for %r", username[:80])
    return render_template("login.html", error=error), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out (POST only, CSRF-protected): every session of this user ends."""
    if current_user.is_authenticated:
        security.end_sessions(current_user)
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))

