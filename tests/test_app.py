"""The app factory, the configuration classes and the migrations."""
import pytest

import config
from app import create_app
from models import db


def test_testing_config(app):
    assert app.testing
    assert app.config["APP_CONFIG"] == "testing"
    assert not app.config["SYNC_ENABLED"]


def test_unknown_config_name_fails_clearly():
    with pytest.raises(config.ConfigError, match="APP_CONFIG 'staging' is unknown"):
        config.config_for("staging")


def test_production_refuses_to_start_naming_every_missing_setting(monkeypatch):
    with pytest.raises(config.ConfigError) as info:
        create_app("production", {"SECRET_KEY": None, "DATABASE_URL": None,
                                  "SYNC_ENABLED": True, "WEBHOOK_SECRET": None,
                                  "EXTERNAL_API_BASE_URL": "http://127.0.0.1:9/api/v1"})
    message = str(info.value)
    assert "SECRET_KEY" in message and "WEBHOOK_SECRET" in message and "DATABASE_URL" in message


def test_production_refuses_sqlite():
    with pytest.raises(config.ConfigError, match="DATABASE_URL"):
        create_app("production", {"SECRET_KEY": "x" * 32, "DATABASE_URL": "sqlite:///x.db"})


def test_bad_conflict_policy_is_refused(database_url):
    with pytest.raises(config.ConfigError, match="SYNC_CONFLICT_POLICY"):
        create_app("testing", {"SQLALCHEMY_DATABASE_URI": database_url,
                               "SYNC_CONFLICT_POLICY": "newest"})


def test_postgres_urls_use_psycopg3():
    assert config.normalize_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert config.normalize_database_url("sqlite:///x") == "sqlite:///x"


def test_migrations_build_the_schema_the_models_declare(app):
    """Upgrading gives exactly the tables, columns and indexes of the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with app.app_context():
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_admin_bootstrap_from_settings(database_url):
    from tests.conftest import make_app
    from models import User

    application = make_app(database_url, ADMIN_USERNAME="boss", ADMIN_PASSWORD="boss-pass-123")
    with application.app_context():
        user = db.session.scalar(db.select(User).where(User.username == "boss"))
        assert user is not None and user.role == "admin" and user.check_password("boss-pass-123")
        db.session.delete(user)
        db.session.commit()
