"""Persistence: typed models, engines, migrations and the storage facade."""
