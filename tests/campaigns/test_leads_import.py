"""CSV lead import: good rows, bad rows with reasons, broken files that import nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reautod.campaigns.leads_import import ImportFileError, RowProblem, import_csv
from reautod.errors import ValidationError


def csv_bytes(text: str, *, bom: bool = False, encoding: str = "utf-8") -> bytes:
    data = text.encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


GOOD = """name,phone,timezone,state,email,company
Dana Smith,(212) 555-0143,,,dana@example.com,Acme
Lee Wong,+1 415 555 0132,America/Los_Angeles,CA,,
Ana Ruiz,305-555-0123,,,,Ruiz LLC
"""


def test_good_file() -> None:
    report = import_csv(csv_bytes(GOOD))
    assert report.issues == [] and report.total_rows == 3
    dana, lee, ana = report.rows
    assert (dana.line, dana.phone, dana.name) == (2, "+12125550143", "Dana Smith")
    assert dana.timezone == "America/New_York" and dana.timezone_source == "number"
    assert dana.state == "NY" and dana.email == "dana@example.com"
    assert dana.attributes == {"company": "Acme"}
    assert lee.timezone == "America/Los_Angeles" and lee.timezone_source == "row"
    assert ana.state == "FL"  # derived from the number's area code
    assert all(r.dialable for r in report.rows)


def test_bom_and_header_spellings() -> None:
    text = "Full Name,Phone Number,Time-Zone\r\nDana,2125550143,America/New_York\r\n"
    report = import_csv(csv_bytes(text, bom=True))
    assert [r.phone for r in report.rows] == ["+12125550143"]
    assert report.rows[0].timezone_source == "row"


def test_bad_rows_are_reported_with_line_and_reason() -> None:
    text = (
        "name,phone,timezone,state,email\n"
        "Good One,2125550100,,,\n"                 # 2 ok
        "No Phone,,,,\n"                            # 3
        ",2125550101,,,\n"                          # 4
        "Bad Phone,12345,,,\n"                      # 5
        "Fake Area,+15551234567,,,\n"               # 6
        "Bad Tz,2125550102,Mars/Base,,\n"           # 7
        "Bad State,2125550103,,Narnia,\n"           # 8
        "Bad Mail,2125550104,,,not-an-email\n"      # 9
        "Dup,(212) 555-0100,,,\n"                   # 10 duplicate of line 2
        "Too,Many,Columns,Here,x,y\n"               # 11
        '"Multi\nLine",2125550105,,,\n'             # 12-13 ok
        "\n"                                        # blank line: skipped
        "After,2125550106,,,\n"                     # 15 ok
    )
    report = import_csv(csv_bytes(text))
    problems = [(i.line, i.problem) for i in report.issues]
    assert problems == [
        (3, RowProblem.MISSING_PHONE), (4, RowProblem.MISSING_NAME), (5, RowProblem.BAD_PHONE),
        (6, RowProblem.BAD_PHONE), (7, RowProblem.UNKNOWN_TIMEZONE), (8, RowProblem.BAD_STATE),
        (9, RowProblem.BAD_EMAIL), (10, RowProblem.DUPLICATE), (11, RowProblem.WRONG_COLUMN_COUNT),
    ]
    assert "line 2" in report.issues[7].reason
    assert [r.line for r in report.rows] == [2, 12, 15]
    assert report.rows[1].name == "Multi Line"
    assert report.summary()["rejected"] == 9 and report.summary()["imported"] == 3


def test_ambiguous_timezone_is_imported_not_dialable() -> None:
    text = "name,phone,timezone\nToll Free,800-555-0199,\nDakota,605-555-0100,\n" \
           "Set,605-555-0101,America/Chicago\n"
    report = import_csv(csv_bytes(text))
    free, dakota, fixed = report.rows
    assert not free.dialable and free.timezone is None and free.timezone_source == "none"
    assert not dakota.dialable
    assert fixed.dialable and fixed.timezone == "America/Chicago"
    assert [(i.line, i.problem, i.imported) for i in report.issues] == [
        (2, RowProblem.AMBIGUOUS_TIMEZONE, True), (3, RowProblem.AMBIGUOUS_TIMEZONE, True)]
    assert report.rejected == []


def test_existing_leads_are_duplicates() -> None:
    report = import_csv(csv_bytes(GOOD), existing_phones={"+14155550132"})
    assert [(i.line, i.problem) for i in report.issues] == [(3, RowProblem.DUPLICATE)]
    assert len(report.rows) == 2


def test_default_region() -> None:
    text = "name,phone,timezone\nUK,07911 123456,Europe/London\nUK2,020 7946 0018,\n"
    report = import_csv(csv_bytes(text), default_region="GB")
    assert [r.phone for r in report.rows] == ["+447911123456", "+442079460018"]
    assert report.rows[1].timezone == "Europe/London" and report.rows[1].state is None
    with pytest.raises(ValidationError, match="region"):
        import_csv(csv_bytes(text), default_region="XX")


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL"),
    ("name,phone\nJos\xe9,2125550100\n".encode("latin-1"), "not UTF-8"),
    ("name,phone\n".encode("utf-16"), "NUL"),
    (b"name,email\nDana,d@example.com\n", "phone"),
    (b"Just some prose, not a table.\nAnother line.\n", "required column"),
    (b"name,phone,name\nA,2125550100,B\n", "repeats"),
    (b'name,phone\nDana,2125550100\n"Lee,2125550101\n', "line 3"),
    (b'name,phone\nDana,"212"555\n', "not valid CSV"),
])
def test_broken_file_imports_nothing(data: bytes, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        import_csv(data)


def test_row_limit() -> None:
    rows = "".join(f"L{i},21255501{i:02d}\n" for i in range(5))
    with pytest.raises(ImportFileError, match="more than 3 rows"):
        import_csv(csv_bytes("name,phone\n" + rows), max_rows=3)


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.binary(max_size=400),
    st.lists(st.lists(st.text(max_size=12), max_size=6), max_size=8).map(
        lambda rows: ("name,phone,timezone\n" + "\n".join(",".join(r) for r in rows)).encode()),
))
def test_any_input_gives_a_report_or_a_file_error(data: bytes) -> None:
    try:
        report = import_csv(data)
    except ImportFileError:
        return
    assert len(report.rows) + len(report.rejected) <= report.total_rows
    assert len({r.phone for r in report.rows}) == len(report.rows)
    for row in report.rows:
        assert row.phone.startswith("+") and row.name
        assert row.dialable == (row.timezone is not None)
