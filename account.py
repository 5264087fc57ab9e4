"""The signed-in user's own account: API tokens (`/account/tokens`).

A token is shown once, on the answer to the form that made it (never stored in
plain text, never cached); the list shows each token's label, first characters,
creation, expiry and last use, and revokes it.
"""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

import tokens
from models import DomainError, utcnow

bp = Blueprint("account", __name__, url_prefix="/account")


def render_tokens(new_token: str = "", errors: dict | None = None, status: int = 200):
    """The tokens page (with a just-made token shown once, no-store)."""
    page = render_template("account_tokens.html", tokens=tokens.tokens_of(current_user),
                           new_token=new_token, errors=errors or {}, now=utcnow(),
                           days=current_app.config["API_TOKEN_DAYS"],
                           label=request.form.get("label", "") if errors else "")
    return page, status, {"Cache-Control": "no-store"}


@bp.get("/tokens")
@login_required
def api_tokens():
    """List the signed-in user's API tokens."""
    return render_tokens()


@bp.post("/tokens")
@login_required
def make_api_token():
    """Make a token and show it this once."""
    try:
        plain, _token = tokens.issue(current_user, request.form.get("label", ""),
                                     current_app.config["API_TOKEN_DAYS"])
    except DomainError as exc:
        return render_tokens(errors={exc.field or "label": exc.message}, status=422)
    return render_tokens(new_token=plain, status=201)


@bp.post("/tokens/<int:token_id>/revoke")
@login_required
def revoke_api_token(token_id: int):
    """Revoke one of the user's tokens."""
    if tokens.revoke(current_user, token_id):
        flash("The token is revoked: it no longer signs anyone in.", "info")
    else:
        flash("No such token of yours, or it was revoked already.", "error")
    return redirect(url_for("account.api_tokens"))
