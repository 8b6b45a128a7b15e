"""spark-submit's primary resource in the Spark image: run ``moaa <arguments>`` in the driver.

The SparkApplication passes the job's command as arguments (``["stats"]``), so the driver
runs exactly the entry point the local stack runs (``moaa stats``); the SparkSession it
builds picks up spark-submit's configuration (master, executors) from the environment.
"""

import sys

from moaa.common.cli import main

if __name__ == "__main__":
    sys.argv = ["moaa", *sys.argv[1:]]
    main()
