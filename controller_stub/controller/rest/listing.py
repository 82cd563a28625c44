"""Octavia's list semantics over the engine's answers: filtering by field query
parameters and by tags (``tags``, ``tags-any``, ``not-tags``, ``not-tags-any``),
``sort`` / ``sort_key`` + ``sort_dir``, ``limit`` / ``marker`` / ``page_reverse``
with ``<collection>_links``, and ``fields`` selection."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import current_app, request

from controller_stub.controller.rest.errors import ApiError

MAX_LIMIT = 1000  # Octavia's [api_settings] pagination_max_limit default
_AUX = {"limit", "marker", "sort", "sort_key", "sort_dir", "fields", "page_reverse"}
_DEFAULT_KEYS = ("created_at", "id")
# Octavia's tag filters, each a comma-separated list (and repeatable): an object is
# listed when it has all of ``tags``, any of ``tags-any``, not all of ``not-tags``
# and none of ``not-tags-any``
_TAG_FILTERS: dict[str, Callable[[set[str], set[str]], bool]] = {
    "tags": lambda wanted, tags: wanted <= tags,
    "tags-any": lambda wanted, tags: bool(wanted & tags),
    "not-tags": lambda wanted, tags: not wanted <= tags,
    "not-tags-any": lambda wanted, tags: not wanted & tags,
}


def _sort_keys(args: Any) -> list[tuple[str, str]]:
    def direction(value: str) -> str:
        value = value.lower()
        if value not in ("asc", "desc"):
            raise ApiError(400, f"Supplied sort direction '{value}' is not valid.")
        return value

    keys: list[tuple[str, str]] = []
    if args.get("sort"):
        for part in args["sort"].split(","):
            comps = part.split(":")
            if len(comps) > 2:
                raise ApiError(400, f"Supplied sort key '{comps}' is not valid.")
            keys.append((comps[0], direction(comps[1]) if len(comps) == 2 else "asc"))
    elif args.get("sort_key"):
        names = args["sort_key"].split(",")
        dirs = args.get("sort_dir", "").split(",") if args.get("sort_dir") else []
        dirs += ["asc"] * (len(names) - len(dirs))
        keys = [(k, direction(d)) for k, d in zip(names, dirs, strict=False)]
    return keys


def _limit(args: Any) -> int | None:
    raw = args.get("limit")
    if raw is None:
        return MAX_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Supplied pagination limit '{raw}' is not valid.") from None
    return None if value < 1 else min(value, MAX_LIMIT)


def _matches(value: Any, wanted: str) -> bool:
    if isinstance(value, bool):
        return str(value).lower() == wanted.lower()
    return value is not None and str(value) == wanted


def _tag_filters(args: Any) -> dict[str, set[str]]:
    return {name: {tag for value in args.getlist(name) for tag in value.split(",")}
            for name in _TAG_FILTERS if name in args}


def _tagged(item: dict[str, Any], filters: dict[str, set[str]]) -> bool:
    tags = set(item.get("tags") or ())
    return all(_TAG_FILTERS[name](wanted, tags) for name, wanted in filters.items())


def _order(value: Any) -> tuple[int, Any]:
    # None sorts first, as Octavia's '' default does; mixed types compare as text
    if value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))


def selected_fields() -> list[str] | None:
    raw = request.args.getlist("fields")
    if not raw:
        return None
    return [f for item in raw for f in item.split(",") if f]


def select_fields(obj: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return obj if fields is None else {k: v for k, v in obj.items() if k in fields}


def public_url(path: str) -> str:
    """``path`` on the URL clients reach this API by: ``[api] base_uri`` (Octavia's
    ``api_base_uri``) behind a proxy, else the request's own scheme and host."""
    base = current_app.config.get("AMPHORA_BASE_URI") or request.host_url.rstrip("/")
    return base + path


def paginate(collection: str, items: Iterable[dict[str, Any]], known: set[str],
             hidden: set[str] | None = None) -> dict[str, Any]:
    """The list body ``{collection: [...], collection_links: [...]}``; ``known`` are
    the fields a client may filter and sort on, ``hidden`` those not shown. Tag
    filters on objects without tags are ignored, as Octavia does."""
    args = request.args
    filters = {k: args.get(k) for k in args if k not in _AUX and k not in _TAG_FILTERS}
    if any(len(args.getlist(k)) > 1 for k in filters) or not set(filters) <= known:
        raise ApiError(400, "One or more arguments are either duplicate or invalid")
    tag_filters = _tag_filters(args) if "tags" in known else {}
    rows = [i for i in items if all(_matches(i.get(k), v) for k, v in filters.items())
            and _tagged(i, tag_filters)]
    keys = _sort_keys(args)
    for key, _ in keys:
        if key not in known:
            raise ApiError(400, f"Supplied sort key '{key}' is not valid.")
    keys += [(k, "asc") for k in _DEFAULT_KEYS if k not in {k for k, _ in keys}]
    for key, direction in reversed(keys):
        rows.sort(key=lambda r, k=key: _order(r.get(k)), reverse=direction == "desc")
    limit, marker = _limit(args), args.get("marker")
    reverse = args.get("page_reverse", "False") == "True"
    if marker is not None:
        index = next((n for n, r in enumerate(rows) if r.get("id") == marker), None)
        if index is None:
            raise ApiError(400, f"Supplied pagination marker '{marker}' is not valid.")
        if reverse:
            rows = rows[:index][-limit:] if limit else rows[:index]
        else:
            rows = rows[index + 1:]
    if limit is not None:
        rows = rows[:limit]
    links = _links(rows, limit, marker)
    fields = selected_fields()
    if hidden:
        rows = [{k: v for k, v in r.items() if k not in hidden} for r in rows]
    return {collection: [select_fields(r, fields) for r in rows],
            f"{collection}_links": links}


def _links(rows: list[dict[str, Any]], limit: int | None,
           marker: str | None) -> list[dict[str, str]]:
    if not rows:
        return []
    base = public_url(request.path)
    attrs = [f"limit={limit}"]
    for name in ("sort", "sort_key"):
        if request.args.get(name):
            attrs.append(f"{name}={request.args[name]}")
    links = []
    if marker:
        links.append({"rel": "previous", "href": f"{base}?{'&'.join(attrs)}&marker="
                                                 f"{rows[0]['id']}&page_reverse=True"})
    if limit is None or len(rows) >= limit:
        links.append({"rel": "next", "href": f"{base}?{'&'.join(attrs)}&marker="
                                             f"{rows[-1]['id']}"})
    return links
