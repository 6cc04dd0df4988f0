"""Reads of the registry."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, FilteredRelation, Prefetch, Q, QuerySet

from features.candles import normalise_symbol
from mlengine.errors import DomainError, InvalidParameter, NotFoundError
from models_registry.errors import AmbiguousModel, UnknownModel, UnknownModelVersion
from models_registry.models import (
    ActivationEvent,
    ModelVersion,
    RegisteredModel,
    RoutingGeneration,
    TrainingRun,
)
from models_registry.naming import DEFAULT_MODEL_NAME, model_name_problem

# A model argument: the row, its name, or None for ``default`` (what every seed route acts on).
ModelRef = RegisteredModel | str | None

# ASCII digits only (a regex's \d would take "٣"), matched whole: "$" alone lets "v3\n" through.
# The OpenAPI schema publishes the same pattern (mlengine.schema.VERSION_PATTERN).
VERSION_PATTERN = r"^[vV]?[1-9][0-9]{0,8}$"
# Run ids are BigAutoField keys: a larger number cannot name a run (and overflows SQLite).
MAX_RUN_ID = 2**63 - 1
_VERSION = re.compile(r"[vV]?([1-9][0-9]{0,8})")


def parse_version(value: str | int) -> int:
    """``"v3"``, ``"V3"``, ``"3"`` or ``3`` → 3; anything else is an ``InvalidParameter``."""
    match = _VERSION.fullmatch(str(value))
    if not match:
        raise InvalidParameter(
            "version must look like v3 or 3", details={"version": str(value)[:50]}
        )
    return int(match.group(1))


def parse_model_name(value: str) -> str:
    """A valid model name, or ``InvalidParameter`` (400) saying why not."""
    problem = model_name_problem(value)
    if problem:
        raise InvalidParameter(problem, details={"model": str(value)[:80]})
    return value


def _unknown_model(name: str) -> UnknownModel:
    return UnknownModel(f"Unknown model {name!r}.", details={"model": name})


def registered_model_default() -> RegisteredModel:
    """The model ``default``, created if missing (a fresh or flushed database; the migration
    creates it otherwise)."""
    model, _ = RegisteredModel.objects.get_or_create(
        name=DEFAULT_MODEL_NAME,
        defaults={"description": "The model the seed routes act on."},
    )
    return model


def registered_model_get(*, name: str) -> RegisteredModel:
    """A model by name: ``InvalidParameter`` (400) for a malformed name, ``UnknownModel`` (404)
    for one that does not exist (``default`` always exists)."""
    if name == DEFAULT_MODEL_NAME:
        return registered_model_default()
    parse_model_name(name)
    try:
        return RegisteredModel.objects.get(name=name)
    except RegisteredModel.DoesNotExist as exc:
        raise _unknown_model(name) from exc


def registered_model_of(model: ModelRef) -> RegisteredModel:
    """The row behind a model argument (None: ``default``)."""
    if isinstance(model, RegisteredModel):
        return model
    return registered_model_get(name=model or DEFAULT_MODEL_NAME)


def registered_model_list() -> QuerySet[RegisteredModel]:
    """Every model by name, with its version count and its champion and challengers
    (``serving_versions``)."""
    serving = (
        ModelVersion.objects.filter(Q(is_active=True) | Q(is_challenger=True))
        .defer("baseline")
        .order_by("-version")
    )
    return (
        RegisteredModel.objects.annotate(version_count=Count("versions"))
        .prefetch_related(Prefetch("versions", queryset=serving, to_attr="serving_versions"))
        .order_by("name")
    )


def _of_model(rows: QuerySet, model: ModelRef, field: str = "model") -> QuerySet:
    if isinstance(model, RegisteredModel):
        return rows.filter(**{field: model})
    return rows.filter(**{f"{field}__name": model or DEFAULT_MODEL_NAME})


def model_version_list(*, model: ModelRef = None) -> QuerySet[ModelVersion]:
    """A model's versions (``default``'s when None), newest first, without the large baseline
    statistics."""
    rows = ModelVersion.objects.select_related("model").defer("baseline")
    return _of_model(rows, model).order_by("-version")


def model_version_get(*, version: str | int, model: ModelRef = None) -> ModelVersion:
    """One version of a model (``default`` when None) by ``v3`` or ``3``;
    ``UnknownModelVersion`` (404) when there is none."""
    number = parse_version(version)
    try:
        return _of_model(ModelVersion.objects.select_related("model"), model).get(version=number)
    except ModelVersion.DoesNotExist as exc:
        name = model.name if isinstance(model, RegisteredModel) else model or DEFAULT_MODEL_NAME
        raise UnknownModelVersion(
            f"Unknown model version v{number} of {name}.",
            details={"version": f"v{number}", "model": name},
        ) from exc


def champion_of(*, model: ModelRef = None, with_baseline: bool = False) -> ModelVersion | None:
    """A model's champion (its one active version; ``default``'s when None), or None. Its
    baseline statistics (hundreds of kilobytes of JSON) are read only when asked for, or later
    on first access."""
    rows = _of_model(ModelVersion.objects.filter(is_active=True), model)
    return (rows if with_baseline else rows.defer("baseline")).first()


def active_model_version(*, with_baseline: bool = False) -> ModelVersion | None:
    """``default``'s champion: what "the active version" of the seed routes means."""
    return champion_of(model=None, with_baseline=with_baseline)


def challengers_of(*, model: ModelRef = None) -> QuerySet[ModelVersion]:
    """A model's challengers (``default``'s when None), newest first."""
    return model_version_list(model=model).filter(is_challenger=True)


def activation_event_list(*, model: ModelRef = None) -> QuerySet[ActivationEvent]:
    """A model's lifecycle history (``default``'s when None), newest first."""
    rows = ActivationEvent.objects.select_related("model", "from_version", "to_version")
    return _of_model(rows, model).order_by("-created_at", "-pk")


# Routing: which model (and so which champion and challengers) serves a symbol.


@dataclass(frozen=True)
class VersionKey:
    """What identifies a loaded model in a process: the row and its artifact's sha256."""

    pk: int
    version: int
    sha256: str

    @property
    def label(self) -> str:
        return f"v{self.version}"


@dataclass(frozen=True)
class ModelRoute:
    """A model as ``/predict`` serves it: its champion's key (None: no champion) and its
    challengers' keys, read together in one query (``serving_routes``)."""

    model_id: int
    name: str
    symbols: tuple[str, ...]
    champion: VersionKey | None
    challengers: tuple[VersionKey, ...] = ()


def _serving_queryset() -> QuerySet[RegisteredModel]:
    """Every model joined with its serving versions (champion and challengers), as the rows
    ``serving_routes`` reads: one row per serving version, or one with NULLs for a model with
    none."""
    serving = FilteredRelation(
        "versions", condition=Q(versions__is_active=True) | Q(versions__is_challenger=True)
    )
    return (
        RegisteredModel.objects.annotate(serving=serving)
        .values_list(
            "pk",
            "name",
            "symbols",
            "serving__pk",
            "serving__version",
            "serving__artifact_sha256",
            "serving__is_active",
        )
        .order_by("name", "-serving__version")
    )


@functools.cache
def _serving_sql(alias: str) -> tuple[str, tuple]:
    """``_serving_queryset``'s SQL, compiled once per database: building and compiling the
    queryset costs several times what PostgreSQL takes to answer it."""
    sql, params = _serving_queryset().query.get_compiler(using=alias).as_sql()
    return sql, tuple(params)


def serving_routes(*, model: str | None = None) -> dict[str, ModelRoute]:
    """Models by name with their champion and challengers, in ONE query (the per-request lookup
    of ``/predict``): the models joined with their serving versions (active or challenger).

    Every model is read (there are a handful, and a query without parameters is compiled
    once); ``model`` keeps that one only.
    """
    sql, params = _serving_sql(connection.alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    symbols_field = RegisteredModel._meta.get_field("symbols")
    found: dict[str, tuple[int, tuple[str, ...], list[tuple[bool, VersionKey]]]] = {}
    for pk, name, raw_symbols, v_pk, v_number, v_sha, v_active in rows:
        if model is not None and name != model:
            continue
        entry = found.get(name)
        if entry is None:
            listed = symbols_field.from_db_value(raw_symbols, None, connection) or ()
            entry = found[name] = (int(pk), tuple(listed), [])
        if v_pk is not None:
            entry[2].append((bool(v_active), VersionKey(int(v_pk), int(v_number), str(v_sha))))
    return {
        name: ModelRoute(
            model_id=pk,
            name=name,
            symbols=listed,
            champion=next((key for active, key in keys if active), None),
            challengers=tuple(key for active, key in keys if not active),
        )
        for name, (pk, listed, keys) in found.items()
    }


@functools.cache
def _generation_sql(alias: str) -> tuple[str, tuple]:
    sql, params = (
        RoutingGeneration.objects.filter(pk=1)
        .values_list("generation")
        .query.get_compiler(using=alias)
        .as_sql()
    )
    return sql, tuple(params)


def routing_generation() -> int | None:
    """The routing generation (``RoutingGeneration``): one indexed read of one row, whose value
    changes with every committed write to models and versions. None if the row is missing."""
    sql, params = _generation_sql(connection.alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else int(row[0])


@functools.cache
def _guard_sql(alias: str) -> tuple[str, int, int]:
    """``EXISTS (the generation row with a given value)``, compiled once per database, and the
    positions of its two parameters (the row's key and the value)."""
    marker = -(2**62)
    sql, params = (
        RoutingGeneration.objects.filter(pk=1, generation=marker)
        .values("pk")
        .query.get_compiler(using=alias)
        .as_sql()
    )
    return f"EXISTS ({sql})", list(params).index(1), list(params).index(marker)


@dataclass(frozen=True)
class RoutesSnapshot:
    """Every model's route, and the routing generation they were read under (None: unknown)."""

    routes: dict[str, ModelRoute]
    generation: int | None

    def guard(self) -> tuple[str, tuple] | None:
        """The condition (SQL, parameters) under which these routes are still the database's:
        for an INSERT that must write only then (``mlengine.db.postgresql.compiler``)."""
        if self.generation is None:
            return None
        sql, key_at, value_at = _guard_sql(connection.alias)
        params = [None, None]
        params[key_at], params[value_at] = 1, self.generation
        return sql, tuple(params)


class RouteCache:
    """This process's copy of ``serving_routes()``, kept while the routing generation is the one
    read just before it: each request costs one read of one row instead of the routes' join (or
    none, when its write carries the snapshot's ``guard()``), and a change committed by any
    process on any host is still seen by the next request.

    Its owner is this module (``route_cache``); its bound is one copy per database alias.
    ``hits`` and ``misses`` count its answers.
    """

    def __init__(self) -> None:
        self._copies: dict[str, RoutesSnapshot] = {}
        self.hits = 0
        self.misses = 0

    def snapshot(self, *, check: bool = True) -> RoutesSnapshot:
        """The routes as the database has them now (``check``), or, unchecked, this process's
        copy without a query: only for a caller whose write carries the snapshot's ``guard()``
        and starts again with a checked one when that write is refused."""
        alias = connection.alias
        copy = self._copies.get(alias)
        if not check and copy is not None:
            self.hits += 1
            return copy
        # The generation first: routes read after it are at least as new, so a copy is never
        # kept under a generation older than what it shows (a later change is a miss).
        generation = routing_generation()
        if generation is not None and copy is not None and copy.generation == generation:
            self.hits += 1
            return copy
        self.misses += 1
        snapshot = RoutesSnapshot(routes=serving_routes(), generation=generation)
        if generation is not None:
            self._copies[alias] = snapshot
        return snapshot

    def routes(self) -> dict[str, ModelRoute]:
        """Every model's route as the database has it now."""
        return self.snapshot().routes


route_cache = RouteCache()


def route_symbol(routes: dict[str, ModelRoute], symbol: str, *, model: str | None) -> ModelRoute:
    """The routing rule, on ``serving_routes``'s answer. ``model`` given: that model (404
    ``unknown_model`` if none). Otherwise the model whose symbols list ``symbol``; when several
    do, ``default`` if it is one of them, else 400 ``ambiguous_model`` naming them; a symbol no
    model lists is served by ``default``."""
    if model is not None:
        route = routes.get(model)
        if route is None:
            raise _unknown_model(model)
        return route
    symbol = normalise_symbol(symbol)
    listing = [route for route in routes.values() if symbol in route.symbols]
    if len(listing) == 1:
        return listing[0]
    names = sorted(route.name for route in listing)
    if listing and DEFAULT_MODEL_NAME not in names:
        raise AmbiguousModel(
            f"{symbol} is served by the models {', '.join(names)}; choose one with model=NAME.",
            details={"symbol": symbol, "models": names},
        )
    route = routes.get(DEFAULT_MODEL_NAME)
    if route is None:  # a database where no model exists yet
        return ModelRoute(model_id=0, name=DEFAULT_MODEL_NAME, symbols=(), champion=None)
    return route


def model_route(
    *, symbol: str, model: str | None = None, snapshot: RoutesSnapshot | None = None
) -> ModelRoute:
    """The route of one ``/predict``: ``route_symbol`` on ``snapshot``, else on the routes as the
    database has them now (``route_cache``)."""
    if model is not None:
        parse_model_name(model)
    routes = (snapshot or route_cache.snapshot()).routes
    return route_symbol(routes, symbol, model=model)


def model_routes(
    *, symbols: Iterable[str], model: str | None = None
) -> dict[str, ModelRoute | DomainError]:
    """The route of each symbol of a batch (or the error that symbol gets), on ``route_cache``.
    A named ``model`` that does not exist is the whole batch's ``UnknownModel`` (404)."""
    if model is not None:
        parse_model_name(model)
    symbols = list(symbols)
    routes = route_cache.routes()
    if model is not None and model not in routes:
        raise _unknown_model(model)
    answer: dict[str, ModelRoute | DomainError] = {}
    for symbol in symbols:
        try:
            answer[symbol] = route_symbol(routes, symbol, model=model)
        except DomainError as exc:
            answer[symbol] = exc
    return answer


def training_run_get(*, run_id: int) -> TrainingRun:
    try:
        return TrainingRun.objects.select_related("model_version", "requested_by").get(pk=run_id)
    except TrainingRun.DoesNotExist as exc:
        raise NotFoundError(
            f"Unknown training run {run_id}.", details={"training_run": run_id}
        ) from exc
