"""The MOAA website: FastAPI app serving the pages, the JSON API, live updates and /metrics.

Pages are static HTML + JS (``static/``) that read the JSON API; the charting and map
libraries come from npm at build time (``static/vendor/``, see ``web/build.sh``). One
background task checks MongoDB for a new or changed hour every ``MOAA_DASHBOARD_REFRESH_S``,
reads only what changed into the in-process live view (``moaa.dashboard.live``) and tells
every open page over server-sent events (``/api/events``): the map, the station list, the
search and the world view answer from that view, so the database sees the same load however
many browsers are open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from moaa.common.kafka import kafka_lag
from moaa.dashboard.live import Catalogue, Encoded, LiveCache, LiveView, iso_hour
from moaa.dashboard.models import (
    Error,
    Now,
    Pipeline,
    SearchHit,
    Skill,
    StationForecast,
    StationPage,
    Stations,
    Summary,
)
from moaa.dashboard.scrape import PipelineWatch
from moaa.dashboard.settings import DashboardSettings
from moaa.dashboard.store import Store

__all__ = ["STATIC_DIR", "create_app"]

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).with_name("static")

REQUESTS = Counter(
    "weather_dashboard_requests_total",
    "HTTP requests answered, by route and status",
    ["route", "status"],
)
REQUEST_SECONDS = Histogram(
    "weather_dashboard_request_duration_seconds",
    "Time to answer one HTTP request, by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
MONGO_ERRORS = Counter(
    "weather_dashboard_mongo_errors_total", "MongoDB queries that failed (answered with 503)"
)
LIVE_CLIENTS = Gauge("weather_dashboard_live_clients", "Open live-update (SSE) connections")
CURRENT_HOUR = Gauge(
    "weather_dashboard_current_hour_timestamp_seconds",
    "The current simulated hour the website shows (Unix time)",
)
SCRAPE_UP = Gauge(
    "weather_dashboard_scrape_up",
    "Whether a pipeline component's metrics endpoint answered the last scrape",
    ["target"],
)


class _Live:
    """The current hour and its summary, as the live view has them; SSE clients follow
    ``version``."""

    def __init__(self) -> None:
        self.version = 0
        self.payload: dict[str, Any] = {"hour": None, "summary": None}

    def set(self, view: LiveView) -> None:
        summary = view.summaries.get(view.current) if view.current else None
        self.version += 1
        self.payload = {
            "hour": iso_hour(view.current) if view.current else None,
            "summary": Summary.model_validate(summary).model_dump(mode="json") if summary else None,
        }


@cache
def station_directory() -> Mapping[str, tuple[str, str]]:
    """Station id → (country, call sign), from the ISD station list shipped with moaa."""
    from moaa.dataprep.stations import read_stations  # noqa: PLC0415 - read once, on first use

    return {s.station_id: (s.country, s.icao) for s in read_stations()}


def _answer(request: Request, encoded: Encoded, cache_control: str = "no-cache") -> Response:
    """An encoded answer: 304 if the browser has it, gzip if it takes it."""
    headers = {"ETag": encoded.etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == encoded.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(encoded.gzipped, media_type="application/json", headers=headers)
    return Response(encoded.body, media_type="application/json", headers=headers)


def create_app(  # noqa: PLR0915 - one closure per route, sharing the store and the caches
    settings: DashboardSettings | None = None, *, watch: bool = True
) -> FastAPI:
    """Build the website. ``watch=False`` skips the background tasks (unit tests)."""
    settings = settings or DashboardSettings()
    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.read_mongo_uri(),
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000,
        tz_aware=True,
        appname="moaa-dashboard",
    )
    store = Store(client[settings.mongo_database])
    pipeline = PipelineWatch(
        settings.targets(),
        settings.dashboard_scrape_timeout_s,
        lag=kafka_lag(
            settings.kafka_client_config(),
            settings.insert_group_id,
            [settings.topic_hourly_stats, settings.topic_hourly_summary],
            settings.dashboard_scrape_timeout_s,
        ),
        on_scrape=lambda name, up: SCRAPE_UP.labels(name).set(1 if up else 0),
    )
    live = _Live()
    view = LiveView(
        keep_hours=settings.dashboard_keep_hours,
        map_window_hours=settings.dashboard_map_window_hours,
        catalogue=Catalogue(directory=station_directory()),
    )
    live_cache = LiveCache(store, view)
    readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mongo-read")

    def refresh_live() -> None:
        changed = live_cache.refresh()
        if view.current is not None:
            CURRENT_HOUR.set(view.current.timestamp())
        if changed:
            with live_cache.lock:
                live.set(view)

    async def watch_hours() -> None:
        while True:
            try:
                await asyncio.to_thread(refresh_live)
            except PyMongoError as exc:
                MONGO_ERRORS.inc()
                log.warning("MongoDB unreachable: %s", exc)
            await asyncio.sleep(settings.dashboard_refresh_s)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if watch:
            tasks = [
                asyncio.create_task(watch_hours(), name="watch-hours"),
                asyncio.create_task(
                    pipeline.run(settings.dashboard_scrape_interval_s), name="scrape"
                ),
            ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task
            readers.shutdown(wait=False, cancel_futures=True)
            client.close()

    app = FastAPI(
        title="MOAA website API",
        version="0.1.0",
        description="Hourly weather stats, forecasts and the pipeline's health, read from "
        "MongoDB (read-only). Times are UTC; temperatures in °C.",
        lifespan=lifespan,
        responses={503: {"model": Error, "description": "MongoDB is unreachable right now"}},
        docs_url=None,  # served below with the local Swagger UI (no CDN)
        redoc_url=None,
    )
    app.state.store = store
    app.state.pipeline = pipeline
    app.state.live = live_cache
    # Everything but the pre-compressed answers and the event stream (excluded by type).
    app.add_middleware(GZipMiddleware, minimum_size=1024)

    @app.middleware("http")
    async def measure(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", None) or (
            "/static" if request.url.path.startswith("/static/") else "other"
        )
        if name != "/api/events":  # a stream lasts as long as the page is open
            REQUEST_SECONDS.labels(name).observe(time.perf_counter() - started)
        REQUESTS.labels(name, str(response.status_code)).inc()
        return response

    @app.exception_handler(PyMongoError)
    async def mongo_down(_request: Request, exc: PyMongoError) -> JSONResponse:
        MONGO_ERRORS.inc()
        log.warning("MongoDB query failed: %s", exc)
        return JSONResponse({"detail": f"MongoDB unreachable: {type(exc).__name__}"}, 503)

    # --- operations -------------------------------------------------------------------
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        try:
            store.ping()
        except PyMongoError as exc:
            return JSONResponse(
                {"status": "not ready", "reason": f"mongodb unreachable: {exc}"[:300]}, 503
            )
        if not live_cache.loaded:
            return JSONResponse({"status": "not ready", "reason": "reading the latest hours"}, 503)
        return JSONResponse({"status": "ready", "reason": "ok"})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="MOAA website API",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    # --- JSON API ---------------------------------------------------------------------
    not_found: dict[int | str, dict[str, Any]] = {404: {"model": Error}}

    @app.get("/api/now", response_model=Now, tags=["stats"], responses=not_found)
    def now(
        request: Request,
        hour: Annotated[
            datetime | None,
            Query(description="A UTC hour of the kept ones (default: the current one)."),
        ] = None,
    ) -> Response:
        """The current hour: all-stations summary and each station's figures, as columns.

        Answered from memory (read once per new hour), gzip-compressed when the client
        accepts it, with an ``ETag``; station names and positions are in ``/api/stations``."""
        if hour is not None and hour.tzinfo is None:
            hour = hour.replace(tzinfo=UTC)
        with live_cache.lock:
            if hour is not None and hour not in view.hours:
                raise HTTPException(404, f"hour {hour} is not among the kept hours")
            encoded = view.encoded(f"now|{hour}", lambda: view.now(hour))
        return _answer(request, encoded)

    @app.get("/api/stations", response_model=Stations, tags=["stations"])
    def stations(
        request: Request,
        v: Annotated[
            int | None,
            Query(
                description="The `stations_version` of `/api/now`: the answer is then "
                "cacheable for a day (it changes only with the version)."
            ),
        ] = None,
    ) -> Response:
        """Every station of the kept hours: id, name, position, country and call sign."""
        with live_cache.lock:
            version = view.catalogue.version
            encoded = view.encoded("stations", view.catalogue.payload, version)
        fresh = v is not None and v == version
        return _answer(request, encoded, "public, max-age=86400" if fresh else "no-cache")

    @app.get("/api/search", response_model=list[SearchHit], tags=["stations"])
    def search(
        q: Annotated[
            str,
            Query(
                min_length=1,
                max_length=64,
                description="Id, name or call sign (or the start of one).",
            ),
        ],
        limit: Annotated[int, Query(ge=1, le=50, description="At most this many stations.")] = 10,
    ) -> list[dict[str, Any]]:
        """Stations by id, call sign or name (case-insensitive): exact id or call sign first,
        then prefixes, then names containing the text."""
        with live_cache.lock:
            return view.catalogue.search(q, limit)

    @app.get("/api/summary", response_model=list[Summary], tags=["stats"])
    def summary(
        hours: Annotated[int, Query(ge=1, le=24 * 14, description="How many hours back.")] = 48,
    ) -> list[dict[str, Any]]:
        """All-stations hourly summaries of the latest ``hours`` hours, oldest first."""
        if view.covers(hours):
            with live_cache.lock:
                return view.summary_series(hours)
        current = store.current_hour()
        return store.summaries(current, hours) if current else []

    def station_figures(station_id: str, hours: int) -> dict[str, Any]:
        """A station's metadata and hours: from the view if kept, else from MongoDB."""
        with live_cache.lock:
            meta = view.station_meta(station_id)
            kept = view.station_hours(station_id, hours) if view.covers(hours) else None
            current = view.current
        if kept:  # the kept hours: no query
            return {**(meta or {}), "hour": current, "latest": kept[-1], "hours": kept}
        latest = store.station_latest(station_id)
        if latest is None:
            raise HTTPException(404, f"no hourly stats for station {station_id}")
        meta = meta or {k: latest.get(k) for k in ("name", "latitude", "longitude", "elevation_m")}
        current = current or latest["hour"]
        rows = store.station_hours(station_id, current, hours)
        return {**meta, "hour": current, "latest": latest, "hours": rows}

    def station_forecast(station_id: str, latest_hour: datetime | None) -> dict[str, Any]:
        """The station's latest forecast and its skill: two reads, side by side (each a
        table scan on FerretDB v1, an index lookup on MongoDB)."""
        forecast = readers.submit(store.forecast, station_id, latest_hour)
        skill = readers.submit(store.skill, station_id)
        return {"forecast": forecast.result(), "skill": skill.result()}

    @app.get(
        "/api/stations/{station_id}",
        response_model=StationPage,
        tags=["stations"],
        responses=not_found,
    )
    def station(
        station_id: str,
        hours: Annotated[int, Query(ge=1, le=24 * 14, description="How many hours back.")] = 48,
        forecast: Annotated[
            bool,
            Query(
                description="Include the latest forecast and skill (false: both null; the "
                "station page reads them from `/api/stations/{station_id}/forecast` meanwhile)."
            ),
        ] = True,
    ) -> dict[str, Any]:
        """One station: its last ``hours`` hours, latest forecast and skill (null when none)."""
        page = {"station_id": station_id, **station_figures(station_id, hours)}
        extra = {"forecast": None, "skill": None}
        if forecast:
            extra = station_forecast(station_id, page["latest"]["hour"] if page["latest"] else None)
        return page | extra

    @app.get(
        "/api/stations/{station_id}/forecast", response_model=StationForecast, tags=["forecasts"]
    )
    def station_forecast_route(station_id: str) -> dict[str, Any]:
        """One station's latest forecast and skill (null when none)."""
        with live_cache.lock:
            kept = view.station_hours(station_id, view.keep_hours)
        latest_hour = kept[-1]["hour"] if kept else None
        return {"station_id": station_id, **station_forecast(station_id, latest_hour)}

    @app.get("/api/skill", response_model=Skill | None, tags=["forecasts"])
    def skill_all() -> dict[str, Any] | None:
        """Forecast skill over every station (``ALL``); null before the first forecast."""
        return store.skill("ALL")

    @app.get("/api/pipeline", response_model=Pipeline, tags=["pipeline"])
    def pipeline_state() -> dict[str, Any]:
        """Replay position, records/s per stage, consumer lag, DLQ count, latest errors."""
        return pipeline.snapshot()

    @app.get(
        "/api/events",
        tags=["stats"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: ``event: hour`` with the current hour and summary, sent at
        once and again whenever the current hour or its figures change."""

        async def stream() -> AsyncIterator[str]:
            LIVE_CLIENTS.inc()
            sent, quiet = -1, 0.0
            try:
                yield "retry: 3000\n\n"
                while not await request.is_disconnected():
                    if live.version != sent:
                        sent = live.version
                        yield f"event: hour\ndata: {json.dumps(live.payload, default=str)}\n\n"
                        quiet = 0.0
                    elif quiet >= 15:
                        yield ": keep-alive\n\n"
                        quiet = 0.0
                    await asyncio.sleep(0.5)
                    quiet += 0.5
            finally:
                LIVE_CLIENTS.dec()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # --- pages ------------------------------------------------------------------------
    def page(name: str) -> FileResponse:
        return FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return page("index.html")

    @app.get("/station/{station_id}", include_in_schema=False)
    def station_page(station_id: str) -> FileResponse:  # the id is read by the page
        return page("station.html")

    @app.get("/pipeline", include_in_schema=False)
    def pipeline_page() -> FileResponse:
        return page("pipeline.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app
