"""Pinned versions of everything the project fetches besides Python packages.

One place for them: the toolchain, the tests and the chart read these. ``SPARK_VERSION``
must equal the ``pyspark`` pin in ``apps/streaming/pyproject.toml`` and the chart's
``sparkVersion``; a test checks both.
"""

__all__ = [
    "FERRETDB_MODULE",
    "FERRETDB_VERSION",
    "HELM_MODULE",
    "HELM_VERSION",
    "KAFKA_VERSION",
    "KUBERNETES_ETCD_VERSION",
    "KUBERNETES_VERSION",
    "MAVEN_DEPENDENCY_PLUGIN",
    "SCALA_BINARY_VERSION",
    "SPARK_VERSION",
]

#: Apache Kafka broker run locally: the default Kafka of Strimzi 1.2.0, which the chart deploys.
KAFKA_VERSION = "4.3.1"
#: Spark: 4.2.0 is the newest release whose Kafka connector resolves whole from Maven Central
#: (spark-sql-kafka-0-10_2.13 4.3.0 is not published; the 4.0.4 and 4.1.3 connectors lack their
#: spark-token-provider-kafka-0-10 there). Used by pyspark, the Spark image and sparkVersion.
SPARK_VERSION = "4.2.0"
SCALA_BINARY_VERSION = "2.13"
#: FerretDB v1 is the last line with the SQLite backend (v2 needs PostgreSQL + DocumentDB).
FERRETDB_MODULE = "github.com/FerretDB/FerretDB/cmd/ferretdb"
FERRETDB_VERSION = "v1.24.2"
#: Helm v4 reads its Kubernetes version from the build, so a plain `go install` renders right.
HELM_MODULE = "helm.sh/helm/v4/cmd/helm"
HELM_VERSION = "v4.3.1"
#: kube-apiserver (and the etcd it pins in its go.mod) for the chart's real-API-server tests:
#: the Kubernetes minor the chart is rendered for (tests/chart KUBE_VERSION). Its staging
#: modules (k8s.io/api, …) are the matching v0.35.x releases.
KUBERNETES_VERSION = "v1.35.4"
KUBERNETES_ETCD_VERSION = "v3.6.5"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
