# Kubernetes: images, loading them into kind/minikube, the chart's dependencies, install, and
# the cluster suite. Needs docker (or podman: CONTAINER=podman), kind or minikube, kubectl;
# helm is the pinned one from the toolchain cache (`make setup`).

CONTAINER     ?= $(shell command -v docker >/dev/null 2>&1 && echo docker || echo podman)
KIND_CLUSTER  ?= moaa
K8S_NAMESPACE ?= moaa
K8S_RELEASE   ?= moaa
K8S_PROFILE   ?= kind
CHART_DIR     := charts/moaa
MOAA_IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' $(CHART_DIR)/Chart.yaml)
SPARK_VERSION := $(shell sed -n 's/^SPARK_VERSION = "\(.*\)"/\1/p' apps/localstack/src/moaa/localstack/versions.py)
HELM          = $(shell $(VENV)/bin/python -c 'import os, pathlib; from moaa.localstack.toolchain import Toolchain; print(Toolchain(pathlib.Path(os.environ["MOAA_CACHE_DIR"])).helm())')
MOAA_IMAGES   := moaa-feeder moaa-producer moaa-dataprep moaa-dashboard moaa-spark

.PHONY: images
images: ## Build every image (docker or podman) tagged $(MOAA_IMAGE_TAG)
	@command -v $(CONTAINER) >/dev/null || { echo "make images needs docker or podman"; exit 1; }
	DOCKER_BUILDKIT=1 $(CONTAINER) build -f images/python.Dockerfile --build-arg PACKAGE=moaa-feeder --target app -t moaa-feeder:$(MOAA_IMAGE_TAG) .
	DOCKER_BUILDKIT=1 $(CONTAINER) build -f images/python.Dockerfile --build-arg PACKAGE=moaa-producer --target app -t moaa-producer:$(MOAA_IMAGE_TAG) .
	DOCKER_BUILDKIT=1 $(CONTAINER) build -f images/python.Dockerfile --build-arg PACKAGE=moaa-dataprep --target dataprep -t moaa-dataprep:$(MOAA_IMAGE_TAG) .
	DOCKER_BUILDKIT=1 $(CONTAINER) build -f images/dashboard.Dockerfile -t moaa-dashboard:$(MOAA_IMAGE_TAG) .
	DOCKER_BUILDKIT=1 $(CONTAINER) build -f images/spark.Dockerfile --build-arg SPARK_VERSION=$(SPARK_VERSION) -t moaa-spark:$(MOAA_IMAGE_TAG) .

.PHONY: kind-load
kind-load: ## Load the images into the kind cluster $(KIND_CLUSTER)
	@command -v kind >/dev/null || { echo "kind is not installed (https://kind.sigs.k8s.io)"; exit 1; }
	@set -e; for img in $(MOAA_IMAGES); do \
	  if [ "$(CONTAINER)" = docker ]; then kind load docker-image --name $(KIND_CLUSTER) $$img:$(MOAA_IMAGE_TAG); \
	  else $(CONTAINER) save $$img:$(MOAA_IMAGE_TAG) -o /tmp/$$img.tar && kind load image-archive --name $(KIND_CLUSTER) /tmp/$$img.tar && rm -f /tmp/$$img.tar; fi; \
	done

.PHONY: minikube-load
minikube-load: ## Load the images into minikube
	@command -v minikube >/dev/null || { echo "minikube is not installed (https://minikube.sigs.k8s.io)"; exit 1; }
	@set -e; for img in $(MOAA_IMAGES); do minikube image load $$img:$(MOAA_IMAGE_TAG); done

.PHONY: kind-up
kind-up: ## Create the kind cluster $(KIND_CLUSTER) (k8s-tests/kind-config.yaml)
	@kind get clusters 2>/dev/null | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER) --config k8s-tests/kind-config.yaml --wait 120s

.PHONY: chart-deps
chart-deps: venv ## Fetch the chart's dependencies (Strimzi, MCK, Spark operator, kube-prometheus-stack) into charts/moaa/charts
	$(HELM) dependency build $(CHART_DIR)

.PHONY: chart-test
chart-test: venv ## Lint, render and validate the chart offline (tests/chart)
	$(VENV)/bin/pytest -q tests/chart

.PHONY: k8s-install
# No `helm --wait`: it also waits for every PVC to be Bound, and on kind (local-path,
# WaitForFirstConsumer) the Spark checkpoint PVCs bind only once the driver pods exist, which
# the post-install hooks create after that wait: a deadlock until the timeout. Helm still waits
# for the hook Jobs; the Deployments are waited for with kubectl afterwards.
k8s-install: chart-deps ## helm upgrade --install the chart with values-$(K8S_PROFILE).yaml into $(K8S_NAMESPACE)
	$(HELM) upgrade --install $(K8S_RELEASE) $(CHART_DIR) --namespace $(K8S_NAMESPACE) --create-namespace \
	  -f $(CHART_DIR)/values-$(K8S_PROFILE).yaml --timeout 20m
	kubectl -n $(K8S_NAMESPACE) wait --for=condition=Available deployment --all --timeout=20m

.PHONY: k8s-uninstall
k8s-uninstall: ## Remove the release (PVCs and generated Secrets are kept; see the README)
	$(HELM) uninstall $(K8S_RELEASE) --namespace $(K8S_NAMESPACE)
	kubectl -n $(K8S_NAMESPACE) delete sparkapplication -l app.kubernetes.io/instance=$(K8S_RELEASE) --ignore-not-found

.PHONY: k8s-test
k8s-test: venv ## Cluster suite against the current kube context (skips without a cluster)
	K8S_NAMESPACE=$(K8S_NAMESPACE) K8S_RELEASE=$(K8S_RELEASE) $(VENV)/bin/pytest -v k8s-tests
