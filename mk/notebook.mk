# Forecasts: the notebook (committed as jupytext py:percent only) and the skill benchmark.

.PHONY: notebook
notebook: venv ## Turn notebooks/*.py (jupytext py:percent) into .ipynb notebooks (git-ignored)
	$(VENV)/bin/jupytext --to ipynb notebooks/*.py

.PHONY: bench-forecast
bench-forecast: venv ## Forecast skill: full-year walk-forward replay of the sample (MAE per lead)
	$(VENV)/bin/python bench/forecast_skill.py
