"""Caches for served lists and users' recent activity: Redis, or in-process."""

from recsdk.cache.base import Cache
from recsdk.cache.memory import MemoryCache
from recsdk.cache.redis import RedisCache, make_cache

__all__ = ["Cache", "MemoryCache", "RedisCache", "make_cache"]
