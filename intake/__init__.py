"""The application-management system (申請管理システム) in the My Number zone. Built in a later issue."""
