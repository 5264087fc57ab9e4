"""Template filters and globals: times in APP_TIMEZONE, history entries in words."""
from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

import alerts
import history
from models import (
    DomainError,
    Employee,
    Event,
    RecordHistory,
    db,
    fmt_local,
    iso,
    parse_api_datetime,
)

HISTORY_VERBS = {
    "schedules": {"created": "scheduled", "changed": "moved", "deleted": "unscheduled",
                  "restored": "restored"},
    "employees": {"created": "added", "changed": "changed", "deleted": "deleted",
                  "restored": "restored"},
    "events": {"created": "created", "changed": "changed", "deleted": "deleted",
               "restored": "restored"},
}


# History's field names as the pages say them (the CSV's headers where one exists).
FIELD_LABELS = {
    "code": "Employee code", "name": "Name", "email": "Email", "active": "Active",
    "project_ref_num": "Project reference number", "project_name": "Project name",
    "event_type": "Event type", "store_number": "Store number", "store_name": "Store name",
    "location_mvid": "Location MVID", "start_datetime": "Start", "due_datetime": "Due",
    "estimated_minutes": "Estimated minutes", "event_id": "Event", "employee_id": "Employee",
    "workdays": "Workdays", "max_days_per_week": "Most days a week",
}


def field_label(name: str) -> str:
    """A tracked field's label: "Location MVID", "Store number" (else its name in words)."""
    return FIELD_LABELS.get(name) or name.replace("_", " ").capitalize()


# How each source says who did it ({verb}, {who}, {ref}); csv, pull and conflict depend
# on more than the source (history_words picks their variant).
SOURCE_WORDS = {
    "page": "{verb} by {who}",
    "api": "{verb} by {who} (API)",
    "cli": "{verb} from the command line",
    "planner": "{verb} by {who} (planner)",
    "webhook": "{verb} by the vendor (webhook)",
    "pull": "{verb} by the vendor (sync run #{ref})",
    "pull by someone": "{verb} by {who}, applying the vendor's listing (sync run #{ref})",
    "push": "{verb} by the sync's push: the vendor's answer taken (sync run #{ref})",
    "restore": "kept by {who} and sent to the vendor again (held deletion)",
    "conflict local": "kept local by {who} in a conflict",
    "conflict": "{verb}: the vendor's version kept by {who} in a conflict",
}


def history_words(entry: RecordHistory) -> str:
    """What happened and through which path, as a person says it: "moved by the vendor
    (webhook)", "imported from WorkBankVisits.csv by ana", "kept local by admin in a
    conflict"."""
    verb = HISTORY_VERBS[entry.resource][entry.action]
    who, source = entry.actor or "someone", entry.source
    if source == "csv":
        return f"{verb}: imported from {history.import_file(entry.ref) or 'a file'} by {who}"
    if source == "pull" and entry.actor:
        source = "pull by someone"
    elif source == "conflict" and entry.ref == "local":
        source = "conflict local"
    words = SOURCE_WORDS.get(source, SOURCE_WORDS["conflict"])
    return words.format(verb=verb, who=who, ref=entry.ref)


def history_values(entries: list) -> dict:
    """{(field, raw value): text} for a page of entries: times in APP_TIMEZONE, schedules'
    employee and event ids as names (one query each)."""
    wanted = {"employee_id": set(), "event_id": set()}
    for entry in entries:
        for name, pair in (entry.changes or {}).items():
            if name in wanted:
                wanted[name].update(v for v in pair if v is not None)
    shown = {}
    if wanted["employee_id"]:
        shown.update((("employee_id", i), n) for i, n in db.session.execute(
            select(Employee.id, Employee.name).where(Employee.id.in_(wanted["employee_id"]))))
    if wanted["event_id"]:
        shown.update((("event_id", i), f"{n} (#{ref})") for i, n, ref in db.session.execute(
            select(Event.id, Event.project_name, Event.project_ref_num)
            .where(Event.id.in_(wanted["event_id"]))))
    return shown


def history_value(name: str, value: Any, shown: dict) -> str:
    """One old or new value of an entry as the page shows it."""
    if value is None:
        return "—"
    if isinstance(value, list):  # an employee's workdays
        return ", ".join(str(v).capitalize() for v in value) or "none"
    if (name, value) in shown:
        return shown[(name, value)]
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name.endswith("_datetime") and isinstance(value, str):
        try:
            return fmt_local(parse_api_datetime(value, name))
        except DomainError:
            return value
    return str(value)


def availability_words(employee) -> str:
    """An employee's workdays and weekly limit, short: "Mon, Tue, Wed · max 2" ("Every day")."""
    names = employee.workday_names
    days = "Every day" if len(names) == 7 else (", ".join(n.capitalize() for n in names) or "No days")
    limit = employee.max_days_per_week
    return f"{days} · max {limit}" if limit is not None else days


def register_template_helpers(app: Flask) -> None:
    """Filters that show stored UTC times in APP_TIMEZONE; history entries in words."""
    app.add_template_filter(lambda dt, fmt="%Y-%m-%d %H:%M": fmt_local(dt, fmt), "localtime")
    app.add_template_global(history_words)
    app.add_template_global(history_value)
    app.add_template_global(field_label)
    app.add_template_global(availability_words)
    app.add_template_filter(lambda dt: iso(dt) or "", "isoutc")
    app.add_template_global(alerts.firing, "firing_alerts")

    @app.context_processor
    def inject_globals():
        """The time zone and the sync switch, for every template."""
        return {
            "app_timezone": app.config["APP_TIMEZONE"],
            "sync_enabled": bool(app.config.get("SYNC_ENABLED")),
        }

