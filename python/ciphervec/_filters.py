"""The one mapping from the retrieval frameworks' filter languages to ciphervec's filters.

ciphervec's own language is MongoDB-style JSON (what :meth:`Index.query` and the LangChain
store take as is). Haystack writes ``{"field", "operator", "value"}`` comparisons joined by
``{"operator": "AND"|"OR"|"NOT", "conditions"}``; LlamaIndex writes ``MetadataFilters`` of
``MetadataFilter(key, value, operator)`` joined by a ``FilterCondition``. Both translate
here into ciphervec filters over the stores' metadata layout (the user's metadata under one
prefix), so that the semantics are written and tested once. Neither framework is imported:
the LlamaIndex objects are read by their attributes. Anything that cannot be mapped raises
:class:`UnmappableFilter` (a ``ValueError``), never falls back to "no filter".
"""

from __future__ import annotations

import datetime
from typing import Any, Optional

__all__ = ["UnmappableFilter", "NOTHING", "from_haystack", "from_llama_index", "all_of"]


class UnmappableFilter(ValueError):
    """A framework filter ciphervec cannot express (or a malformed one)."""


# A filter no item matches (an `$in` of nothing); the path need not exist.
NOTHING: dict = {"_": {"$in": []}}


def all_of(*filters: Optional[dict]) -> Optional[dict]:
    """The conjunction of the filters given (``None`` ones left out; ``None`` if none)."""
    present = [f for f in filters if f]
    if not present:
        return None
    return present[0] if len(present) == 1 else {"$and": present}


# Haystack.

_HAYSTACK_ORDER = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}


def from_haystack(filters: Optional[dict], meta_prefix: str = "meta") -> Optional[dict]:
    """A ciphervec filter of a Haystack 2.x filter (``None`` or ``{}``: no filter).

    Fields are ``meta.<path>`` (the document's meta, stored under ``meta_prefix``) or ``id``.
    Comparisons follow Haystack's in-memory store: ``==``/``!=`` with ``None`` test whether
    the field is missing; ``!=`` and ``not in`` also match documents without the field; an
    order comparison with ``None`` matches nothing, with a list or with a string that is not
    an ISO 8601 date is an error (dates compare as their text, so write them alike);
    ``in``/``not in`` need a list. ``NOT`` negates the conjunction of its conditions.
    """
    if not filters:
        return None
    if not isinstance(filters, dict):
        raise UnmappableFilter("a Haystack filter is a dict")
    return _haystack_node(filters, meta_prefix)


def _haystack_node(node: Any, prefix: str) -> dict:
    if not isinstance(node, dict):
        raise UnmappableFilter("a Haystack filter condition is a dict")
    if "field" in node:
        return _haystack_comparison(node, prefix)
    if "operator" not in node:
        raise UnmappableFilter("a Haystack logical filter needs 'operator'")
    if "conditions" not in node:
        raise UnmappableFilter("a Haystack logical filter needs 'conditions'")
    conditions = node["conditions"]
    if not isinstance(conditions, list) or not conditions:
        raise UnmappableFilter("'conditions' is a non-empty list")
    parts = [_haystack_node(c, prefix) for c in conditions]
    op = node["operator"]
    if op == "AND":
        return {"$and": parts}
    if op == "OR":
        return {"$or": parts}
    if op == "NOT":
        return {"$not": {"$and": parts}}
    raise UnmappableFilter(f"unknown Haystack logical operator {op!r}")


def _haystack_field(field: Any, prefix: str) -> str:
    if not isinstance(field, str) or not field:
        raise UnmappableFilter("a Haystack comparison's 'field' is a non-empty string")
    if field.startswith("meta."):
        return f"{prefix}.{field[5:]}"
    if field == "id":
        return "id"
    raise UnmappableFilter(
        f"filtering on {field!r} is not supported: use 'id' or 'meta.<field>'"
    )


def _haystack_comparison(node: dict, prefix: str) -> dict:
    for key in ("operator", "value"):
        if key not in node:
            raise UnmappableFilter(f"a Haystack comparison needs {key!r}")
    path = _haystack_field(node["field"], prefix)
    op, value = node["operator"], node["value"]
    if op == "==":
        return {path: {"$eq": value}}
    if op == "!=":
        return {path: {"$ne": value}}
    if op in _HAYSTACK_ORDER:
        if value is None:
            return NOTHING
        if isinstance(value, (list, tuple, dict, bool)):
            raise UnmappableFilter(f"'{op}' compares with a number or an ISO 8601 date")
        if isinstance(value, str):
            try:
                datetime.datetime.fromisoformat(value)
            except ValueError:
                raise UnmappableFilter(
                    f"'{op}' compares with a number or an ISO 8601 date, not another string"
                ) from None
        return {path: {_HAYSTACK_ORDER[op]: value}}
    if op in ("in", "not in"):
        if not isinstance(value, list):
            raise UnmappableFilter(f"'{op}' needs a list")
        return {path: {"$in" if op == "in" else "$nin": value}}
    raise UnmappableFilter(f"unknown Haystack comparison operator {op!r}")


# LlamaIndex.

_LLAMA_SIMPLE = {
    "==": "$eq",
    "!=": "$ne",
    ">": "$gt",
    ">=": "$gte",
    "<": "$lt",
    "<=": "$lte",
    "in": "$in",
    "nin": "$nin",
    "contains": "$contains",
    "text_match": "$contains",
}


def from_llama_index(filters: Any, meta_prefix: str = "metadata") -> Optional[dict]:
    """A ciphervec filter of LlamaIndex ``MetadataFilters`` (``None`` or no filters: none).

    Every ``FilterOperator`` of llama-index-core 0.12-0.14 maps: ``==`` ``!=`` ``>`` ``>=``
    ``<`` ``<=`` ``in`` ``nin`` (lists), ``contains`` (an array element or a substring),
    ``any``/``all`` (of a list, each as ``contains``), ``text_match`` (a substring),
    ``text_match_insensitive`` (a substring, any case), ``is_empty`` (missing, null, "" or
    []). Conditions ``and``, ``or`` and ``not`` (none of the filters matches, as LlamaIndex's
    own ``SimpleVectorStore`` reads it); ``MetadataFilters`` nest. An operator or condition
    not in that list raises :class:`UnmappableFilter`.
    """
    if filters is None:
        return None
    if not hasattr(filters, "filters"):
        raise UnmappableFilter("expected llama_index MetadataFilters")
    if not filters.filters:
        return None
    return _llama_group(filters, meta_prefix)


def _name(enum_or_str: Any) -> Any:
    return getattr(enum_or_str, "value", enum_or_str)


def _llama_group(group: Any, prefix: str) -> dict:
    parts = [
        _llama_group(f, prefix) if hasattr(f, "filters") else _llama_filter(f, prefix)
        for f in group.filters
    ]
    if not parts:
        raise UnmappableFilter("an empty nested MetadataFilters")
    condition = _name(group.condition) or "and"
    if condition == "and":
        return parts[0] if len(parts) == 1 else {"$and": parts}
    if condition == "or":
        return parts[0] if len(parts) == 1 else {"$or": parts}
    if condition == "not":
        return {"$not": parts[0] if len(parts) == 1 else {"$or": parts}}
    raise UnmappableFilter(f"unsupported LlamaIndex filter condition {condition!r}")


def _regex_literal(text: str) -> str:
    """``text`` as a literal pattern of the Rust ``regex`` crate (the characters its
    ``regex_syntax::escape`` escapes; Python's ``re.escape`` also escapes spaces, which that
    crate refuses)."""
    return "".join("\\" + c if c in _REGEX_META else c for c in text)


_REGEX_META = frozenset("\\.+*?()|[]{}^$#&-~")


def _llama_filter(f: Any, prefix: str) -> dict:
    key, op, value = f.key, _name(f.operator), f.value
    if not isinstance(key, str) or not key:
        raise UnmappableFilter("a MetadataFilter's key is a non-empty string")
    path = f"{prefix}.{key}"
    if op == "is_empty":
        return {"$or": [{path: {"$eq": None}}, {path: {"$eq": ""}}, {path: {"$eq": []}}]}
    if op in ("in", "nin", "any", "all") and not isinstance(value, list):
        raise UnmappableFilter(f"the LlamaIndex operator {op!r} needs a list")
    if op in ("text_match", "text_match_insensitive") and not isinstance(value, str):
        raise UnmappableFilter(f"the LlamaIndex operator {op!r} needs a string")
    if op in ("any", "all"):
        if not value:
            # `all` of nothing holds for any present, non-null value (as LlamaIndex reads it).
            return NOTHING if op == "any" else {path: {"$ne": None}}
        parts = [{path: {"$contains": v}} for v in value]
        return {"$or" if op == "any" else "$and": parts}
    if op == "text_match_insensitive":
        return {path: {"$regex": "(?i)" + _regex_literal(value)}}
    if op in _LLAMA_SIMPLE:
        if value is None and op not in ("==", "!="):
            raise UnmappableFilter(f"the LlamaIndex operator {op!r} needs a value")
        return {path: {_LLAMA_SIMPLE[op]: value}}
    raise UnmappableFilter(f"unsupported LlamaIndex filter operator {op!r}")
