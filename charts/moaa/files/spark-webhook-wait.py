"""Wait until the Spark operator's webhook admits a SparkApplication (spark/webhook-wait-job.yaml).

A TCP connection to the webhook Service is not enough: the operator patches the webhooks'
caBundle a little later, and until then the API server cannot call it (x509 errors, and
failurePolicy Fail rejects the SparkApplications). So this asks the API server for what
Helm does next: a server-side dry-run create of a SparkApplication (MOAA_PROBE, JSON), which
runs the mutating and validating webhooks and persists nothing. Standard library only, so it
runs in any Python image; the ServiceAccount token comes from the usual mount.

Environment: MOAA_PROBE (required), MOAA_WAIT_TIMEOUT_S (default 600), MOAA_WAIT_INTERVAL_S
(5), MOAA_SERVICEACCOUNT_DIR (/var/run/secrets/kubernetes.io/serviceaccount), and the
KUBERNETES_SERVICE_HOST/PORT every pod gets.
"""

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

sa_dir = os.environ.get("MOAA_SERVICEACCOUNT_DIR", "/var/run/secrets/kubernetes.io/serviceaccount")
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
with open(os.path.join(sa_dir, "namespace")) as f:
    namespace = f.read().strip()
probe = json.loads(os.environ["MOAA_PROBE"])
timeout_s = float(os.environ.get("MOAA_WAIT_TIMEOUT_S", "600"))
interval_s = float(os.environ.get("MOAA_WAIT_INTERVAL_S", "5"))
context = ssl.create_default_context(cafile=os.path.join(sa_dir, "ca.crt"))
url = (
    f"https://{host}:{port}/apis/sparkoperator.k8s.io/v1beta2/namespaces/{namespace}"
    "/sparkapplications?dryRun=All&fieldManager=moaa-webhook-wait"
)
deadline = time.monotonic() + timeout_s
while True:
    with open(os.path.join(sa_dir, "token")) as f:  # re-read: projected tokens rotate
        token = f.read().strip()
    request = urllib.request.Request(
        url,
        data=json.dumps(probe).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        # S310: the URL is https to the in-cluster API server, built above.
        with urllib.request.urlopen(request, timeout=15, context=context) as response:  # noqa: S310
            print(f"the Spark operator webhook admits SparkApplications (HTTP {response.status})")
            sys.exit(0)
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("message", "")
        except ValueError:
            reason = ""
        reason = f"HTTP {exc.code}: {reason or exc.reason}"
    except OSError as exc:
        reason = f"the API server is unreachable: {exc}"
    if time.monotonic() >= deadline:
        sys.exit(f"gave up after {timeout_s:.0f} s; the last answer was {reason}")
    print(f"waiting for the Spark operator webhook: {reason}", flush=True)
    time.sleep(interval_s)
