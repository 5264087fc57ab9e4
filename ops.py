"""Probes for a load balancer or an orchestrator: `/healthz` and `/readyz`.

Neither needs sign-in, and neither says more than whether it is well:
`/healthz` answers 200 while the process serves (it touches neither the database
nor the vendor); `/readyz` answers 200 when the database answers a trivial query,
else 503.
"""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from models import db

ops = Blueprint("ops", __name__)
log = logging.getLogger("app.ops")


@ops.get("/healthz")
def healthz():
    """Alive: the process serves requests."""
    return jsonify(status="ok")


@ops.get("/readyz")
def readyz():
    """Ready: the database answers."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("readyz: the database does not answer (%s)", type(exc).__name__)
        return jsonify(status="unavailable"), 503
    finally:
        db.session.remove()
    return jsonify(status="ok")
