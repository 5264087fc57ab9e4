"""API tokens: made, checked and revoked here; stored only as a SHA-256 hash.

A token is `sch_` and 40 random URL-safe characters, shown once when made.  An API
client sends it as `Authorization: Bearer <token>` and acts with its user's role.
Checking one costs a SHA-256 and one indexed query, not a password hash; the time
of last use is written at most once a minute per token.  A revoked or expired
token, or one whose user is inactive, signs nobody in (401).
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import or_, select, update

from models import ApiToken, DomainError, User, db, utcnow

__all__ = ["PREFIX", "issue", "revoke", "tokens_of", "user_for_token"]

PREFIX = "sch_"
LABEL_MAX = 80
LAST_USED_EVERY = timedelta(minutes=1)


def digest(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def issue(user: User, label: str = "", days: float = 365) -> tuple[str, ApiToken]:
    """Make a token for `user` (committed); the plain token is returned only here."""
    label = (label or "").strip()
    if len(label) > LABEL_MAX:
        raise DomainError(f"label must be at most {LABEL_MAX} characters", field="label")
    plain = PREFIX + secrets.token_urlsafe(30)
    now = utcnow()
    token = ApiToken(user_id=user.id, token_hash=digest(plain), prefix=plain[:8], label=label,
                     created_at=now, expires_at=now + timedelta(days=days) if days else None)
    db.session.add(token)
    db.session.commit()
    return plain, token


def user_for_token(plain: str) -> Optional[User]:
    """The active user a usable token belongs to, else None (its last use noted)."""
    if not plain.startswith(PREFIX) or len(plain) > 200:
        return None
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(plain)))
    now = utcnow()
    if token is None or not token.usable(now) or not token.user.active:
        return None
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_EVERY:
        _note_use(token.id, now)
    return token.user


def _note_use(token_id: int, now: datetime) -> None:
    """Record the time of use (one conditional UPDATE; a racing request may skip it)."""
    db.session.execute(update(ApiToken).where(
        ApiToken.id == token_id,
        or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - LAST_USED_EVERY),
    ).values(last_used_at=now).execution_options(synchronize_session=False))
    db.session.commit()


def tokens_of(user: User) -> list[ApiToken]:
    """The user's tokens, newest first (revoked ones included)."""
    return list(db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                                   .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def revoke(user: User, token_id: int) -> bool:
    """Revoke one of the user's tokens; False when it is not theirs or already revoked."""
    done = db.session.execute(update(ApiToken).where(
        ApiToken.id == token_id, ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None),
    ).values(revoked_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    return bool(done.rowcount)
