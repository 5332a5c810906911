"""Glue partitions of the dataset: a ticker-year is registered as its object is first created.

Athena finds the data through the Glue table ``prices_daily`` (components/catalog.py), partitioned by
``ticker`` and ``year``. The partitions are registered here, not projected: the first write of a
ticker-year object (a create, ``expected_version=None``) registers ``ticker=<T>/year=<Y>`` first, so every
stored object has its partition, and a ticker added to the universe is queryable as soon as its first
rows land. Why not partition projection: the README's Athena section (an ``enum`` of 25,000
tickers times the projected years overshoots Athena's documented per-query partition limit).

Registration happens *before* the object is created: if Glue refuses, the write does not happen and the
ticker fails like any other store error (it is retried by the next run), so there is never an object
without its partition. A partition without an object yet (the create lost a race) is harmless: it
reads as empty. Updates of an existing object cost no Glue call.

Environment (set by the Pulumi program; both or neither): ``GLUE_DATABASE``, ``GLUE_TABLE``. Locally
(``DATA_DIR``) there is no catalog and nothing is registered.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stockpipe.errors import StoreError
from stockpipe.layout import PRICES_PREFIX, price_key
from stockpipe.objectstore import DelegatingStore, ObjectStore

DATABASE_ENV = "GLUE_DATABASE"
TABLE_ENV = "GLUE_TABLE"
_PRICE_KEY = re.compile(re.escape(PRICES_PREFIX) + r"/ticker=([^/]+)/year=(\d{4})/[^/]+")


@dataclass(frozen=True)
class CatalogTarget:
    """The Glue table whose partitions the store keeps."""

    database: str
    table: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CatalogTarget | None:
        database, table = env.get(DATABASE_ENV, "").strip(), env.get(TABLE_ENV, "").strip()
        if bool(database) != bool(table):
            missing = TABLE_ENV if database else DATABASE_ENV
            raise ValueError(f"{missing} is missing: set both {DATABASE_ENV} and {TABLE_ENV}, or neither")
        return cls(database, table) if database else None

    def to_env(self) -> dict[str, str]:
        return {DATABASE_ENV: self.database, TABLE_ENV: self.table}

    def describe(self) -> str:
        return f"{self.database}.{self.table}"


def partition_of(key: str) -> tuple[str, int] | None:
    """``(ticker, year)`` of a price object's key (stockpipe.layout), None for any other key."""
    match = _PRICE_KEY.fullmatch(key)
    if not match:
        return None
    ticker, year = match.group(1), int(match.group(2))
    return (ticker, year) if key == price_key(ticker, year) else None


def partition_input(table: Mapping[str, Any], ticker: str, year: int) -> dict[str, Any]:
    """A Glue ``PartitionInput`` for one ticker-year: the table's storage descriptor, its own location.

    ``table`` is GetTable's ``Table``; its location is the dataset root (``s3://<bucket>/prices/daily/``),
    so the partition's is the ticker-year folder the object lives in.
    """
    descriptor = copy.deepcopy(dict(table["StorageDescriptor"]))
    root = descriptor["Location"].rstrip("/")
    descriptor["Location"] = f"{root}/ticker={ticker}/year={year}/"
    return {"Values": [ticker, str(year)], "StorageDescriptor": descriptor}


class PartitionRegistrar:
    """Creates partitions in one Glue table; the table definition is read once per process."""

    def __init__(self, glue_client: Any, target: CatalogTarget) -> None:
        self.glue = glue_client
        self.target = target
        self._table: dict[str, Any] | None = None
        self._known: set[tuple[str, int]] = set()

    def register(self, ticker: str, year: int) -> None:
        """Make sure partition ``(ticker, year)`` exists; StoreError naming it when Glue refuses."""
        if (ticker, year) in self._known:
            return
        try:
            self.glue.create_partition(
                DatabaseName=self.target.database,
                TableName=self.target.table,
                PartitionInput=partition_input(self._table_definition(), ticker, year),
            )
        except self.glue.exceptions.AlreadyExistsException:
            pass  # registered before (an earlier run, or a concurrent writer): the goal is met
        except self.glue.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise StoreError(
                f"registering partition ticker={ticker}/year={year} in Glue table {self.target.describe()} "
                f"failed: {code}"
            ) from None
        self._known.add((ticker, year))

    def _table_definition(self) -> dict[str, Any]:
        if self._table is None:
            response = self.glue.get_table(DatabaseName=self.target.database, Name=self.target.table)
            self._table = response["Table"]
        return self._table


class RegisteringStore(DelegatingStore):
    """An ObjectStore that registers a price object's partition before creating the object."""

    def __init__(self, inner: ObjectStore, registrar: PartitionRegistrar) -> None:
        super().__init__(inner)
        self.registrar = registrar

    def put(
        self,
        key: str,
        body: bytes,
        *,
        expected_version: str | None,
        content_type: str = "application/octet-stream",
    ) -> str:
        partition = partition_of(key) if expected_version is None else None
        if partition is not None:
            self.registrar.register(*partition)
        return super().put(key, body, expected_version=expected_version, content_type=content_type)


def with_partitions(store: ObjectStore, env: Mapping[str, str], glue_client: Any = None) -> ObjectStore:
    """``store`` wrapped to register partitions when the environment names a Glue table, else itself."""
    target = CatalogTarget.from_env(env)
    if target is None:
        return store
    if glue_client is None:
        import boto3

        glue_client = boto3.client("glue")
    return RegisteringStore(store, PartitionRegistrar(glue_client, target))
