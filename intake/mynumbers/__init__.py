"""My Numbers (個人番号) kept apart: extracted from forms, encrypted with their own key, revealed only
through one service function that checks permission and writes the access log (P14)."""
