"""The `flask --app app ...` commands: users, demo data, sync runs, schedule upkeep."""
from __future__ import annotations

from datetime import datetime, time, timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

import demo_data
import sync_engine
import table_stats
import tokens
from auth import create_user
from models import (
    ROLES,
    DomainError,
    Employee,
    Event,
    Schedule,
    User,
    app_tz,
    db,
    event_type_for,
    fmt_local,
    live,
    local_to_utc,
    notify_local_change,
    to_local,
    utcnow,
)

users_cli = AppGroup("users", help="Manage who can sign in.")


@users_cli.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="scheduler", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(name: str, role: str, password_stdin: bool) -> None:
    """Create a user (or reset an existing user's password and role)."""
    import sys

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(name, password, role)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"user {user.username!r} ({user.role}) is ready")


@users_cli.command("token")
@click.argument("name")
@click.option("--label", default="", help="What the token is for (shown on the tokens page).")
def users_token(name: str, label: str) -> None:
    """Make an API token for a user and print it (shown this once)."""
    user = db.session.scalar(select(User).where(User.username == name))
    if user is None or not user.active:
        raise click.ClickException(f"no active user {name!r}")
    try:
        plain, token = tokens.issue(user, label, current_app.config["API_TOKEN_DAYS"])
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    until = fmt_local(token.expires_at) if token.expires_at else "revoked"
    click.echo(plain)
    click.echo(f"token for {user.username!r} ({user.role}), valid until {until}; "
               "it is shown only now", err=True)


demo_cli = AppGroup("demo", help="Demo data for a first run.")


@demo_cli.command("seed")
@click.option("--force", is_flag=True, help="Add the demo data even if events exist.")
def demo_seed(force: bool) -> None:
    """Add a few employees, events and schedules (only into an empty database)."""
    if not force and db.session.scalar(select(func.count()).select_from(Event)):
        click.echo("events exist already; demo data not added (use --force)")
        return
    employees = seed_demo_data()
    click.echo(f"demo data added: {employees} employees, events in the next two weeks")


def seed_demo_data() -> int:
    """A small, realistic data set in APP_TIMEZONE, pending for the vendor."""
    today = to_local(utcnow()).date()
    people = [("US100001", "Ana Lopez", "ana.lopez@example.com"),
              ("US100002", "Ben Okafor", "ben.okafor@example.com"),
              ("US100003", "Chloe Martin", "chloe.martin@example.com"),
              ("US100004", "Dev Patel", "dev.patel@example.com")]
    staff = []
    for code, name, email in people:
        if db.session.scalar(live(Employee).where(Employee.code == code)) is None:
            staff.append(Employee(code=code, name=name, email=email))
    db.session.add_all(staff)
    base_ref = 606100 + int(utcnow().timestamp()) % 1000 * 100
    events = []
    for n in range(12):
        _type, name = demo_data.PROJECTS[n % len(demo_data.PROJECTS)]
        store_number, store_name = demo_data.STORES[n % len(demo_data.STORES)]
        first = today + timedelta(days=n % 5)
        events.append(Event(
            project_ref_num=base_ref + n, project_name=name, event_type=event_type_for(name),
            store_number=store_number, store_name=store_name,
            location_mvid=f"MV-{store_number:05d}",
            start_datetime=local_to_utc(datetime.combine(first, time(demo_data.WORKDAY_START))),
            due_datetime=local_to_utc(datetime.combine(first + timedelta(days=1 + n % 4),
                                                       time(demo_data.WORKDAY_END))),
            estimated_minutes=60 * (1 + n % 4),
        ))
    db.session.add_all(events)
    db.session.flush()
    if len(staff) >= 2:
        for event, person in ((events[0], staff[0]), (events[1], staff[1])):
            db.session.add(Schedule(event_id=event.id, employee_id=person.id,
                                    start_datetime=event.start_datetime + timedelta(hours=1)))
    db.session.commit()
    notify_local_change()
    # a first run's tables, filled from empty: statistics now, not when autovacuum wakes
    table_stats.after_bulk_write(["employees", "events", "schedules"], 0, force=True)
    return len(staff)


sync_cli = AppGroup("sync", help="Two-way sync with the vendor.")


@sync_cli.command("run")
@click.option("--resources", default="", help="Comma-separated: employees,events,schedules.")
@click.option("--direction", type=click.Choice(("both", "push", "pull")), default="both",
              show_default=True)
@click.option("--full", is_flag=True, help="List everything instead of the changes since last time.")
def sync_run_command(resources: str, direction: str, full: bool) -> None:
    """Run one sync now and print its summary (exit 1 if it failed)."""
    chosen = [r.strip() for r in resources.split(",") if r.strip()] or None
    try:
        run = sync_engine.run_sync(current_app._get_current_object(), trigger="cli",
                                   resources=chosen, direction=direction, full=full)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except (sync_engine.SyncDisabled, sync_engine.SyncInProgress) as exc:
        click.echo(f"sync not run: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(f"run {run.id}: {run.status} — pushed {run.pushed}, pulled {run.pulled}, "
               f"failed {run.failed}, conflicts {run.conflicts}")
    if run.message:
        click.echo(run.message)
    for error in run.errors or []:
        click.echo(f"  {error['resource']} {error['id']}: {error['message']}")
    if run.status == "failed":
        raise SystemExit(1)


schedules_cli = AppGroup("schedules", help="Schedule upkeep.")


@schedules_cli.command("recompute-days")
def recompute_days_command() -> None:
    """Recompute every schedule's local day for APP_TIMEZONE (run after changing it).

    Refuses, changing nothing (exit 1), when the new zone puts two live schedules of an
    employee on one day, and names them.
    """
    import local_days

    tz = app_tz()
    try:
        with db.engine.begin() as conn:
            changed = local_days.recompute(conn, tz)
    except local_days.DayClashError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    table_stats.after_bulk_write(["schedules"], changed)
    click.echo(f"{changed} schedule{'s' if changed != 1 else ''} moved to their day in {tz.key}.")


def register_commands(app: Flask) -> None:
    """Add the command groups to `app.cli`."""
    for group in (users_cli, sync_cli, demo_cli, schedules_cli):
        app.cli.add_command(group)
