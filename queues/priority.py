from enum import IntEnum


class Priority(IntEnum):
    """Job priorities, 1 (critical) to 10 (background); a lower number runs first."""

    CRITICAL = 1
    HIGH = 3
    NORMAL = 5
    LOW = 7
    BACKGROUND = 10


MIN_PRIORITY = 1
MAX_PRIORITY = 10
