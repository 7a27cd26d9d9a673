"""Persistence: models, migrations and transactional operations. The caller owns the session."""
