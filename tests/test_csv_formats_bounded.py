"""A CSV whose every row has several bad fields is read in bounded memory: the first 100
problems listed, all of them counted, nothing kept per row."""
from __future__ import annotations

import io
import tracemalloc

import csv_formats

HEADER = ("Project Name,Project Reference Number,Location MVID,Store Number,Store Name,"
          "Start Date/Time,Due Date/Time,Estimated Time,Employee ID,Rep Name,Schedule Date/Time\r\n")
# a reference that is not a number, a bad store number, two bad dates, a bad duration
BAD_ROW = "CORE - Reset,R{n},mv1,not-a-number,Store 1,13/41/2026 12:00:00 AM,someday,sixty,,,\r\n"
ROWS = 20_000


def _bad_file(rows: int) -> str:
    return HEADER + "".join(BAD_ROW.format(n=n) for n in range(rows))


def test_every_bad_field_is_counted_and_only_the_first_100_listed():
    _rows, problems, _present = csv_formats.parse_work_bank(io.StringIO(_bad_file(300)))
    assert problems.total == 5 * 300
    assert len(problems.listed) == csv_formats.MAX_PROBLEMS
    assert [p["line"] for p in problems.listed[:5]] == [2] * 5
    assert {p["column"] for p in problems.listed} == {
        "Project Reference Number", "Store Number", "Start Date/Time", "Due Date/Time",
        "Estimated Time"}


def test_a_file_of_bad_rows_keeps_nothing_per_row():
    """The peak of what the parse allocates does not grow with the rows (a cached date
    error raised again once chained every row's frames onto its traceback)."""
    peaks = []
    for rows in (ROWS // 4, ROWS):
        stream = io.StringIO(_bad_file(rows))  # the file's own bytes are not the parse's
        tracemalloc.start()
        try:
            _rows, problems, _present = csv_formats.parse_work_bank(stream)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert problems.total == 5 * rows and len(problems.listed) == 100
    assert peaks[1] < peaks[0] * 1.5 + 256 * 1024, peaks
    assert peaks[1] < 8 * 2**20, peaks


def test_the_import_answer_lists_100_and_counts_all(app, client, admin_headers):
    data = {"file": (io.BytesIO(_bad_file(1000).encode()), "bad.csv")}
    answer = client.post("/api/import/events", data=data, headers=admin_headers,
                         content_type="multipart/form-data")
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error["total"] == 5000 and len(error["details"]) == 100
    assert len(answer.data) <= 64 * 1024
