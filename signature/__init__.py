"""Package parsing and XML signature / X.509 validation for application packages."""
