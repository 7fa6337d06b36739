"""django-q2's Redis broker on the platform's Redis client (for Sentinel URLs, which
django-q2 cannot open by itself)."""

from django.conf import settings
from django_q.brokers.redis_broker import Redis

from queues.redis_conn import client_for


class PlatformRedisBroker(Redis):
    @staticmethod
    def get_connection(list_key: str = None):
        return client_for(settings.REDIS_URL)
