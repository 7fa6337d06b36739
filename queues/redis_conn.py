"""Redis clients from ``REDIS_URL``: ``redis://``, TLS ``rediss://``, and Redis Sentinel
``redis+sentinel://[:password@]host:port[,host:port...]/<master name>[/<db>]`` (or
``rediss+sentinel://`` for TLS). With Sentinel, every connection goes to the current
master, so a failover is followed on reconnect; the ledger keeps the jobs meanwhile."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SOCKET_OPTIONS = {"socket_timeout": 10, "socket_connect_timeout": 5, "socket_keepalive": True}


def parse_sentinel(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL: {url!r}")
    hosts = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = item.partition(":")
        hosts.append((host, int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(f"{url!r} names no master: use redis+sentinel://host:port/<master>/<db>")
    return {
        "sentinels": hosts,
        "master": unquote(path[0]),
        "db": int(path[1]) if len(path) > 1 else 0,
        "password": unquote(parts.password) if parts.password else None,
        "ssl": parts.scheme.startswith("rediss"),
    }


def is_sentinel(url: str) -> bool:
    return urlsplit(url).scheme in SENTINEL_SCHEMES


def client_for(url: str):
    if not is_sentinel(url):
        return redis.Redis.from_url(url, health_check_interval=30, **SOCKET_OPTIONS)
    conf = parse_sentinel(url)
    sentinel = Sentinel(conf["sentinels"], ssl=conf["ssl"], **SOCKET_OPTIONS)
    return sentinel.master_for(
        conf["master"],
        db=conf["db"],
        password=conf["password"],
        ssl=conf["ssl"],
        health_check_interval=30,
        **SOCKET_OPTIONS,
    )


def async_client_for(url: str):
    if not is_sentinel(url):
        return aioredis.Redis.from_url(url)
    conf = parse_sentinel(url)
    sentinel = AsyncSentinel(conf["sentinels"], ssl=conf["ssl"])
    return sentinel.master_for(
        conf["master"], db=conf["db"], password=conf["password"], ssl=conf["ssl"]
    )
