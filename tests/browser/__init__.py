"""Browser tests (Playwright + Debian's Chromium): see tests/README.md."""
