"""A local stand-in for the Google Sheets API v4: `values.get` and `values.append` in Google's
REST shapes, bearer tokens checked against the TokenServer, Google's error bodies, and a script
of failures (e.g. 429 with Retry-After) for quota tests."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from tests.integrations.standins import Received, Reply, StandIn, TokenServer, json_reply

VALUES = re.compile(r"^/v4/spreadsheets/([^/]+)/values/([^/:]+)(:append)?$")
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND",
          429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def error(code: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return json_reply(code, {"error": {"code": code, "message": message,
                                       "status": STATUS.get(code, "UNKNOWN")}}, headers)


class SheetsStandIn(StandIn):
    """`sheets[spreadsheet_id][sheet_name]` is a list of rows (lists of strings)."""

    def __init__(self, tokens: TokenServer) -> None:
        super().__init__()
        self.tokens = tokens
        self.sheets: dict[str, dict[str, list[list[Any]]]] = {}
        self.failures: list[tuple[int, str | None]] = []  # (status, Retry-After)

    def handle(self, request: Received) -> Reply:
        if not self.tokens.bearer_ok(request):
            return error(401, "Request had invalid authentication credentials.")
        with self.lock:
            if self.failures:
                status, wait = self.failures.pop(0)
                return error(status, "Quota exceeded for quota metric 'Write requests'.",
                             {"Retry-After": wait} if wait else None)
        match = VALUES.match(request.path)
        if match is None:
            return error(404, f"{request.path} not found")
        spreadsheet, cell_range, append = match.group(1), unquote(match.group(2)), match.group(3)
        sheet_name = cell_range.split("!", 1)[0].strip("'")
        with self.lock:
            book = self.sheets.get(spreadsheet)
            if book is None or sheet_name not in book:
                return error(404, f"Requested entity was not found: {spreadsheet}")
            sheet = book[sheet_name]
            if request.method == "GET" and not append:
                rows = sheet[:1] if cell_range.endswith("A1:A1") else sheet
                body: dict[str, Any] = {"range": cell_range, "majorDimension": "ROWS"}
                if rows:
                    # Sheets leaves trailing empty cells and empty trailing rows out
                    body["values"] = [_trim(r) for r in rows]
                return json_reply(200, body)
            if request.method == "POST" and append:
                if request.query.get("valueInputOption") != ["RAW"]:
                    return error(400, "valueInputOption must be RAW or USER_ENTERED")
                values = request.json().get("values", [])
                if not values or not all(isinstance(r, list) for r in values):
                    return error(400, "Invalid values")
                first = len(sheet) + 1
                sheet.extend([[str(c) for c in r] for r in values])
                width = max(len(r) for r in values)
                return json_reply(200, {"spreadsheetId": spreadsheet, "tableRange": cell_range,
                                        "updates": {"spreadsheetId": spreadsheet,
                                                    "updatedRange": f"{sheet_name}!A{first}",
                                                    "updatedRows": len(values),
                                                    "updatedColumns": width,
                                                    "updatedCells": len(values) * width}})
        return error(400, "unsupported request")

    def appends(self) -> list[Received]:
        return [r for r in self.received() if r.path.endswith(":append")]


def _trim(row: list[Any]) -> list[Any]:
    out = list(row)
    while out and out[-1] == "":
        out.pop()
    return out
