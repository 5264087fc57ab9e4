"""The CSV files schedulers already have (docs/csv-formats.md).

`import_events_csv(stream)` reads a WorkBankVisits.csv: the whole file is
checked first as it streams (`parse_work_bank`, no database; a bad file is
read in bounded memory), then checked against the database with bulk
look-ups (`_plan`), then applied in one transaction.  Any problem raises
`CsvImportError` listing the first 100 problems and counting them all, and
nothing is saved.  `export_schedule_csv()` / `iter_schedule_csv()` write a
CalendarSchedule.csv that imports back without changing anything.

Times in the files are wall-clock times in APP_TIMEZONE with second
precision; storage is UTC.  Needs an app context (settings and database).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable, Iterator, Optional

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

import availability
import fields
import history
import inputs
import table_stats
from bulk_rows import insert_rows
from models import (
    Employee,
    Event,
    LocalTimeError,
    Schedule,
    SyncMixin,
    day_holders,
    day_taken_words,
    db,
    event_type_for,
    in_list,
    local_day_bounds,
    local_to_utc,
    notify_local_change,
    to_local,
    utcnow,
)

DATE_FORMAT = "%m/%d/%Y %I:%M:%S %p"
DATE_EXAMPLE = "09/27/2025 12:00:00 AM"
CHUNK = 500  # ids per IN (...) look-up, well under every database's limit
FLUSH_EVERY = 1000
MAX_PROBLEMS = 100  # an error answer lists at most this many (and counts them all)
TIME_CACHE = 4096  # distinct date/time texts remembered while reading a file
_INTEGER = re.compile(r"[+-]?[0-9]+")
# A spreadsheet reads a cell starting with = + - @ tab or CR as a formula.  The
# export writes such a text cell with a leading apostrophe (and one more before
# apostrophes already leading such a value); the import takes one off again, so
# an export imports back unchanged.  Numbers are written as numbers, unescaped.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")

# WorkBankVisits.csv: header → (attribute, required)
IMPORT_COLUMNS = {
    "Project Name": ("project_name", True),
    "Project Reference Number": ("project_ref_num", True),
    "Location MVID": ("location_mvid", False),
    "Store Number": ("store_number", False),
    "Store Name": ("store_name", False),
    "Start Date/Time": ("start", True),
    "Due Date/Time": ("due", True),
    "Estimated Time": ("estimated_minutes", False),
    "Employee ID": ("employee_code", False),
    "Rep Name": ("rep_name", False),
    "Schedule Date/Time": ("schedule_at", False),
}

# CalendarSchedule.csv, in this order
EXPORT_COLUMNS = (
    "Project Name", "Project Reference Number", "Location MVID", "Store Number", "Store Name",
    "Start Date/Time", "Due Date/Time", "Estimated Time", "Rep Name", "Employee ID",
    "Schedule Date/Time",
)

# Event fields a row may change, with the header that carries each one
EVENT_FIELDS = {
    "project_name": "Project Name", "location_mvid": "Location MVID",
    "store_number": "Store Number", "store_name": "Store Name",
    "start_datetime": "Start Date/Time", "due_datetime": "Due Date/Time",
    "estimated_minutes": "Estimated Time",
}

# The model field whose limits (fields.py) each cell obeys
CELL_FIELDS = {
    "project_ref_num": ("events", "project_ref_num"), "project_name": ("events", "project_name"),
    "store_number": ("events", "store_number"), "store_name": ("events", "store_name"),
    "location_mvid": ("events", "location_mvid"), "estimated_minutes": ("events", "estimated_minutes"),
    "employee_code": ("employees", "code"), "rep_name": ("employees", "name"),
}
# What a number under its field's minimum is told
BELOW_MINIMUM = {"project_ref_num": "must be a positive whole number",
                 "estimated_minutes": "must be zero or more minutes"}


class Problems:
    """The first MAX_PROBLEMS problems of a file, in order, and how many there are in all."""

    def __init__(self, problems: Iterable[dict] = ()):
        self.listed: list[dict] = []
        self.total = 0
        for problem in problems:
            self.append(problem)

    def append(self, problem: dict) -> None:
        self.total += 1
        if len(self.listed) < MAX_PROBLEMS:
            self.listed.append(problem)

    def __len__(self) -> int:
        return self.total


class CsvImportError(Exception):
    """A file that cannot be imported: the first problems in `details`, all counted in `total`.

    `status`/`code`: 422 invalid_csv for a wrong file; 409 conflict when another import or
    change committed meanwhile what this file would create (a unique rule's race lost).
    """

    status, code = 422, "invalid_csv"

    def __init__(self, problems):
        if not isinstance(problems, Problems):
            problems = Problems(problems)
        self.details, self.total = problems.listed, problems.total
        count = self.total
        listed = f" (the first {len(self.details)} are listed)" if count > len(self.details) else ""
        super().__init__(f"the file has {count} problem{'s' if count != 1 else ''}{listed}; "
                         "nothing was imported")

    @property
    def message(self) -> str:
        return str(self)


class CsvRaceLost(CsvImportError):
    """The database refused the import (a unique index): another import or change got there
    first.  `details` name the rows that clash with it; nothing was imported."""

    status, code = 409, "conflict"

    def __init__(self, details: list[dict]):
        CsvImportError.__init__(self, details)
        rows = sorted({d["line"] for d in details if d.get("line")})
        Exception.__init__(self, "another import or change got there first"
                           + (f" (rows {', '.join(map(str, rows))})" if rows else "")
                           + "; nothing was imported: check the rows and import the file again")


@dataclass
class LocalTime:
    """A CSV time: the wall clock as written and the UTC instant it means."""

    wall: datetime  # naive, APP_TIMEZONE, second precision
    utc: datetime


@dataclass
class WorkBankRow:
    """One checked row of a WorkBankVisits.csv."""

    line: int
    project_ref_num: int
    project_name: str
    start: LocalTime
    due: LocalTime
    location_mvid: Optional[str] = None
    store_number: Optional[int] = None
    store_name: Optional[str] = None
    estimated_minutes: Optional[int] = None
    employee_code: Optional[str] = None
    rep_name: Optional[str] = None
    schedule_at: Optional[LocalTime] = None

    def event_values(self) -> dict:
        return {"project_name": self.project_name, "location_mvid": self.location_mvid,
                "store_number": self.store_number, "store_name": self.store_name,
                "start_datetime": self.start, "due_datetime": self.due,
                "estimated_minutes": self.estimated_minutes}


# ---------------------------------------------------------------------------
# Reading and checking a file (no database)
# ---------------------------------------------------------------------------

def text_lines(source: Any) -> io.TextIOBase:
    """The file as text read as it streams (UTF-8, a byte-order mark dropped)."""
    if isinstance(source, str):
        return io.StringIO(source.lstrip("\ufeff"), newline="")
    if not hasattr(source, "read"):
        source = io.BytesIO(bytes(source or b""))
    return io.TextIOWrapper(source, encoding="utf-8-sig", newline="")


def _not_utf8(line: int, exc: UnicodeDecodeError) -> dict:
    return _problem(line, "", f"the file is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                              f"near line {line}); save it as 'CSV UTF-8' and try again")


def parse_work_bank(stream: io.TextIOBase) -> tuple[list[WorkBankRow], Problems, set[str]]:
    """Check every row of a WorkBankVisits.csv as it streams: (good rows, problems, columns present).

    Once a row is wrong nothing will be imported, so good rows are no longer
    kept: a bad file of any size is read in bounded memory.
    """
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        return [], Problems([_problem(1, "", "the file is empty: expected a header row and data rows")]), set()
    except UnicodeDecodeError as exc:
        return [], Problems([_not_utf8(1, exc)]), set()
    except csv.Error as exc:
        return [], Problems([_problem(1, "", f"the header row is not valid CSV: {exc}")]), set()
    positions, header_problems = _read_header(header)
    if header_problems:
        return [], Problems(header_problems), set()
    problems = Problems()
    rows = _read_rows(reader, positions, problems)
    return ([] if problems else rows), problems, _present_fields(header)


def _read_rows(reader, positions: dict[str, int], problems: Problems) -> list[WorkBankRow]:
    """The data rows after the header, checked; problems appended (rows stop being kept
    after the first)."""
    rows: list[WorkBankRow] = []
    seen: dict[int, int] = {}
    times: dict[str, Any] = {}
    previous_end = reader.line_num
    while True:
        line = previous_end + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except UnicodeDecodeError as exc:
            problems.append(_not_utf8(line, exc))
            break
        except csv.Error as exc:
            problems.append(_problem(line, "", f"not valid CSV: {exc}"))
            break
        previous_end = reader.line_num
        row = _read_row(line, cells, positions, times, problems)
        if row is None:
            continue
        if row.project_ref_num in seen:
            problems.append(_problem(line, "Project Reference Number",
                                     f"{row.project_ref_num} is also on line {seen[row.project_ref_num]}; "
                                     "each reference number may appear once"))
            continue
        seen[row.project_ref_num] = line
        if not problems:
            rows.append(row)
    return rows


def _read_row(line: int, cells: list[str], positions: dict[str, int], times: dict,
              problems: Problems) -> Optional[WorkBankRow]:
    """One data row's cells checked, or None (blank, or problems appended)."""
    if not any(cell.strip() for cell in cells):
        return None  # blank lines and rows of bare commas
    if len(times) > TIME_CACHE:
        times.clear()
    values = {attr: (cells[i].strip() if i < len(cells) else "") for attr, i in positions.items()}
    return _parse_row(line, values, times, problems)


def _read_header(header: list[str]) -> tuple[dict[str, int], list[dict]]:
    """Column positions by attribute; problems for missing or repeated columns."""
    wanted = {name.casefold(): (name, attr) for name, (attr, _) in IMPORT_COLUMNS.items()}
    positions: dict[str, int] = {}
    errors = []
    for index, raw in enumerate(header):
        key = raw.strip().lstrip("\ufeff").strip().casefold()
        if key not in wanted:
            continue  # extra columns are ignored
        name, attr = wanted[key]
        if attr in positions:
            errors.append(_problem(1, name, "this column appears twice"))
        positions[attr] = index
    for name, (attr, required) in IMPORT_COLUMNS.items():
        if required and attr not in positions:
            errors.append(_problem(1, name, f"the required column '{name}' is missing"))
    return positions, errors


def _parse_row(line: int, values: dict, times: dict, errors: Problems) -> Optional[WorkBankRow]:
    """One row's values checked and converted, or None (problems appended)."""
    before = len(errors)

    def fail(attr: str, message: str) -> None:
        errors.append(_problem(line, _header_of(attr), message))

    parsed: dict[str, Any] = {}
    for attr, text in values.items():
        required = IMPORT_COLUMNS[_header_of(attr)][1]
        if not text:
            if required:
                fail(attr, "a value is required")
            parsed[attr] = None
            continue
        try:
            parsed[attr] = _convert(attr, text, times)
        except ValueError as exc:
            fail(attr, str(exc))
    if len(errors) > before:
        return None
    row = WorkBankRow(line=line, **parsed)
    if row.due.utc < row.start.utc:
        fail("due", "the due date/time is before the start date/time")
    if row.schedule_at is not None and not (row.start.utc <= row.schedule_at.utc <= row.due.utc):
        fail("schedule_at", f"the scheduled time is outside the event's window "
                            f"({values['start']} – {values['due']})")
    return row if len(errors) == before else None


def formula_escape(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula."""
    return "'" + text if _FORMULA.match(text) else text


def formula_unescape(text: str) -> str:
    """The value `formula_escape` was given."""
    return text[1:] if text[:1] == "'" and _FORMULA.match(text, 1) else text


def _convert(attr: str, text: str, times: dict) -> Any:
    """A cell's text as the attribute's type; ValueError says why not."""
    inputs.check_text(text, "the value")
    if attr in ("start", "due", "schedule_at"):
        if text not in times:
            times[text] = _parse_time(text)
        result = times[text]
        if isinstance(result, str):
            # a new exception each time: raising the cached one again would chain every
            # row's frames onto its traceback (a bad date on every row kept them all)
            raise ValueError(result)
        return result
    rule = fields.limit(*CELL_FIELDS[attr])
    if rule.kind is int:
        number = _parse_int(text, rule)
        if number < rule.minimum:
            raise ValueError(f"{BELOW_MINIMUM.get(attr, f'must be at least {rule.minimum}')}, got {text!r}")
        return number
    text = formula_unescape(text)
    if len(text) > rule.max_length:
        raise ValueError(f"must be at most {rule.max_length} characters ({len(text)} given)")
    return text


def _parse_int(text: str, rule: fields.Limits) -> int:
    """A cell's whole number; past the column's INTEGER range is too large."""
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"must be a whole number, got {text!r}")
    number = int(text)
    if number > rule.maximum:
        raise ValueError(f"{text} is too large")
    return number


def _parse_time(text: str):
    """A LocalTime, or the message of the problem to report (cached per distinct text)."""
    try:
        wall = datetime.strptime(text, DATE_FORMAT)
    except ValueError:
        return f"{text!r} is not a date/time like {DATE_EXAMPLE} (MM/DD/YYYY hh:mm:ss AM/PM)"
    try:
        return LocalTime(wall=wall, utc=local_to_utc(wall))
    except LocalTimeError as exc:
        return str(exc)


def _header_of(attr: str) -> str:
    return _HEADERS[attr]


_HEADERS = {attr: name for name, (attr, _) in IMPORT_COLUMNS.items()}


def _problem(line: int, column: str, message: str) -> dict:
    return {"line": line, "column": column, "message": message}


# ---------------------------------------------------------------------------
# Importing: check against the database, then apply in one transaction
# ---------------------------------------------------------------------------

@dataclass
class _Plan:
    """What an import will do, worked out before anything is written."""

    rows: list[WorkBankRow]
    present: set[str]  # event attributes whose column is in the file
    events: dict[int, Any] = field(default_factory=dict)  # ref → live Event
    employees: dict[str, Any] = field(default_factory=dict)  # code → live Employee
    new_employees: dict[str, str] = field(default_factory=dict)  # code → name
    schedules: dict[int, Any] = field(default_factory=dict)  # event id → live Schedule
    moves: list[WorkBankRow] = field(default_factory=list)  # rows that (re)schedule
    errors: list[dict] = field(default_factory=list)


def import_events_csv(source: Any, filename: Optional[str] = None) -> dict:
    """Import a WorkBankVisits.csv (bytes, text or a file object).

    Returns `{"created", "updated", "unchanged", "scheduled",
    "employees_created"}`; raises CsvImportError (nothing saved) when any row
    is wrong.  Its changes are history from source "csv", the ref naming this
    import and its file (`history.import_ref`).
    """
    rows, problems, present = parse_work_bank(text_lines(source))
    if problems:
        raise CsvImportError(problems)
    with history.source("csv", ref=history.import_ref(filename)):
        return _import_rows(rows, present)


def _import_rows(rows: list[WorkBankRow], present: set[str]) -> dict:
    """Plan and write the parsed rows in one transaction (all or nothing)."""
    try:
        plan = _plan(rows, present)
        if plan.errors:
            raise CsvImportError(sorted(plan.errors, key=lambda p: p["line"]))
        before = _Before(set(plan.events), set(plan.new_employees), {
            ref for ref, event in plan.events.items() if event.id not in plan.schedules})
        result = _apply(plan)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise CsvRaceLost(_race_losses(before, rows, present)) from None
    except BaseException:
        db.session.rollback()
        raise
    written = result["created"] + result["updated"] + result["scheduled"] + result["employees_created"]
    if written:
        notify_local_change()
    table_stats.after_bulk_write(["events", "schedules", "employees"], written)
    return result


@dataclass
class _Before:
    """What a plan saw before writing: known reference numbers, new codes, free events."""

    refs: set
    new_codes: set
    unscheduled_refs: set


def _race_losses(before: _Before, rows: list[WorkBankRow], present: set[str]) -> list[dict]:
    """The rows that clash with what another import or change committed meanwhile.

    Planned again against the database as it is now: a new employee code or reference
    number that exists now, an event scheduled meanwhile, and what the checks say now.
    """
    fresh = _plan(rows, present)
    taken_codes = before.new_codes & set(fresh.employees)
    taken_refs = set(fresh.events) - before.refs
    now_scheduled = {ref for ref, event in fresh.events.items()
                     if ref in before.unscheduled_refs and event.id in fresh.schedules}
    problems = list(fresh.errors)
    for row in rows:
        if row.employee_code in taken_codes:
            problems.append(_problem(row.line, "Employee ID",
                                     f"employee {row.employee_code} was created by another "
                                     "import or change meanwhile"))
        if row.project_ref_num in taken_refs:
            problems.append(_problem(row.line, "Project Reference Number",
                                     f"project {row.project_ref_num} was created by another "
                                     "import or change meanwhile"))
        if row.project_ref_num in now_scheduled and row.schedule_at is not None:
            problems.append(_problem(row.line, "Schedule Date/Time",
                                     f"project {row.project_ref_num} was scheduled by another "
                                     "import or change meanwhile"))
    if not problems:
        problems.append(_problem(None, None, "another import or change got there first; "
                                             "import the file again"))
    return sorted(problems, key=lambda p: p["line"] or 0)


def _present_fields(header: list[str]) -> set[str]:
    """The event attributes whose column the file has (others are left alone)."""
    names = {cell.strip().lstrip("\ufeff").strip().casefold() for cell in header}
    return {attr for attr, name in EVENT_FIELDS.items() if name.casefold() in names}


def _chunks(values: Iterable, size: int = CHUNK) -> Iterator[list]:
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _plan(rows: list[WorkBankRow], present: set[str]) -> _Plan:
    """Load what the rows touch (bulk, no query per row) and check the rules."""
    plan = _Plan(rows=rows, present=present)
    for refs in _chunks({row.project_ref_num for row in rows}):
        query = select(Event).where(Event.deleted_at.is_(None), in_list(Event.project_ref_num, refs))
        plan.events.update((e.project_ref_num, e) for e in db.session.scalars(query))
    for codes in _chunks({row.employee_code for row in rows if row.employee_code}):
        query = select(Employee).where(Employee.deleted_at.is_(None), in_list(Employee.code, codes))
        plan.employees.update((e.code, e) for e in db.session.scalars(query))
    for ids in _chunks(e.id for e in plan.events.values()):
        query = select(Schedule).where(Schedule.deleted_at.is_(None), in_list(Schedule.event_id, ids))
        plan.schedules.update((s.event_id, s) for s in db.session.scalars(query))
    for row in rows:
        _check_employee(plan, row)
        _check_existing_schedule(plan, row)
    _check_busy(plan)
    _check_availability(plan)
    return plan


def _check_employee(plan: _Plan, row: WorkBankRow) -> None:
    """Employee ID + Rep Name: known, or new and creatable."""
    code = row.employee_code
    if code is None or code in plan.employees:
        return
    if code in plan.new_employees:
        return
    if not row.rep_name:
        plan.errors.append(_problem(row.line, "Rep Name",
                                    f"employee {code} is new: a Rep Name is needed to create it"))
        return
    plan.new_employees[code] = row.rep_name


def _check_existing_schedule(plan: _Plan, row: WorkBankRow) -> None:
    """Decide whether the row (re)schedules its event; check what stays."""
    event = plan.events.get(row.project_ref_num)
    current = plan.schedules.get(event.id) if event is not None else None
    if row.schedule_at is None:
        if current is not None and not (row.start.utc <= current.start_datetime <= row.due.utc):
            plan.errors.append(_problem(row.line, "Start Date/Time",
                                        "the event is scheduled at " + _fmt(current.start_datetime)
                                        + ", which would fall outside the new window"))
        return
    if row.employee_code is None:
        # A code-less employee exported by us: fine when it is the current schedule.
        if (current is not None and _same_time(current.start_datetime, row.schedule_at)
                and current.employee.name == row.rep_name):
            return
        plan.errors.append(_problem(row.line, "Employee ID",
                                    "a Schedule Date/Time needs the Employee ID of who does the work"))
        return
    employee = plan.employees.get(row.employee_code)
    if (current is not None and employee is not None and current.employee_id == employee.id
            and _same_time(current.start_datetime, row.schedule_at)):
        return  # scheduled like this already
    if employee is not None and not employee.active:
        plan.errors.append(_problem(row.line, "Employee ID",
                                    f"{employee.name} ({row.employee_code}) is inactive"))
        return
    plan.moves.append(row)


def _check_busy(plan: _Plan) -> None:
    """One schedule per employee per local day, counting the file's own rows."""
    if not plan.moves:
        return
    moving_refs = {row.project_ref_num for row in plan.moves}
    days = {row.schedule_at.wall.date() for row in plan.moves}
    taken: dict[tuple, int] = {}  # (employee key, day) → project ref num
    employee_ids = {e.id: code for code, e in plan.employees.items()}
    for ids in _chunks(employee_ids):
        query = (day_holders(ids, days).add_columns(Event.project_ref_num)
                 .join(Event, Event.id == Schedule.event_id))
        for _id, employee_id, day, ref in db.session.execute(query):
            if ref not in moving_refs:
                taken[(employee_ids[employee_id], day)] = ref
    for row in plan.moves:
        key = (row.employee_code, row.schedule_at.wall.date())
        other = taken.get(key)
        if other is not None and other != row.project_ref_num:
            plan.errors.append(_problem(
                row.line, "Schedule Date/Time",
                day_taken_words(f"employee {row.employee_code}", key[1], f"project {other}")))
            continue
        taken[key] = row.project_ref_num


def _check_availability(plan: _Plan) -> None:
    """Workdays, time off and weekly limits (availability.py) for the rows that schedule
    an existing employee, counting the file's own rows; the employees with a limit are
    locked first, so a race with another path still has one winner."""
    rows = [row for row in plan.moves if row.employee_code in plan.employees]
    if not rows:
        return
    employees = {row.employee_code: plan.employees[row.employee_code] for row in rows}
    availability.lock_limited(list(employees.values()))
    days = [row.schedule_at.wall.date() for row in rows]
    offs, held = availability.load_availability([e.id for e in employees.values()],
                                                min(days), max(days))
    moving = {plan.events[row.project_ref_num].id for row in plan.moves
              if row.project_ref_num in plan.events}
    for row, day in zip(rows, days):
        employee = employees[row.employee_code]
        week = held.setdefault((employee.id, availability.week_start(day)), {})
        taken = {d for d, event_id in week.items() if event_id not in moving or event_id == -1}
        problem = availability.problem_from(employee, day, offs.get(employee.id, ()), taken)
        if problem is not None:
            plan.errors.append(_problem(row.line, "Schedule Date/Time", problem.message))
        else:
            week.setdefault(day, -1)  # the file's own row counts for the next ones


def _apply(plan: _Plan) -> dict:
    """Write the plan: events, new employees, schedules (new events in bulk inserts)."""
    counts = {"created": 0, "updated": 0, "unchanged": 0, "scheduled": 0,
              "employees_created": len(plan.new_employees)}
    now, new_events = utcnow(), []
    for row in plan.rows:
        event = plan.events.get(row.project_ref_num)
        if event is None:
            new_events.append({"project_ref_num": row.project_ref_num,
                               "event_type": event_type_for(row.project_name),
                               **_plain(row.event_values()), "created_at": now,
                               "updated_at": now, **SyncMixin.pending_values()})
            counts["created"] += 1
        elif _update_event(event, row, plan.present):
            event.mark_changed()
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    # One executemany per chunk: an ORM object per new event was 80% of a 20k-row import.
    for chunk in _chunks(new_events, FLUSH_EVERY):
        by_ref = {values["project_ref_num"]: values for values in chunk}
        history.record_created("events", [(event_id, by_ref[ref])
                                          for event_id, ref in _insert_events(chunk)])
    created_refs = {values["project_ref_num"] for values in new_events}
    for refs in _chunks({row.project_ref_num for row in plan.moves} & created_refs):
        query = select(Event).where(Event.deleted_at.is_(None), in_list(Event.project_ref_num, refs))
        plan.events.update((e.project_ref_num, e) for e in db.session.scalars(query))
    for code, name in plan.new_employees.items():
        employee = Employee(code=code, name=name, active=True)
        db.session.add(employee)
        plan.employees[code] = employee
    db.session.flush()
    counts["scheduled"] = _apply_schedules(plan)
    return counts


def _insert_events(chunk: list[dict]):
    """Insert a chunk of new events; their (id, project_ref_num), for their history.  SQLite
    answers them with RETURNING; on PostgreSQL one COPY and one look-up were faster than
    an executemany with RETURNING (the bench's CSV import: 2.3 s became 1.2 s)."""
    table = Event.__table__
    if db.session.get_bind().dialect.name != "postgresql":
        return db.session.execute(insert(table).returning(table.c.id, table.c.project_ref_num),
                                  chunk).all()
    if not insert_rows(table, chunk):
        db.session.execute(insert(table), chunk)
    return db.session.execute(select(Event.id, Event.project_ref_num).where(
        Event.deleted_at.is_(None),
        in_list(Event.project_ref_num, [values["project_ref_num"] for values in chunk]))).all()


def _update_event(event, row: WorkBankRow, present: set[str]) -> bool:
    """Set the fields that differ; True when something changed."""
    changed = False
    for attr, new in row.event_values().items():
        if attr not in present:
            continue
        old = getattr(event, attr)
        if isinstance(new, LocalTime):
            if _same_time(old, new):
                continue
            new = new.utc
        elif (None if old == "" else old) == new:
            continue
        setattr(event, attr, new)
        changed = True
        if attr == "project_name":
            event.event_type = event_type_for(new)
    return changed


def _apply_schedules(plan: _Plan) -> int:
    """Schedule or reschedule the events of the rows that say so."""
    done = 0
    for row in plan.moves:
        event = plan.events[row.project_ref_num]
        employee = plan.employees[row.employee_code]
        current = plan.schedules.get(event.id) if event.id is not None else None
        if current is None:
            db.session.add(Schedule(event_id=event.id, employee_id=employee.id,
                                    start_datetime=row.schedule_at.utc))
        else:
            current.employee_id = employee.id
            current.start_datetime = row.schedule_at.utc
            current.mark_changed()
        done += 1
        if done % FLUSH_EVERY == 0:
            db.session.flush()
    return done


def _plain(values: dict) -> dict:
    return {k: (v.utc if isinstance(v, LocalTime) else v) for k, v in values.items()}


def _same_time(stored: Optional[datetime], new: LocalTime) -> bool:
    """Equal at the file's precision: the same wall-clock second in APP_TIMEZONE."""
    if stored is None:
        return False
    if stored.replace(microsecond=0) == new.utc:
        return True
    return to_local(stored).replace(tzinfo=None, microsecond=0) == new.wall


def _fmt(dt: Optional[datetime]) -> str:
    return to_local(dt).strftime(DATE_FORMAT) if dt is not None else ""


# ---------------------------------------------------------------------------
# Exporting CalendarSchedule.csv
# ---------------------------------------------------------------------------

def iter_schedule_csv(from_date: Optional[date] = None, to_date: Optional[date] = None,
                      batch: int = 1000) -> Iterator[str]:
    """The CalendarSchedule.csv text in pieces: the header, then `batch` rows at a time."""
    query = (select(Event.project_name, Event.project_ref_num, Event.location_mvid,
                    Event.store_number, Event.store_name, Event.start_datetime,
                    Event.due_datetime, Event.estimated_minutes, Employee.name,
                    Employee.code, Schedule.start_datetime)
             .join(Event, Event.id == Schedule.event_id)
             .join(Employee, Employee.id == Schedule.employee_id)
             .where(Schedule.deleted_at.is_(None), Event.deleted_at.is_(None))
             .order_by(Schedule.start_datetime, Schedule.id))
    if from_date is not None:
        query = query.where(Schedule.start_datetime >= local_day_bounds(from_date)[0])
    if to_date is not None:
        query = query.where(Schedule.start_datetime < local_day_bounds(to_date)[1])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    result = db.session.execute(query.execution_options(yield_per=batch))
    for rows in result.partitions():
        yield _take(buffer)
        writer.writerows(_export_row(row) for row in rows)
    yield _take(buffer)


def export_schedule_csv(from_date: Optional[date] = None, to_date: Optional[date] = None) -> str:
    """The CalendarSchedule.csv of live schedules (optionally local dates from..to, inclusive)."""
    return "".join(iter_schedule_csv(from_date, to_date))


def _export_row(row) -> list:
    (name, ref, mvid, store_number, store_name, start, due, minutes,
     rep_name, code, scheduled) = row
    text = formula_escape
    return [text(name), ref, text(mvid or ""), _blank(store_number), text(store_name or ""),
            _fmt(start), _fmt(due), _blank(minutes), text(rep_name), text(code or ""),
            _fmt(scheduled)]


def _blank(value: Optional[int]) -> Any:
    return "" if value is None else value


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
