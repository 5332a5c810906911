"""Glue database + table over prices/daily/: Athena queries every ticker, across tickers, right after `up`.

The table is partitioned by ``ticker`` (string) and ``year`` (int), like the storage layout
(stockpipe.layout), and its partitions are *registered*: the scraper creates ``ticker=<T>/year=<Y>`` in
Glue as it first writes that object (stockpipe.partitions). No projection, so no query needs a static
``ticker = '...'`` and no table property grows with the universe; the design and the documented limits
behind it are in the README's Athena section and tests/infra/test_athena_limits.py.

Two partition indexes (``ticker, year`` and ``year``) with ``partition_filtering.enabled`` let Glue
return only the partitions a query's predicates select instead of all of them.

No ``from __future__ import annotations``: Pulumi's component analyzer reads the output annotations.
"""

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pyarrow as pa

from components import policies
from components.naming import glue_name
from stockpipe.layout import PRICES_PREFIX
from stockpipe.prices import PRICE_SCHEMA

COMPONENT_TYPE = "stock-pipeline:analytics:PriceCatalog"
TABLE_NAME = "prices_daily"
PARTITION_KEYS = (("ticker", "string"), ("year", "int"))
# Index name -> keys. Glue allows 3 indexes per table over partition keys of string/number types.
PARTITION_INDEXES = {"ticker_year": ("ticker", "year"), "by_year": ("year",)}
_PARQUET = "org.apache.hadoop.hive.ql.io.parquet"


def hive_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_date32(arrow_type):
        return "date"
    if pa.types.is_int64(arrow_type):
        return "bigint"
    if pa.types.is_float64(arrow_type):
        return "double"
    raise ValueError(f"no Hive type for {arrow_type}")


def price_columns() -> list[dict[str, str]]:
    return [{"Name": f.name, "Type": hive_type(f.type)} for f in PRICE_SCHEMA]


def dataset_location(bucket: str) -> str:
    return f"s3://{bucket}/{PRICES_PREFIX}/"


def table_input(bucket: str) -> dict[str, Any]:
    """The table in the Glue API's own shape (``TableInput``): what Pulumi creates and moto is given."""
    return {
        "Name": TABLE_NAME,
        "Description": "Daily Tiingo prices, one Parquet file per ticker and year",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "EXTERNAL": "TRUE",
            "classification": "parquet",
            "partition_filtering.enabled": "true",
        },
        "PartitionKeys": [{"Name": name, "Type": typ} for name, typ in PARTITION_KEYS],
        "StorageDescriptor": {
            "Location": dataset_location(bucket),
            "InputFormat": f"{_PARQUET}.MapredParquetInputFormat",
            "OutputFormat": f"{_PARQUET}.MapredParquetOutputFormat",
            "SerdeInfo": {
                "SerializationLibrary": f"{_PARQUET}.serde.ParquetHiveSerDe",
                "Parameters": {"serialization.format": "1"},
            },
            "Columns": price_columns(),
        },
    }


def _columns(columns: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"name": c["Name"], "type": c["Type"]} for c in columns]


def catalog_arn(database_arn: str) -> str:
    """``arn:aws:glue:<region>:<account>:catalog`` from a database ARN (the root of Glue's ARN tree)."""
    return database_arn.rsplit(":database/", 1)[0] + ":catalog"


def register_partitions_statement(catalog: str, database: str, table: str) -> policies.Statement:
    """Read the table definition and create partitions in it; Glue checks all three ARNs."""
    return policies.allow(
        "RegisterPricePartitions", ["glue:GetTable", "glue:CreatePartition"], [catalog, database, table]
    )


@dataclass(frozen=True)
class GlueTableRef:
    """Where a writer registers partitions: names for the API, ARNs for IAM."""

    database_name: pulumi.Input[str]
    table_name: pulumi.Input[str]
    catalog_arn: pulumi.Input[str]
    database_arn: pulumi.Input[str]
    table_arn: pulumi.Input[str]


@dataclass(frozen=True)
class PriceCatalogArgs:
    bucket_name: pulumi.Input[str]
    """The data bucket; the table's location is ``s3://<bucket>/prices/daily/``."""


class PriceCatalog(pulumi.ComponentResource):
    """The Glue database and the ``prices_daily`` table with its partition indexes."""

    database_name: pulumi.Output[str]
    """Glue database, ``stock_pipeline_<stack>``."""

    table_name: pulumi.Output[str]
    """Glue table, ``prices_daily``."""

    catalog_arn: pulumi.Output[str]
    """ARN of the account's Data Catalog (IAM for Glue names it with the database and table)."""

    database_arn: pulumi.Output[str]
    """ARN of the Glue database."""

    table_arn: pulumi.Output[str]
    """ARN of the Glue table."""

    def __init__(self, name: str, args: PriceCatalogArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self._name = name
        database = self._database()
        table = self._table(database, pulumi.Output.from_input(args.bucket_name))
        self._partition_indexes(table)
        self.database_name = database.name
        self.table_name = table.name
        self.database_arn = database.arn
        self.catalog_arn = database.arn.apply(catalog_arn)
        self.table_arn = table.arn
        self.register_outputs(
            {
                "database_name": self.database_name,
                "table_name": self.table_name,
                "catalog_arn": self.catalog_arn,
                "database_arn": self.database_arn,
                "table_arn": self.table_arn,
            }
        )

    def table_ref(self) -> GlueTableRef:
        return GlueTableRef(
            self.database_name, self.table_name, self.catalog_arn, self.database_arn, self.table_arn
        )

    def _database(self) -> aws.glue.CatalogDatabase:
        return aws.glue.CatalogDatabase(
            f"{self._name}-database",
            name=glue_name("stock-pipeline", pulumi.get_stack()),
            description="stock-pipeline price data (Athena)",
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _table(self, database: aws.glue.CatalogDatabase, bucket: pulumi.Output[str]) -> aws.glue.CatalogTable:
        static = table_input("<bucket>")  # everything but the location is the same for every bucket
        descriptor, serde = static["StorageDescriptor"], static["StorageDescriptor"]["SerdeInfo"]
        return aws.glue.CatalogTable(
            f"{self._name}-table",
            name=static["Name"],
            database_name=database.name,
            table_type=static["TableType"],
            description=static["Description"],
            parameters=static["Parameters"],
            partition_keys=_columns(static["PartitionKeys"]),
            storage_descriptor={
                "location": bucket.apply(dataset_location),
                "input_format": descriptor["InputFormat"],
                "output_format": descriptor["OutputFormat"],
                "ser_de_info": {
                    "serialization_library": serde["SerializationLibrary"],
                    "parameters": serde["Parameters"],
                },
                "columns": _columns(descriptor["Columns"]),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _partition_indexes(self, table: aws.glue.CatalogTable) -> None:
        for index, keys in PARTITION_INDEXES.items():
            aws.glue.PartitionIndex(
                f"{self._name}-index-{index.replace('_', '-')}",
                database_name=table.database_name,
                table_name=table.name,
                partition_index={"index_name": index, "keys": list(keys)},
                opts=pulumi.ResourceOptions(parent=self),
            )
