"""The employees pages: list and add, edit, deactivate and reactivate.

The form's limits come from the model columns (fields.py).
"""
from __future__ import annotations

from typing import Optional

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required

import fields
from models import (
    DomainError,
    Employee,
    Schedule,
    db,
    deactivate,
    future_schedules,
    get_live,
    is_email,
    notify_local_change,
    value_taken,
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
        values = {"name": employee.name, "code": employee.code or "",
                  "email": employee.email or "", "active": employee.active}
        return render_employee_edit(employee, values, {})
    try:
        values = read_employee_form(request.form, employee)
        unscheduled = deactivate_from_form(employee, request.form) if not values["active"] else []
    except FormErrors as exc:
        return render_employee_edit(employee, request.form.to_dict(), exc.errors,
                                    future=exc.future), exc.status
    for name, value in values.items():
        setattr(employee, name, value)
    employee.mark_changed()
    if not commit_or_conflict():
        return render_employee_edit(employee, request.form.to_dict(),
                                    {"code": "That employee ID is taken."}), 409
    flash(f"Saved {employee.name}.{unscheduled_note(unscheduled)}", "success")
    return redirect(url_for("employees.employees"))


def render_employee_edit(employee: Employee, values: dict, errors: dict, **extra) -> str:
    """The edit form, with the employee's History section below it."""
    return render_template("employee_edit.html", employee=employee, values=values,
                           errors=errors, history=employee_history(employee), **extra)


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

