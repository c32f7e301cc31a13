"""The application-management system (申請管理システム) in the My Number zone. See docs/intake.md."""

__version__ = "0.1.0"  # the release; pyproject.toml says the same (tests/test_cli_conventions.py)
