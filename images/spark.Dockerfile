# syntax=docker/dockerfile:1.7
# The Spark jobs' image (stats, forecast) — also the insert job's, which lives in the same
# package (moaa-streaming) and runs as plain Python here.
#   docker build -f images/spark.Dockerfile --build-arg SPARK_VERSION=4.2.0 -t moaa-spark:0.1.0 .
# - Spark: the official Spark JVM image of the pinned version (its /opt/entrypoint.sh
#   is what the Spark operator's driver and executor pods call; uid 185).
# - Python 3.12 from uv's standalone builds (the official image's Ubuntu Python is older than
#   our >=3.11), with moaa-streaming and its locked dependencies — except pyspark itself: the
#   image's own $SPARK_HOME/python is the one on PYTHONPATH, so Python and JVM sides match.
# - The Kafka connector jars resolved with Maven at build time from the same pom the local
#   toolchain uses, copied into $SPARK_HOME/jars: nothing is downloaded at submit.
# - Metrics need nothing extra: PrometheusServlet is part of spark-core.
ARG SPARK_VERSION=4.2.0
# The Docker Official Image (library/spark, built from apache/spark-docker): its 4.2.0 tags are
# confirmed published (images/README.md says how); apache/spark:<same tag> is the fallback.
ARG SPARK_IMAGE=docker.io/library/spark:${SPARK_VERSION}-scala2.13-java17-ubuntu
ARG MAVEN_IMAGE=docker.io/library/maven:3.9.11-eclipse-temurin-17
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8
ARG PYTHON_VERSION=3.12

FROM ${UV_IMAGE} AS uv

FROM ${MAVEN_IMAGE} AS jars
ARG SPARK_VERSION
COPY apps/localstack/src/moaa/localstack/resources/spark-kafka-pom.xml /build/pom.xml
RUN mvn -B -q -f /build/pom.xml -Dspark.version=${SPARK_VERSION} \
      org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory=/build/jars \
      -DincludeArtifactIds=spark-sql-kafka-0-10_2.13,spark-token-provider-kafka-0-10_2.13,kafka-clients,commons-pool2 \
 && ls /build/jars/spark-sql-kafka-0-10_2.13-${SPARK_VERSION}.jar

FROM ${SPARK_IMAGE} AS build
ARG PYTHON_VERSION
USER root
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python UV_PYTHON_PREFERENCE=only-managed UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/moaa/venv
RUN uv python install ${PYTHON_VERSION}
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY apps/common/pyproject.toml apps/common/README.md apps/common/
COPY apps/localstack/pyproject.toml apps/localstack/README.md apps/localstack/
COPY apps/dataprep/pyproject.toml apps/dataprep/README.md apps/dataprep/
COPY apps/feeder/pyproject.toml apps/feeder/README.md apps/feeder/
COPY apps/producer/pyproject.toml apps/producer/README.md apps/producer/
COPY apps/streaming/pyproject.toml apps/streaming/README.md apps/streaming/
COPY apps/dashboard/pyproject.toml apps/dashboard/README.md apps/dashboard/
RUN uv sync --frozen --no-dev --no-install-workspace --no-install-package pyspark \
      --python ${PYTHON_VERSION} --package moaa-streaming
COPY apps/ apps/
RUN uv sync --frozen --no-dev --no-editable --no-install-package pyspark \
      --python ${PYTHON_VERSION} --package moaa-streaming

FROM ${SPARK_IMAGE}
USER root
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/moaa/venv /opt/moaa/venv
COPY --from=jars /build/jars/ /opt/spark/jars/
COPY images/spark/run.py /opt/moaa/run.py
# The image's pyspark (SPARK_HOME/python) with the venv's py4j and our packages.
ENV PATH=/opt/moaa/venv/bin:$PATH PYTHONPATH=/opt/spark/python \
    PYSPARK_PYTHON=/opt/moaa/venv/bin/python PYSPARK_DRIVER_PYTHON=/opt/moaa/venv/bin/python \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MOAA_LOG_FORMAT=json MOAA_STATE_DIR=/tmp/moaa
ARG SPARK_VERSION
RUN python -c "import pyspark, moaa.streaming.stats, moaa.streaming.insert; assert pyspark.__version__ == '${SPARK_VERSION}', pyspark.__version__" \
 || (echo "pyspark on PYTHONPATH is not Spark ${SPARK_VERSION}" >&2; exit 1)
USER 185
# Inherited ENTRYPOINT /opt/entrypoint.sh: `driver`/`executor` for the Spark operator's pods;
# anything else (e.g. `moaa insert`) is executed as given.
