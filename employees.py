"""The employees pages: list and add, edit, deactivate and reactivate.

The form's limits come from the model columns (fields.py).
"""
from __future__ import annotations

from typing import Optional

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required

import availability
import feeds
import fields
from models import (
    WEEKDAY_NAMES,
    DomainError,
    Employee,
    Schedule,
    TimeOff,
    db,
    deactivate,
    future_schedules,
    get_live,
    is_email,
    notify_local_change,
    value_taken,
    workdays_mask,
)
from paging import page_number, paginate
from shared import FormErrors, commit_or_conflict, employee_history

bp = Blueprint("employees", __name__)


def read_employee_form(form, employee: Optional[Employee] = None) -> dict:
    """Name, code, email and active from an employee form, or FormErrors (limits: fields.py)."""
    values = {"name": (form.get("name") or "").strip(), "code": (form.get("code") or "").strip() or None,
              "email": (form.get("email") or "").strip() or None, "active": bool(form.get("active"))}
    longest = {name: fields.limit("employees", name).max_length for name in ("name", "code", "email")}
    errors = {}
    if not 1 <= len(values["name"]) <= longest["name"]:
        errors["name"] = f"Enter a name (1–{longest['name']} characters)."
    if values["code"] and len(values["code"]) > longest["code"]:
        errors["code"] = f"The employee ID is at most {longest['code']} characters."
    elif values["code"] and value_taken(Employee.code, values["code"], employee):
        errors["code"] = f"Employee ID {values['code']} belongs to someone else."
    if values["email"] and len(values["email"]) > longest["email"]:
        errors["email"] = f"The email address is at most {longest['email']} characters."
    elif values["email"] and not is_email(values["email"]):
        errors["email"] = "Enter an email address like name@example.com."
    if errors:
        raise FormErrors(errors)
    return values


def render_employees(values: dict, errors: dict, status: int = 200):
    """The employee list (active first, then by name) with the add form."""
    order = [Employee.active.desc(), Employee.name, Employee.id]
    listing = paginate(Employee, [Employee.deleted_at.is_(None)], order, page_number())
    return render_template("employees.html", listing=listing, values=values, errors=errors), status


@bp.route("/employees", methods=["GET", "POST"])
@login_required
def employees():
    """List employees and add one."""
    if request.method == "GET":
        return render_employees({"active": True}, {})
    try:
        values = read_employee_form(request.form)
    except FormErrors as exc:
        return render_employees(request.form.to_dict(), exc.errors, exc.status)
    employee = Employee(**values)
    db.session.add(employee)
    if not commit_or_conflict():
        return render_employees(request.form.to_dict(), {"code": "That employee ID is taken."}, 409)
    flash(f"Added {employee.name}.", "success")
    return redirect(url_for("employees.employees"))


@bp.route("/employees/<int:employee_id>/edit", methods=["GET", "POST"])
@login_required
def edit_employee(employee_id: int):
    """Change an employee's name, code, email or active flag."""
    employee = get_live(Employee, employee_id) or abort(404)
    if request.method == "GET":
        return render_employee_edit(employee, employee_values(employee), {})
    try:
        values = read_employee_form(request.form, employee)
        values.update(read_availability_form(request.form))
        unscheduled = deactivate_from_form(employee, request.form) if not values["active"] else []
    except FormErrors as exc:
        return render_employee_edit(employee, form_values(request.form), exc.errors,
                                    future=exc.future), exc.status
    synced = any(getattr(employee, name) != value for name, value in values.items()
                 if name not in LOCAL_FIELDS)
    for name, value in values.items():
        setattr(employee, name, value)
    if synced:  # availability alone is local: nothing for the vendor
        employee.mark_changed()
    if not commit_or_conflict():
        return render_employee_edit(employee, request.form.to_dict(),
                                    {"code": "That employee ID is taken."}), 409
    flash(f"Saved {employee.name}.{unscheduled_note(unscheduled)}", "success")
    return redirect(url_for("employees.employees"))


LOCAL_FIELDS = ("workdays", "max_days_per_week")  # availability: never pushed


def employee_values(employee: Employee) -> dict:
    """The edit form's values for a stored employee."""
    return {"name": employee.name, "code": employee.code or "", "email": employee.email or "",
            "active": employee.active, "workdays": employee.workday_names,
            "max_days_per_week": employee.max_days_per_week or ""}


def form_values(form) -> dict:
    """A posted edit form's values, to show again (the workday boxes as a list)."""
    return {**form.to_dict(), "workdays": form.getlist("workdays")}


def read_availability_form(form) -> dict:
    """Workday boxes and the weekly limit of an edit form (only when it has them: the
    hidden `availability` field), or FormErrors; the rules' words are availability's."""
    if form.get("availability") != "1":
        return {}
    text = (form.get("max_days_per_week") or "").strip()
    try:
        limit = availability.max_days_value(int(text) if text.isdigit() else (text or None),
                                            "The weekly limit")
        return {"workdays": workdays_mask(form.getlist("workdays")), "max_days_per_week": limit}
    except DomainError as exc:
        raise FormErrors({"max_days_per_week" if exc.field != "workdays" else "workdays":
                          exc.message + "."}) from None


def render_employee_edit(employee: Employee, values: dict, errors: dict, **extra) -> str:
    """The edit form (availability, time off, calendar feed), with the History below it."""
    time_off = db.session.scalars(db.select(TimeOff).where(TimeOff.employee_id == employee.id)
                                  .order_by(TimeOff.start_date, TimeOff.id)).all()
    return render_template("employee_edit.html", employee=employee, values=values,
                           errors=errors, history=employee_history(employee),
                           weekdays=WEEKDAY_NAMES, time_off=time_off,
                           has_feed=feeds.has_feed(employee), **extra)


def deactivate_from_form(employee: Employee, form) -> list[Schedule]:
    """Deactivate from a page: the schedules unscheduled, or FormErrors (409) that ask,
    listing the future schedules, unless the form ticked unschedule_future."""
    try:
        return deactivate(employee, unschedule_future=form.get("unschedule_future") == "1")
    except DomainError as exc:
        errors = FormErrors({"active": f"{employee.name} still has future work: tick "
                                       "“Unschedule them too” to deactivate."}, exc.status)
        errors.future = future_schedules(employee.id)
        raise errors from None


def unscheduled_note(unscheduled: list) -> str:
    """The flash message's note on schedules a deactivation took off the calendar."""
    if not unscheduled:
        return ""
    count = len(unscheduled)
    return (f" {count} future schedule{'s' if count != 1 else ''} unscheduled; "
            f"{'their events are' if count != 1 else 'its event is'} back on the dashboard.")


@bp.route("/employees/<int:employee_id>/active", methods=["POST"])
@login_required
def set_employee_active(employee_id: int):
    """Deactivate (active=0) or reactivate (active=1) an employee."""
    employee = get_live(Employee, employee_id) or abort(404)
    page = request.form.get("page", type=int) or None
    unscheduled = []
    if request.form.get("active") == "1":
        employee.active = True
    else:
        try:
            unscheduled = deactivate_from_form(employee, request.form)
        except FormErrors as exc:
            return render_template("employee_deactivate.html", employee=employee,
                                   future=exc.future, page=page), exc.status
    employee.mark_changed()
    db.session.commit()
    notify_local_change()
    flash(f"{employee.name} is now {'active' if employee.active else 'inactive'}."
          f"{unscheduled_note(unscheduled)}", "success")
    return redirect(url_for("employees.employees", page=page))



@bp.route("/employees/<int:employee_id>/time_off", methods=["POST"])
@login_required
def add_time_off(employee_id: int):
    """Add days off from the edit page (whole local days, inclusive)."""
    employee = get_live(Employee, employee_id) or abort(404)
    form = request.form
    try:
        values = availability.parse_time_off({"start_date": form.get("start_date") or None,
                                              "end_date": form.get("end_date") or None,
                                              "note": form.get("note") or None})
    except DomainError as exc:
        return render_employee_edit(employee, employee_values(employee),
                                    {exc.field or "start_date": exc.message + "."}), 422
    db.session.add(TimeOff(employee_id=employee.id, **values))
    db.session.commit()
    flash(f"{employee.name} is off from {values['start_date']} to {values['end_date']}.", "success")
    return redirect(url_for("employees.edit_employee", employee_id=employee.id))


@bp.route("/employees/<int:employee_id>/time_off/<int:time_off_id>/delete", methods=["POST"])
@login_required
def delete_time_off(employee_id: int, time_off_id: int):
    """Remove one range of time off from the edit page."""
    off = db.session.get(TimeOff, time_off_id)
    if off is None or off.employee_id != employee_id:
        abort(404)
    db.session.delete(off)
    db.session.commit()
    flash("Removed the time off.", "success")
    return redirect(url_for("employees.edit_employee", employee_id=employee_id))


@bp.route("/employees/<int:employee_id>/feed", methods=["POST"])
@login_required
def make_feed(employee_id: int):
    """Make (or replace) the employee's calendar feed; its address is shown this once."""
    employee = get_live(Employee, employee_id) or abort(404)
    token = feeds.make_feed(employee)
    db.session.commit()
    feed_url = url_for("calendar_feeds.employee_feed", token=token, _external=True)
    return render_employee_edit(employee, employee_values(employee), {}, feed_url=feed_url)


@bp.route("/employees/<int:employee_id>/feed/revoke", methods=["POST"])
@login_required
def revoke_feed(employee_id: int):
    """Revoke the employee's calendar feed: its address stops working."""
    employee = get_live(Employee, employee_id) or abort(404)
    feeds.revoke_feed(employee)
    db.session.commit()
    flash(f"Revoked {employee.name}'s calendar feed.", "success")
    return redirect(url_for("employees.edit_employee", employee_id=employee.id))
