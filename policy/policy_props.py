"""Reading the engine's resource properties in a policy check: proxies, unknown values, policy documents.

Through the engine, ``args.props`` is a read-only *proxy* (a ``collections.abc.Mapping`` whose lists are
``Sequence`` proxies, never ``dict``/``list``) that raises ``UnknownValueError`` when a value is unknown
during a preview; left unhandled, that error aborts the whole policy for the resource (pulumi_policy
reports "can't run policy ... during preview"). Every read goes through ``get`` / ``elements``, which turn
an unknown into ``UNKNOWN``, so a check skips exactly the values it cannot know and still judges the rest.
They work the same on plain dicts and lists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

# The engine's marker for a value that is only known after the update (a string unknown); the others
# are the typed sentinels pulumi_policy also recognises.
UNKNOWN = UNKNOWN_STRING_VALUE
_UNKNOWNS = frozenset(
    {
        UNKNOWN,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_OBJECT_VALUE,
    }
)


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in _UNKNOWNS


def get(mapping: Any, key: str, default: Any = None) -> Any:
    """``mapping[key]`` from a dict or an engine proxy: ``UNKNOWN`` when not known yet, else ``default``."""
    if not isinstance(mapping, Mapping):
        return default
    try:
        value = mapping[key]
    except KeyError:
        return default
    except UnknownValueError:
        return UNKNOWN
    return UNKNOWN if is_unknown(value) else value


def elements(value: Any) -> list[Any]:
    """A Sequence's items (a lone value as one item, nothing for None); unknown items as ``UNKNOWN``."""
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return [value]
    items = []
    for index in range(len(value)):
        try:
            item = value[index]
        except UnknownValueError:
            item = UNKNOWN
        items.append(UNKNOWN if is_unknown(item) else item)
    return items


def document(value: Any) -> Mapping[str, Any] | None:
    """A policy document given as JSON text or as an object; None when unknown or unparsable."""
    if value is None or is_unknown(value):
        return None
    if isinstance(value, Mapping):
        return value
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return None
    return parsed if isinstance(parsed, Mapping) else None


def statements(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in elements(get(doc, "Statement")) if isinstance(s, Mapping)]
