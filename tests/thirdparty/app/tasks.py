"""Tasks as any reusable app would write them: only ``django_tasks``, nothing of ``queues``."""

from django_tasks import TaskContext, task

# What ``record`` saw, in the order the tasks ran.
ran: list[str] = []


class ThirdPartyError(Exception):
    pass


@task()
def add(a, b):
    return a + b


@task()
def echo(*args, **kwargs):
    return {"args": args, "kwargs": kwargs}


@task()
def record(tag):
    ran.append(tag)
    return tag


@task()
def explode(message):
    raise ThirdPartyError(message)


@task()
def divide(a, b):
    return a / b


@task()
def returns_object():
    return object()


@task(takes_context=True)
def introspect(context: TaskContext, label):
    result = context.task_result
    return {
        "label": label,
        "id": result.id,
        "status": str(result.status),
        "attempt": context.attempt,
        "started": result.started_at is not None,
    }


@task()
async def add_async(a, b):
    return a + b


def not_a_task(*args):
    raise AssertionError("a plain function must never be run by the task handler")


# Reachable under a second name: workers run a task only from its own dotted path.
alias = add
