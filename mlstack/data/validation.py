"""Validate parquet tables against their contracts, quarantine bad rows, and report.

The order is the promise: every file is read and judged before anything downstream is written.
Structural and statistical breaches fail the stage; bad rows are set aside in a quarantine file
and the stage goes on while their share stays under `max_bad_row_share`.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow.parquet as pq

from mlstack import locks
from mlstack.data.schemas import CONTRACTS, TableContract
from mlstack.errors import InputError, NotReady, unreadable
from mlstack.io import staged_dir, write_json, write_parquet, write_text

Category = Literal["structural", "row", "statistical"]
STRUCTURAL_CHECKS = {"column_in_dataframe", "column_in_schema", "column_ordered"}
REPORT_FAILURE_CAP = 1000  # per table; the quarantine parquet keeps every bad row


@dataclass(frozen=True)
class Failure:
    file: str
    table: str
    category: Category
    check: str
    column: str | None = None
    row: int | None = None  # 0-based row number in the file
    value: str | None = None

    def describe(self) -> str:
        if self.category == "structural":
            col = f" {self.column!r}" if self.column else ""
            val = f" ({self.value})" if self.value else ""
            return f"{Path(self.file).name}: {self.check}{col}{val}"
        where = ""
        if self.row is not None:  # a CSV's reader counts lines, the header being line 1
            where = f"line {self.row + 2}, " if self.file.endswith(".csv") else f"row {self.row}, "
        col = f"column {self.column!r}: " if self.column else ""
        return f"{Path(self.file).name}: {where}{col}{self.check} (value: {self.value})"


@dataclass
class TableResult:
    file: Path
    table: str
    rows: int
    max_bad_row_share: float
    failures: list[Failure] = field(default_factory=list)
    valid: pd.DataFrame | None = None
    quarantine: pd.DataFrame | None = None

    def count(self, category: Category) -> int:
        return sum(f.category == category for f in self.failures)

    @property
    def bad_rows(self) -> int:
        return 0 if self.quarantine is None else len(self.quarantine)

    @property
    def bad_share(self) -> float:
        return self.bad_rows / self.rows if self.rows else 0.0

    @property
    def ok(self) -> bool:
        return (
            self.valid is not None
            and not self.count("structural")
            and not self.count("statistical")
            and self.bad_share <= self.max_bad_row_share
        )

    @property
    def status(self) -> str:
        if not self.ok:
            return "failed"
        return "quarantined" if self.bad_rows else "passed"

    def reason(self) -> str | None:
        """The first thing a person should fix, in one line."""
        for category in ("structural", "statistical"):
            first = next((f for f in self.failures if f.category == category), None)
            if first:
                return first.describe()
        if self.bad_share > self.max_bad_row_share:
            return (
                f"{self.file.name}: {self.bad_rows} bad rows ({self.bad_share:.2%}) exceed "
                f"max_bad_row_share {self.max_bad_row_share:.2%}; {self.causes()}"
            )
        return None

    def causes(self, limit: int = 3) -> str:
        """The column and rule behind the quarantined rows, most rows first: `col: rule (n)`."""
        counts = Counter((f.column, f.check) for f in self.failures if f.category == "row")
        shown = [f"{column}: {check} ({n})" for (column, check), n in counts.most_common(limit)]
        more = f", and {len(counts) - limit} more rule(s) in the report" if len(counts) > limit else ""
        return ", ".join(shown) + more

    def metrics(self) -> dict[str, float | int | str]:
        return {
            "rows": self.rows,
            "valid_rows": 0 if self.valid is None else len(self.valid),
            "quarantined_rows": self.bad_rows,
            "bad_share": round(self.bad_share, 6),
            "structural_failures": self.count("structural"),
            "statistical_failures": self.count("statistical"),
            "status": self.status,
        }


@dataclass
class ValidationRun:
    results: list[TableResult]
    report_json: Path | None = None
    report_html: Path | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def summary(self) -> str:
        rows = sum(r.rows for r in self.results)
        bad = sum(r.bad_rows for r in self.results)
        report = f"; report: {self.report_html}" if self.report_html else ""
        if self.ok:
            return (
                f"validation passed: {len(self.results)} file(s), {rows:,} rows, "
                f"{bad:,} quarantined ({bad / max(rows, 1):.2%}){report}"
            )
        failed = [r for r in self.results if not r.ok]
        more = f" (+{len(failed) - 1} more failed file(s))" if len(failed) > 1 else ""
        return f"validation failed: {failed[0].reason()}{more}{report}"

    def metrics(self) -> dict[str, object]:
        """A handful of numbers for DVC's metrics (each one a column of `dvc exp show`); each
        table's own counts are in the HTML report."""
        rows = sum(r.rows for r in self.results)
        bad = sum(r.bad_rows for r in self.results)
        return {
            "ok": self.ok,
            "failed_tables": sum(not r.ok for r in self.results),
            "rows": rows,
            "quarantined_rows": bad,
            "bad_share": round(bad / max(rows, 1), 6),
        }


def resolve_table(path: Path, table: str | None) -> TableContract | None:
    name = table or path.stem
    return CONTRACTS.get(name)


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given, folders as the parquet files inside them; missing paths are an error.
    A CSV file is judged too (`validate_file`), though only when named."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.parquet"))
            if not found:
                raise FileNotFoundError(f"{path}: folder holds no .parquet files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def _structural(path: Path, table: str, check: str, value: str | None = None, column: str | None = None):
    return Failure(str(path), table, "structural", check, column=column, value=value)


def _classify(path: Path, table: str, cases: pd.DataFrame, dtypes: pd.Series) -> list[Failure]:
    failures = []
    retyped: set[str] = set()
    for case in cases.itertuples(index=False):
        check = str(case.check)
        row = None if pd.isna(case.index) else int(case.index)
        column = None if pd.isna(case.column) else str(case.column)
        if check in {"column_in_dataframe", "column_in_schema"}:
            column = str(case.failure_case)
            check = "missing column" if check == "column_in_dataframe" else "unexpected column"
            failures.append(Failure(str(path), table, "structural", check, column=column))
        elif check in STRUCTURAL_CHECKS or check.startswith("dtype("):
            if column in retyped:  # pandera lists every offending value of an object column
                continue
            retyped.add(str(column))
            expected = check.removeprefix("dtype(").removesuffix(")").strip("'")
            actual = dtypes.get(column, "unknown")
            example = f", e.g. {case.failure_case!r}" if row is not None else ""
            failures.append(
                Failure(
                    str(path),
                    table,
                    "structural",
                    "wrong dtype for column",
                    column=column,
                    value=f"expected {expected}, got {actual}{example}",
                )
            )
        else:
            category: Category = "row" if row is not None else "statistical"
            failures.append(
                Failure(
                    str(path), table, category, check, column=column, row=row, value=str(case.failure_case)
                )
            )
    return _hint_renames(failures)


def _hint_renames(failures: list[Failure]) -> list[Failure]:
    """Put missing columns first and name the unexpected ones beside them: usually a rename."""
    unexpected = [f.column for f in failures if f.check == "unexpected column"]
    hinted = [
        replace(f, value=f"found instead: {', '.join(map(str, unexpected))}")
        if f.check == "missing column" and unexpected
        else f
        for f in failures
    ]
    return sorted(hinted, key=lambda f: f.check != "missing column")


UNIQUENESS_CHECKS = {"field_uniqueness": "column", "multiple_fields_uniqueness": "table"}


def _keep_first_copies(
    failures: list[Failure], df: pd.DataFrame, schema: pa.DataFrameSchema
) -> list[Failure]:
    """pandera flags every copy of a duplicated key; the first copy is good data, so keep it."""
    first_copies: dict[str, set[int]] = {}
    for check, scope in UNIQUENESS_CHECKS.items():
        if any(f.check == check for f in failures):
            keys = list(schema.unique or []) if scope == "table" else None
            columns = [keys] if keys else [[c] for c, col in schema.columns.items() if col.unique]
            first_copies[check] = set()
            for key in columns:
                dup = df.duplicated(key, keep=False) & ~df.duplicated(key, keep="first")
                first_copies[check] |= set(np.flatnonzero(dup))
    return [f for f in failures if f.row is None or f.row not in first_copies.get(f.check, set())]


def _read_csv(path: Path, table: str, schema: pa.DataFrameSchema) -> tuple[pd.DataFrame, list[Failure]]:
    """A CSV file with its columns converted to the contract's dtypes (CSV has none). A value
    that does not convert becomes null and is a row failure naming its line, column and value,
    so it is quarantined like any bad row instead of failing the whole column's dtype."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    failures = []
    for name, column in schema.columns.items():
        if name not in df:
            continue
        original, dtype = df[name], str(column.dtype)
        if dtype.startswith("datetime64"):
            converted = pd.to_datetime(original, utc=True, errors="coerce", format="ISO8601")
            rule = "not an ISO 8601 timestamp"
        elif dtype.lower().startswith(("int", "float")):
            converted = pd.to_numeric(original, errors="coerce")
            whole = dtype.lower().startswith("int")
            if whole:
                converted = converted.where(converted % 1 == 0)
            rule = "not a whole number" if whole else "not a number"
            # int64 cannot hold a null: with one, the column stays float and fails as structure.
            if whole and (dtype == "Int64" or converted.notna().all()):
                converted = converted.astype(dtype)
        else:
            continue
        for row in np.flatnonzero(converted.isna() & original.notna()):
            failures.append(
                Failure(
                    str(path), table, "row", rule, column=name, row=int(row), value=str(original.iloc[row])
                )
            )
        df[name] = converted
    return df, failures


def validate_file(
    path: Path, max_bad_row_share: float, table: str | None = None, contract: TableContract | None = None
) -> TableResult:
    """Judge one file, parquet or CSV, against `contract` (by default the example's contract
    named by `table` or the file's name). Never writes; the caller decides what to do with the
    verdict."""
    contract = contract or resolve_table(path, table)
    name = contract.name if contract else (table or path.stem)
    result = TableResult(path, name, rows=0, max_bad_row_share=max_bad_row_share)
    if contract is None:
        known = ", ".join(CONTRACTS)
        result.failures.append(
            _structural(path, name, f"unknown table; name the file one of: {known}, or pass --table")
        )
        return result
    csv = path.suffix.lower() == ".csv"
    try:
        if csv:
            df, unconverted = _read_csv(path, name, contract.model.to_schema())
        else:
            df, unconverted = pq.read_table(path).to_pandas(), []
    except Exception as exc:  # pyarrow and pandas raise several types for unreadable files
        kind = "CSV" if csv else "parquet"
        result.failures.append(_structural(path, name, f"readable {kind}", value=str(exc).splitlines()[0]))
        return result
    result.failures.extend(unconverted)
    result.rows = len(df)
    if df.empty:
        result.failures.append(_structural(path, name, "file has no rows"))
        return result

    df = df.reset_index(drop=True)
    try:
        with warnings.catch_warnings():
            # pandera's own failure-case assembly trips a pandas FutureWarning; it is not ours to fix.
            warnings.simplefilter("ignore", FutureWarning)
            contract.model.validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        failures = _classify(path, name, exc.failure_cases, df.dtypes)
        result.failures.extend(_keep_first_copies(failures, df, contract.model.to_schema()))
    if result.count("structural"):
        return result

    row_failures = [f for f in result.failures if f.category == "row"]
    bad_index = sorted({f.row for f in row_failures if f.row is not None})
    if bad_index:
        reasons = pd.Series(
            [f"{f.column}: {f.check}" for f in row_failures], index=[f.row for f in row_failures]
        )
        quarantine = df.loc[bad_index].copy()
        quarantine.insert(0, "_row", bad_index)
        quarantine["_failed_checks"] = reasons.groupby(level=0).agg("; ".join).loc[bad_index].to_numpy()
        result.quarantine = quarantine.reset_index(drop=True)
    valid = df.drop(index=bad_index).reset_index(drop=True)
    result.valid = valid

    # A statistic over no rows is undefined (a null fraction of nan): when every row was set
    # aside, the rules that did so are the failure to report.
    for stat in contract.stats if len(valid) else ():
        observed = stat.measure(valid[stat.column])
        if not stat.passes(observed):
            result.failures.append(
                Failure(str(path), name, "statistical", stat.rule, column=stat.column, value=str(observed))
            )
    return result


def validate_paths(
    paths: Sequence[Path],
    max_bad_row_share: float,
    table: str | None = None,
    contract: TableContract | None = None,
) -> ValidationRun:
    return ValidationRun([validate_file(p, max_bad_row_share, table, contract) for p in expand_paths(paths)])


def write_report(run: ValidationRun, report_dir: Path) -> ValidationRun:
    """Report JSON and HTML, plus one quarantine parquet per table that set rows aside; under the
    folder's lock, so the files of one report are never mixed with another run's."""
    with locks.file_lock(report_dir):
        return _write_report(run, report_dir)


def _write_report(run: ValidationRun, report_dir: Path) -> ValidationRun:
    tables = []
    for result in run.results:
        quarantine_path = report_dir / f"{result.table}.quarantine.parquet"
        if result.quarantine is not None:
            write_parquet(result.quarantine, quarantine_path)
        else:
            quarantine_path.unlink(missing_ok=True)  # a stale file would tell of old bad rows
        tables.append(
            {
                "file": str(result.file),
                "table": result.table,
                **result.metrics(),
                "quarantine": str(quarantine_path) if result.quarantine is not None else None,
                "failure_counts": {c: result.count(c) for c in ("structural", "row", "statistical")},
                "failures": [asdict(f) for f in result.failures[:REPORT_FAILURE_CAP]],
                "failures_left_out": max(0, len(result.failures) - REPORT_FAILURE_CAP),
            }
        )
    run.report_json = report_dir / "validation.json"
    run.report_html = report_dir / "validation.html"
    write_json(
        {
            "ok": run.ok,
            "summary": run.summary(),
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "tables": tables,
        },
        run.report_json,
    )
    write_text(render_html(run, tables), run.report_html)
    return run


def table_key(table: str) -> list[str]:
    """The columns that identify a row of `table`, as its contract declares them."""
    schema = CONTRACTS[table].model.to_schema()
    return list(schema.unique or []) or [c for c, col in schema.columns.items() if col.unique]


def merge_rows(existing: pd.DataFrame, new: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """`existing` with every row that `new` restates replaced by `new`'s copy, sorted by key."""
    restated = pd.MultiIndex.from_frame(existing[key]).isin(pd.MultiIndex.from_frame(new[key]))
    merged = pd.concat([existing[~restated], new], ignore_index=True)
    return merged.sort_values(key, kind="stable").reset_index(drop=True)


def write_validated(run: ValidationRun, out_dir: Path, append: bool = False) -> dict[str, Path]:
    """Write the valid rows of every table, or nothing at all if any table failed.

    With `append`, a newly arrived window joins what is there: rows with the same key are
    replaced, so landing the same window twice changes nothing.
    """
    if not run.ok:
        raise InputError(f"refusing to write validated data: {run.summary()}")
    # Read, merge and write under the folder's lock: two appends at once must not both start
    # from the same old tables, or the second write drops the first one's rows.
    with locks.file_lock(out_dir), staged_dir(out_dir) as staging:
        for result in run.results:
            assert result.valid is not None
            rows, target = result.valid, out_dir / f"{result.table}.parquet"
            if append and target.is_file():
                rows = merge_rows(pd.read_parquet(target), rows, table_key(result.table))
            write_parquet(rows, staging / f"{result.table}.parquet")
    return {r.table: out_dir / f"{r.table}.parquet" for r in run.results}


def read_validated(folder: Path) -> dict[str, pd.DataFrame]:
    """Every table of a validated folder, each checked against its contract's structure (columns,
    dtypes, no extras) before anyone uses it; a file that breaks it raises one InputError naming
    the file, the column and the rule. Rows were judged when the folder was written."""
    tables = {}
    for name, contract in CONTRACTS.items():
        path = folder / f"{name}.parquet"
        if not path.is_file():
            raise NotReady(
                f"{folder} holds no validated {path.name}: run `mlstack data flow` (or `mlstack demo`)"
                " first, or pass the folder that `mlstack data validate --out` wrote"
            )
        try:
            df = pq.read_table(path).to_pandas()
        except Exception as exc:  # pyarrow raises several types for unreadable files
            raise unreadable(path, exc) from None
        try:
            contract.model.validate(df.head(0), lazy=True)
        except pa.errors.SchemaErrors as exc:
            failures = _classify(path, name, exc.failure_cases, df.dtypes)
            if broken := [f for f in failures if f.category == "structural"]:
                rules = "; ".join(f"column {f.column}: {f.check}" for f in broken[:3])
                raise InputError(
                    f"{path} does not match the {name} contract ({rules}). Validate it with"
                    " `mlstack data validate` before using it."
                ) from None
        tables[name] = df
    return tables


HTML_ROW_CAP = 200


def render_html(run: ValidationRun, tables: list[dict]) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("mlstack.data", "templates"), autoescape=True, undefined=StrictUndefined
    )
    return env.get_template("validation.html.j2").render(
        verdict="passed" if run.ok else "failed", summary=run.summary(), tables=tables, row_cap=HTML_ROW_CAP
    )
