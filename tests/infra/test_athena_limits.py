"""The documented Athena and Glue rules behind the table design, encoded (we cannot run Athena here).

Each rule cites its page. Together they are why the table's partitions are *registered* by the store
(stockpipe.partitions) rather than projected with an ``enum`` of tickers:

- Athena user guide, "Partition your data" (https://docs.aws.amazon.com/athena/latest/ug/partitions.html):
  "Athena cannot read more than 1 million partitions in a single scan."
- "Use partition projection" (https://docs.aws.amazon.com/athena/latest/ug/partition-projection.html):
  "Enabling partition projection on a table causes Athena to ignore any partition metadata registered
  to the table", and "If more than half of your projected partitions are empty, it is recommended that
  you use traditional partitions."
- "Supported types for partition projection"
  (https://docs.aws.amazon.com/athena/latest/ug/partition-projection-supported-types.html): enum
  projections are best limited "to a few dozen or less"; the table's metadata must stay under about
  1 MB gzip-compressed.
- Glue API, TableInput (https://docs.aws.amazon.com/glue/latest/webapi/API_TableInput.html): a table
  parameter value is at most 512,000 characters (also in botocore's model, checked there).
- Glue, "Creating partition indexes" (https://docs.aws.amazon.com/glue/latest/dg/partition-indexes.html):
  at most 3 indexes per table, over partition keys of string or numeric (or date) type; and Athena
  uses them only with ``partition_filtering.enabled`` = ``true``
  (https://docs.aws.amazon.com/athena/latest/ug/glue-best-practices-partition-index.html).
"""

from __future__ import annotations

import gzip
import itertools
import json
import string
from datetime import date

from components.catalog import PARTITION_INDEXES, PARTITION_KEYS, table_input
from stockpipe.tickers import normalize_ticker
from tests.infra.aws_model import input_shape, problems

MAX_PARTITIONS_PER_SCAN = 1_000_000  # partitions.html
MAX_TABLE_PARAMETER_CHARS = 512_000  # API_TableInput.html
MAX_TABLE_METADATA_GZIP_BYTES = 1_000_000  # partition-projection-supported-types.html ("about 1 MB")
MAX_PARTITION_INDEXES = 3  # partition-indexes.html
INDEXABLE_TYPES = {"string", "char", "varchar", "int", "bigint", "long", "tinyint", "smallint", "date"}
TARGET_TICKERS = 25_000  # the scale the design must hold: roughly every US-listed symbol
LAST_PROJECTED_YEAR = 2099  # what an integer year projection must reach to never go stale


def universe(size: int) -> list[str]:
    """``size`` valid, distinct symbols shaped like real ones: 1-4 letters, some with a class suffix."""
    letters = string.ascii_uppercase
    symbols = (
        "".join(chars) for length in (1, 2, 3, 4) for chars in itertools.product(letters, repeat=length)
    )
    return [normalize_ticker(s if i % 10 else f"{s}-B") for i, s in zip(range(size), symbols, strict=False)]


def enum_design(tickers: list[str], first_year: int) -> dict[str, str]:
    """The table parameters of the rejected alternative: enum tickers, integer years up to 2099."""
    return {
        "projection.enabled": "true",
        "projection.ticker.type": "enum",
        "projection.ticker.values": ",".join(tickers),
        "projection.year.type": "integer",
        "projection.year.range": f"{first_year},{LAST_PROJECTED_YEAR}",
    }


def test_enum_projection_at_the_target_scale_projects_more_partitions_than_one_scan_may_read():
    """A cross-section (WHERE date = ...) constrains no partition key: Athena projects every ticker-year."""
    params = enum_design(universe(TARGET_TICKERS), first_year=2000)
    years = range(*(int(y) for y in params["projection.year.range"].split(",")))
    projected = len(params["projection.ticker.values"].split(",")) * (len(years) + 1)
    assert projected == 2_500_000
    assert projected > MAX_PARTITIONS_PER_SCAN
    # Even stopping the years at today (stale every 1 January until the next `pulumi up`) leaves no room
    # for a longer history: 25,000 tickers allow at most 40 projected years.
    assert MAX_PARTITIONS_PER_SCAN // TARGET_TICKERS == 40


def test_enum_projection_at_the_target_scale_is_mostly_empty_partitions():
    """Years before a listing and after today are projected too; AWS then advises traditional partitions."""
    first_year, this_year = 2000, date.today().year
    projected_years = LAST_PROJECTED_YEAR - first_year + 1
    at_most_filled = this_year - first_year + 1
    assert at_most_filled / projected_years < 0.5


def test_enum_values_at_the_target_scale_would_fit_the_parameter_limits_so_size_is_not_the_reason():
    params = enum_design(universe(TARGET_TICKERS), first_year=2000)
    assert len(params["projection.ticker.values"]) < MAX_TABLE_PARAMETER_CHARS
    assert len(gzip.compress(json.dumps(params).encode())) < MAX_TABLE_METADATA_GZIP_BYTES
    # ... and the botocore model agrees; what breaks is the scan limit above, not the table's size.
    table = {**table_input("b"), "Parameters": params}
    assert problems("glue", "CreateTable", {"DatabaseName": "d", "TableInput": table}) == []
    # The longest symbols the pipeline accepts (20 characters) would not fit at this scale.
    assert (
        input_shape("glue", "CreateTable").members["TableInput"].members["Parameters"].value.metadata["max"]
        < TARGET_TICKERS * 21 - 1
    )


def test_the_registered_design_has_no_projection_to_hide_the_registered_partitions():
    params = table_input("b")["Parameters"]
    assert "projection.enabled" not in params
    assert not [key for key in params if key.startswith("projection.")]


def test_the_registered_design_does_not_grow_with_the_universe():
    """Nothing in the table names a ticker: adding one is a write to S3 and Glue, not a table change."""
    assert "AAPL" not in json.dumps(table_input("b"))
    assert all(len(value) < 100 for value in table_input("b")["Parameters"].values())


def test_partition_indexes_follow_glues_rules_and_athena_is_told_to_use_them():
    keys = dict(PARTITION_KEYS)
    assert 1 <= len(PARTITION_INDEXES) <= MAX_PARTITION_INDEXES
    for index_keys in PARTITION_INDEXES.values():
        assert set(index_keys) <= set(keys)
        assert {keys[k] for k in index_keys} <= INDEXABLE_TYPES
    assert table_input("b")["Parameters"]["partition_filtering.enabled"] == "true"
    # The named queries filter by ticker (history, joins) or by year alone (cross-sections): one index
    # leads with each.
    assert {keys[0] for keys in PARTITION_INDEXES.values()} == {"ticker", "year"}


def test_a_partition_the_store_registers_is_a_valid_glue_request():
    from stockpipe.partitions import partition_input

    table = table_input("data-bucket")
    request = {"DatabaseName": "d", "TableName": "t", "PartitionInput": partition_input(table, "BRK-B", 2024)}
    assert problems("glue", "CreatePartition", request) == []
    assert request["PartitionInput"]["StorageDescriptor"]["Location"] == (
        "s3://data-bucket/prices/daily/ticker=BRK-B/year=2024/"
    )
