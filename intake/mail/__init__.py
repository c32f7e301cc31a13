"""The daily count e-mail (通知機能, P7): per department, the previous Asia/Tokyo day's applications
per procedure, 7-day and month-to-date totals and open work — counts only, never personal data.

Modules: ``config`` (departments, recipients, transport settings), ``counting`` (events → numbers),
``render`` (the Japanese text/plain + text/html message), ``transport`` (SMTP and ``.eml`` folder),
``sentlog`` (claim → sent, one row per day and department), ``service`` (send a day, run the due
days), ``status`` (for the dashboard and ``/readyz``), ``schedule`` (APScheduler in ``serve``),
``errors``. See docs/intake.md, "Daily count e-mail (通知機能)".
"""
