.PHONY: install demo test lint bench
install:
	pip install -e '.[dev]'
demo:
	receipts demo
test:
	pytest
lint:
	ruff check src tests bench && ruff format --check src tests && mypy
bench:
	pip install -e '.[bench]' && python bench/ingest.py && python bench/validate.py
