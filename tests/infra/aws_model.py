"""Request parameters checked against the AWS API model that ships in botocore (the service's own spec).

botocore's validator checks what it checks before sending (required members, types, minimums); the
service also enforces the model's maximum lengths, patterns and enums. ``problems`` checks both, so a
table parameter over Glue's 512,000 characters or a named query name over Athena's 128 fails here, not
on the first `pulumi up`.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import botocore.session
from botocore.model import Shape
from botocore.validate import ParamValidator

# Java's regex spells astral characters as a surrogate-pair range, which Python's `re` rejects; the
# values checked here are all in the Basic Multilingual Plane.
_SURROGATE_RANGE = re.compile(r"\\uD800\\uDC00-\\uDBFF\\uDFFF", re.IGNORECASE)


@cache
def _service(name: str) -> Any:
    return botocore.session.get_session().get_service_model(name)


def input_shape(service: str, operation: str) -> Shape:
    return _service(service).operation_model(operation).input_shape


def problems(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """Everything in ``params`` the service's ``operation`` would refuse, as readable strings."""
    shape = input_shape(service, operation)
    report = ParamValidator().validate(params, shape)
    found = [report.generate_report()] if report.has_errors() else []
    _check(shape, params, operation, found)
    return found


def _check(shape: Shape, value: Any, path: str, found: list[str]) -> None:
    meta = shape.metadata
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, member in value.items():
            if key in shape.members:
                _check(shape.members[key], member, f"{path}.{key}", found)
    elif shape.type_name == "list" and isinstance(value, list):
        _bounds(len(value), meta, f"{path} (items)", found)
        for index, item in enumerate(value):
            _check(shape.member, item, f"{path}[{index}]", found)
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            _check(shape.key, key, f"{path} key {key!r}", found)
            _check(shape.value, item, f"{path}[{key!r}]", found)
    elif shape.type_name == "string" and isinstance(value, str):
        _bounds(len(value), meta, f"{path} (length)", found)
        if shape.enum and value not in shape.enum:
            found.append(f"{path}: {value!r} is not one of {shape.enum}")
        pattern = meta.get("pattern")
        if pattern and not re.fullmatch(_SURROGATE_RANGE.sub("", pattern), value, re.DOTALL):
            found.append(f"{path}: {value[:60]!r} does not match {pattern}")
    elif shape.type_name in ("integer", "long") and isinstance(value, int):
        _bounds(value, meta, f"{path} (value)", found)


def _bounds(size: int, meta: dict[str, Any], what: str, found: list[str]) -> None:
    if "max" in meta and size > meta["max"]:
        found.append(f"{what}: {size} > {meta['max']}")
    if "min" in meta and size < meta["min"]:
        found.append(f"{what}: {size} < {meta['min']}")
