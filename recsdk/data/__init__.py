"""Behaviour and catalogue data: file readers, loaders, a synthetic shop, cleaning."""
