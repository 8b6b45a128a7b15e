"""Settings of the MOAA website (``MOAA_DASHBOARD_*``, plus the shared Mongo and Kafka ones)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from moaa.common.kafka import TOPIC_HOURLY_STATS, TOPIC_HOURLY_SUMMARY, KafkaSettings

__all__ = ["DEFAULT_SCRAPE_TARGETS", "DashboardSettings", "parse_targets"]

#: Local defaults: each component's own metrics endpoint (ports of the local stack).
DEFAULT_SCRAPE_TARGETS = (
    "feeder=http://127.0.0.1:9300/metrics,"
    "producer=http://127.0.0.1:9301/metrics,"
    "stats=http://127.0.0.1:4040/metrics/prometheus/,"
    "insert=http://127.0.0.1:9302/metrics,"
    "forecast=http://127.0.0.1:9303/metrics"
)


def parse_targets(spec: str) -> dict[str, str]:
    """``name=url,name=url`` → ``{name: url}`` (order kept; blanks ignored).

    >>> parse_targets("feeder=http://a:1/metrics, insert=http://b:2/metrics")
    {'feeder': 'http://a:1/metrics', 'insert': 'http://b:2/metrics'}
    """
    targets: dict[str, str] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ValueError(f"scrape target {item!r} is not name=url")
        targets[name.strip()] = url.strip()
    return targets


class DashboardSettings(KafkaSettings):
    """Settings of ``moaa dashboard`` (``MOAA_*``)."""

    dashboard_host: str = Field(
        "127.0.0.1", description="Address the website binds (0.0.0.0 in Kubernetes)."
    )
    dashboard_port: int = Field(8080, description="Port of the website, its API and /metrics.")
    dashboard_mongo_uri: SecretStr | None = Field(
        None,
        description="MongoDB connection string of the website's read-only user "
        "(unset: MOAA_MONGO_URI).",
    )
    mongo_uri: SecretStr = Field(
        SecretStr("mongodb://127.0.0.1:27017/"), description="MongoDB connection string."
    )
    mongo_database: str = Field("moaa", description="Database of the results.")
    dashboard_scrape_targets: str = Field(
        DEFAULT_SCRAPE_TARGETS,
        description="Metrics endpoints shown on the pipeline page, as name=url,name=url.",
    )
    dashboard_scrape_interval_s: float = Field(
        5.0, description="Seconds between two scrapes of the pipeline's metrics endpoints."
    )
    dashboard_scrape_timeout_s: float = Field(
        2.0, description="Timeout of one scrape (or one Kafka lag query)."
    )
    dashboard_refresh_s: float = Field(
        2.0, description="Seconds between two checks for a new or changed hour (live updates)."
    )
    dashboard_keep_hours: int = Field(
        48,
        ge=1,
        le=24 * 14,
        description="Hours of every station's figures the website keeps in memory (the map, "
        "the station pages' history, the world view); 14k stations x 48 h is about 20 MB.",
    )
    dashboard_map_window_hours: int = Field(
        6,
        description="The map shows every station seen in this many latest hours "
        "(grey when it has no reading in the current one).",
    )
    topic_hourly_stats: str = Field(TOPIC_HOURLY_STATS, description="Per station and hour results.")
    topic_hourly_summary: str = Field(
        TOPIC_HOURLY_SUMMARY, description="All-stations per hour results."
    )
    insert_group_id: str = Field("moaa-insert", description="Consumer group of the insert job.")

    def read_mongo_uri(self) -> str:
        """The read-only URI if set, else the shared one."""
        uri = self.dashboard_mongo_uri or self.mongo_uri
        return uri.get_secret_value()

    def targets(self) -> dict[str, str]:
        return parse_targets(self.dashboard_scrape_targets)
