"""The Glue table, the Athena workgroup and the named queries: as deployed (mocks) and as they run.

The queries are parsed by sqlglot in Athena's dialect and every column is resolved against the table
the program creates (a typo fails here), then transpiled and *run* on DuckDB over a dataset written by
the real PriceStore, with the answers checked row by row.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import duckdb
import pytest
import sqlglot
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify

from components.athena import BYTES_SCANNED_CUTOFF_PER_QUERY, RESULTS_PREFIX, RESULTS_RETENTION_DAYS
from components.catalog import PARTITION_INDEXES, PARTITION_KEYS, TABLE_NAME, table_input
from components.queries import EXAMPLE_DAY, named_queries
from stockpipe.objectstore import LocalObjectStore
from stockpipe.prices import PRICE_SCHEMA, rows_to_table
from stockpipe.pricestore import PriceStore
from tests.infra.aws_model import problems
from tests.infra.conftest import ACCOUNT, ProgramRun, run_program, stack_config, stack_files

DATABASE = "stock_pipeline_dev"
TICKERS = ("AAPL", "MSFT")


@pytest.fixture(scope="module")
def program() -> ProgramRun:
    return run_program(stack_config(stack_files()[0]))


# --- the Glue table as deployed ------------------------------------------------------------------------


def test_the_deployed_table_is_the_api_definition(program):
    table = program.one("aws:glue/catalogTable:CatalogTable", "catalog-table").plain
    bucket = program.one("aws:s3/bucket:Bucket", "data-bucket").outputs["bucket"]
    spec = table_input(bucket)
    descriptor = spec["StorageDescriptor"]
    assert table["name"] == spec["Name"] == TABLE_NAME
    assert table["databaseName"] == DATABASE
    assert table["tableType"] == spec["TableType"]
    assert table["parameters"] == spec["Parameters"]
    assert table["partitionKeys"] == [{"name": k["Name"], "type": k["Type"]} for k in spec["PartitionKeys"]]
    sd = table["storageDescriptor"]
    assert sd["location"] == descriptor["Location"] == f"s3://{bucket}/prices/daily/"
    assert sd["inputFormat"] == descriptor["InputFormat"]
    assert sd["outputFormat"] == descriptor["OutputFormat"]
    assert sd["serDeInfo"]["serializationLibrary"] == descriptor["SerdeInfo"]["SerializationLibrary"]
    assert [c["name"] for c in sd["columns"]] == PRICE_SCHEMA.names
    assert {c["name"]: c["type"] for c in sd["columns"]} | {"ticker": "string", "year": "int"} == {
        **{c["Name"]: c["Type"] for c in descriptor["Columns"]},
        **dict(PARTITION_KEYS),
    }


def test_partitions_are_registered_not_projected_and_filtered_through_indexes(program):
    params = program.one("aws:glue/catalogTable:CatalogTable", "catalog-table").plain["parameters"]
    assert not [key for key in params if key.startswith(("projection.", "storage.location.template"))]
    assert params["partition_filtering.enabled"] == "true"
    indexes = {
        r.plain["partitionIndex"]["indexName"]: r.plain["partitionIndex"]["keys"]
        for r in program.of_type("aws:glue/partitionIndex:PartitionIndex")
    }
    assert indexes == {name: list(keys) for name, keys in PARTITION_INDEXES.items()}
    for index in program.of_type("aws:glue/partitionIndex:PartitionIndex"):
        assert (index.plain["databaseName"], index.plain["tableName"]) == (DATABASE, TABLE_NAME)


def test_the_table_is_a_valid_glue_create_table_request():
    assert problems("glue", "CreateTable", {"DatabaseName": DATABASE, "TableInput": table_input("b")}) == []


# --- the workgroup --------------------------------------------------------------------------------------


def test_results_bucket_is_private_encrypted_tls_only_and_expires_results(program):
    bucket = program.one("aws:s3/bucket:Bucket", "athena-results")
    name, arn = bucket.outputs["bucket"], bucket.outputs["arn"]
    assert bucket.plain["bucketPrefix"] == "stock-pipeline-athena-dev-"
    pab = program.one(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "athena-results-public-access"
    )
    assert all(
        pab.plain[flag] is True for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls")
    )
    assert pab.plain["restrictPublicBuckets"] is True
    sse = program.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "athena-results-encryption",
    ).plain
    assert sse["bucket"] == name
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    policy = json.loads(
        program.one("aws:s3/bucketPolicy:BucketPolicy", "athena-results-tls-only").plain["policy"]
    )
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Resource"] == [arn, f"{arn}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rules = program.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "athena-results-lifecycle"
    ).plain["rules"]
    assert rules == [
        {
            "id": "expire-query-results",
            "status": "Enabled",
            "filter": {"prefix": RESULTS_PREFIX},
            "expiration": {"days": RESULTS_RETENTION_DAYS},
            "abortIncompleteMultipartUpload": {"daysAfterInitiation": 1},
        }
    ]


def test_workgroup_enforces_encrypted_results_in_our_own_bucket(program):
    workgroup = program.one("aws:athena/workgroup:Workgroup", "athena-workgroup").plain
    results = program.one("aws:s3/bucket:Bucket", "athena-results").outputs["bucket"]
    config = workgroup["configuration"]
    assert workgroup["name"] == "stock-pipeline-dev"
    assert workgroup["state"] == "ENABLED"
    assert config["enforceWorkgroupConfiguration"] is True
    assert config["publishCloudwatchMetricsEnabled"] is True
    assert config["resultConfiguration"] == {
        "outputLocation": f"s3://{results}/{RESULTS_PREFIX}",
        "encryptionConfiguration": {"encryptionOption": "SSE_S3"},
        "expectedBucketOwner": ACCOUNT,
    }
    assert config["bytesScannedCutoffPerQuery"] == BYTES_SCANNED_CUTOFF_PER_QUERY
    assert problems("athena", "CreateWorkGroup", {"Name": workgroup["name"]}) == []
    cutoff = {"Name": "w", "Configuration": {"BytesScannedCutoffPerQuery": BYTES_SCANNED_CUTOFF_PER_QUERY}}
    assert problems("athena", "CreateWorkGroup", cutoff) == []  # the API's minimum is 10 MB


def test_named_queries_are_saved_in_the_workgroup_for_the_database(program):
    workgroup = program.one("aws:athena/workgroup:Workgroup", "athena-workgroup").plain["name"]
    saved = {
        r.name.removeprefix("athena-query-"): r.plain
        for r in program.of_type("aws:athena/namedQuery:NamedQuery")
    }
    specs = {q.slug: q for q in named_queries(DATABASE, TICKERS)}
    assert set(saved) == set(specs)
    for slug, query in saved.items():
        assert query["query"] == specs[slug].sql
        assert query["database"] == DATABASE
        assert query["workgroup"] == workgroup
        assert query["name"] == f"stock-pipeline: {specs[slug].title}"
        request = {"Name": query["name"], "Description": query["description"], "Database": DATABASE}
        request |= {"QueryString": query["query"], "WorkGroup": workgroup}
        assert problems("athena", "CreateNamedQuery", request) == []


# --- the SQL: parsed, resolved, run ----------------------------------------------------------------------


def table_schema() -> dict:
    sql_type = {"string": "varchar"}
    spec = table_input("b")
    columns = {c["Name"]: sql_type.get(c["Type"], c["Type"]) for c in spec["StorageDescriptor"]["Columns"]}
    columns |= {name: sql_type.get(typ, typ) for name, typ in PARTITION_KEYS}
    return {DATABASE: {TABLE_NAME: columns}}


DML = [q for q in named_queries(DATABASE, TICKERS) if not q.sql.startswith("MSCK")]


@pytest.mark.parametrize("query", DML, ids=lambda q: q.slug)
def test_every_query_parses_as_athena_sql_and_names_only_real_columns(query):
    expression = sqlglot.parse_one(query.sql, read="athena")
    tables = {f"{t.db}.{t.name}" for t in expression.find_all(sqlglot.exp.Table)}
    assert tables == {f"{DATABASE}.{TABLE_NAME}"}
    qualify(expression, schema=table_schema(), dialect="athena", validate_qualify_columns=True)


def test_a_typo_in_a_column_is_caught():
    expression = sqlglot.parse_one(f"SELECT adj_closse FROM {DATABASE}.{TABLE_NAME}", read="athena")
    with pytest.raises(OptimizeError, match="adj_closse"):
        qualify(expression, schema=table_schema(), dialect="athena", validate_qualify_columns=True)


def test_the_repair_statement_names_the_table():
    (repair,) = [q for q in named_queries(DATABASE, TICKERS) if q.slug == "register-partitions"]
    assert repair.sql == f"MSCK REPAIR TABLE {DATABASE}.{TABLE_NAME}"


def bars(start: date, end: date, base: float) -> list[dict]:
    days = [start + timedelta(n) for n in range((end - start).days + 1)]
    return [
        {"date": f"{d}T00:00:00.000Z", "open": base + i, "high": base + i + 1, "low": base + i - 1,
         "close": base + i + 0.5, "volume": 1000 + i, "adjClose": (base + i + 0.5) / 2}
        for i, d in enumerate(d for d in days if d.weekday() < 5)
    ]  # fmt: skip


# AAPL spans two years; MSFT a week; NEW was added to the universe later: one day of data.
DATA = {
    "AAPL": bars(date(2023, 12, 27), date(2024, 6, 5), 100.0),
    "MSFT": bars(date(2024, 5, 29), date(2024, 6, 4), 400.0),
    "NEW": bars(EXAMPLE_DAY, EXAMPLE_DAY, 10.0),
}


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> duckdb.DuckDBPyConnection:
    root = tmp_path_factory.mktemp("lake")
    store = PriceStore(LocalObjectStore(root))
    for ticker, rows in DATA.items():
        store.upsert(ticker, rows_to_table(rows), fetched_at=datetime(2024, 6, 6, 22))
    con = duckdb.connect()
    con.sql(f"CREATE SCHEMA {DATABASE}")
    con.sql(
        f"CREATE VIEW {DATABASE}.{TABLE_NAME} AS SELECT * FROM read_parquet("
        f"'{root}/prices/daily/*/*/data.parquet', hive_partitioning = true,"
        " hive_types = {'ticker': VARCHAR, 'year': INTEGER})"
    )
    return con


def run(con: duckdb.DuckDBPyConnection, slug: str) -> list[dict]:
    (query,) = [q for q in named_queries(DATABASE, TICKERS) if q.slug == slug]
    result = con.sql(sqlglot.transpile(query.sql, read="athena", write="duckdb")[0])
    return [dict(zip(result.columns, row, strict=True)) for row in result.fetchall()]


def day(row: dict) -> date:
    return date.fromisoformat(row["date"][:10])


def test_history_is_every_stored_day_of_one_ticker_in_order(lake):
    rows = run(lake, "ticker-history")
    assert [r["date"] for r in rows] == [day(r) for r in DATA["AAPL"]]
    assert list(rows[0]) == PRICE_SCHEMA.names
    assert [r["close"] for r in rows] == [r["close"] for r in DATA["AAPL"]]


def test_cross_section_is_every_ticker_on_the_day_including_one_added_later(lake):
    rows = run(lake, "cross-section")
    want = {t: r["close"] for t, data in DATA.items() for r in data if day(r) == EXAMPLE_DAY}
    assert {r["ticker"]: r["close"] for r in rows} == want
    assert sorted(want) == ["AAPL", "MSFT", "NEW"]


def test_latest_close_per_ticker(lake):
    rows = run(lake, "latest-close")
    assert [(r["ticker"], r["last_date"], r["close"]) for r in rows] == [
        (t, day(DATA[t][-1]), DATA[t][-1]["close"]) for t in sorted(DATA)
    ]


def test_coverage_per_ticker(lake):
    rows = {r["ticker"]: r for r in run(lake, "coverage")}
    for ticker, data in DATA.items():
        assert rows[ticker]["row_count"] == len(data)
        assert (rows[ticker]["first_date"], rows[ticker]["last_date"]) == (day(data[0]), day(data[-1]))
        assert rows[ticker]["years"] == len({day(r).year for r in data})


def test_two_tickers_side_by_side_on_common_days(lake):
    rows = run(lake, "two-tickers")
    msft = {day(r): r["adjClose"] for r in DATA["MSFT"]}
    aapl = {day(r): r["adjClose"] for r in DATA["AAPL"]}
    assert [(r["date"], r["aapl_adj_close"], r["msft_adj_close"]) for r in rows] == [
        (d, aapl[d], msft[d]) for d in sorted(msft.keys() & aapl.keys())
    ]


def test_the_queries_use_the_stacks_own_tickers_as_examples():
    history, *_, pair, _ = named_queries(DATABASE, ("BRK-B", "SPY"))
    assert "ticker = 'BRK-B'" in history.sql
    assert "brk_b_adj_close" in pair.sql
    assert "spy_adj_close" in pair.sql
    (only,) = [q for q in named_queries(DATABASE, ("SPY",)) if q.slug == "two-tickers"]
    sqlglot.parse_one(only.sql, read="athena")  # one ticker: still valid SQL (distinct aliases)
