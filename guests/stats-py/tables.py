"""The route's declared reads, as the host passes them: one table per read,
named after it, with the query's column names."""

from wit_world.imports.types import (
    Table,
    Value_Blob,
    Value_Integer,
    Value_Null,
    Value_Real,
    Value_Text,
)


def plain(value):
    """A SQL value as a Python value (None, int, float, str or bytes)."""
    if isinstance(value, Value_Null):
        return None
    if isinstance(value, (Value_Integer, Value_Real, Value_Text, Value_Blob)):
        return value.value
    raise TypeError(f"unknown value {value!r}")


def rows(data: list[Table], name: str) -> list[dict]:
    """The rows of read `name` as dicts (column → value); [] if it is absent."""
    for table in data:
        if table.name == name:
            return [
                {col: plain(v) for col, v in zip(table.columns, row)}
                for row in table.rows
            ]
    return []


def integer(row: dict, column: str) -> int:
    value = row.get(column)
    return value if isinstance(value, int) else 0
