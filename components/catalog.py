"""Glue database + table over prices/daily/ with partition projection: queryable in Athena right after `up`.

No crawler: ``ticker`` is an injected projection (queries filter on it, e.g. WHERE ticker = 'AAPL'),
``year`` an integer range; columns come from the stored Parquet schema (stockpipe.prices.PRICE_SCHEMA).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pyarrow as pa

from components.naming import glue_name
from components.policies import PRICES_PREFIX
from stockpipe.prices import PRICE_SCHEMA

TABLE_NAME = "prices_daily"
LAST_PROJECTED_YEAR = 2099
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
    return [{"name": f.name, "type": hive_type(f.type)} for f in PRICE_SCHEMA]


def projection_parameters(bucket: str, first_year: int) -> dict[str, str]:
    location = f"s3://{bucket}/{PRICES_PREFIX}"
    return {
        "EXTERNAL": "TRUE",
        "classification": "parquet",
        "projection.enabled": "true",
        "projection.ticker.type": "injected",
        "projection.year.type": "integer",
        "projection.year.range": f"{first_year},{LAST_PROJECTED_YEAR}",
        "storage.location.template": location + "ticker=${ticker}/year=${year}",
    }


class PriceCatalog(pulumi.ComponentResource):
    database_name: pulumi.Output[str]
    table_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        bucket_name: pulumi.Output[str],
        first_year: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("stock-pipeline:analytics:PriceCatalog", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        database = aws.glue.CatalogDatabase(
            f"{name}-database",
            name=glue_name("stock-pipeline", pulumi.get_stack()),
            description="stock-pipeline price data (Athena)",
            opts=child,
        )
        table = aws.glue.CatalogTable(
            f"{name}-table",
            name=TABLE_NAME,
            database_name=database.name,
            table_type="EXTERNAL_TABLE",
            description="Daily Tiingo prices, one Parquet file per ticker and year",
            parameters=bucket_name.apply(lambda bucket: projection_parameters(bucket, first_year)),
            partition_keys=[{"name": "ticker", "type": "string"}, {"name": "year", "type": "int"}],
            storage_descriptor={
                "location": bucket_name.apply(lambda bucket: f"s3://{bucket}/{PRICES_PREFIX}"),
                "input_format": f"{_PARQUET}.MapredParquetInputFormat",
                "output_format": f"{_PARQUET}.MapredParquetOutputFormat",
                "ser_de_info": {
                    "serialization_library": f"{_PARQUET}.serde.ParquetHiveSerDe",
                    "parameters": {"serialization.format": "1"},
                },
                "columns": price_columns(),
            },
            opts=child,
        )
        self.database_name = database.name
        self.table_name = table.name
        self.register_outputs({"database_name": self.database_name, "table_name": self.table_name})
