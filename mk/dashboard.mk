# The MOAA website (apps/dashboard): front-end assets and the headless browser of its tests.

DASHBOARD_WEB    := apps/dashboard/web
DASHBOARD_VENDOR := apps/dashboard/src/moaa/dashboard/static/vendor
CHROMIUM         := /usr/bin/chromium

# Stamp file: rebuilt only when the lockfile, package.json or the build script change.
$(DASHBOARD_VENDOR)/.stamp: $(DASHBOARD_WEB)/package.json $(DASHBOARD_WEB)/package-lock.json $(DASHBOARD_WEB)/build.sh
	@command -v npm >/dev/null || { echo "the dashboard's assets need node and npm at build time (apt-get install nodejs npm)"; exit 1; }
	$(DASHBOARD_WEB)/build.sh

.PHONY: dashboard-assets
dashboard-assets: $(DASHBOARD_VENDOR)/.stamp ## Build the website's JS/CSS/map assets from npm (npm ci; skipped when up to date)

# Debian's chromium drives the browser tests through Playwright (no browser download).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium

.PHONY: browser
browser: $(CHROMIUM) ## Install Debian's chromium for the dashboard's browser tests (once)

# The demo serves the website; only the tests need the browser.
setup: dashboard-assets
test: browser

.PHONY: bench-website
bench-website: setup browser ## The website at 13,836 stations: /api/now p50/p95 and bytes, map and station pages in Chromium
	$(VENV)/bin/python bench/website.py
