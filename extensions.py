"""The unbound extensions (bound to an app in app.register_extensions).

Imports nothing of the app.
"""
from __future__ import annotations

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()
