"""A task enqueued on commit travels through the real Redis broker to a real worker."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.core import mail

from crowdplatform.accounts import services
from crowdplatform.celery import app


def forget_broker_connections() -> None:
    """Drop the connection pools Celery caches for the broker it saw first.

    Eager calls in earlier tests already opened them (for whatever broker
    was configured then); the worker test must publish to its own Redis.
    """
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def redis_worker(redis_url):
    previous = {key: app.conf[key] for key in ("broker_url", "task_always_eager", "task_default_queue")}
    # A queue of its own, so that a stray worker on this Redis cannot take the test's messages.
    app.conf.update(broker_url=redis_url, task_always_eager=False, task_default_queue="crowdplatform-tests")
    forget_broker_connections()
    with app.connection_for_write() as connection:
        connection.default_channel.client.delete("crowdplatform-tests")
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield
    finally:
        app.conf.update(previous)
        forget_broker_connections()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_invitation_email_is_sent_by_a_worker_through_redis(redis_worker, organization, owner):
    services.invitation_create(organization=organization, email="queued@lab.example", role="member", actor=owner)
    deadline = time.monotonic() + 10
    while not mail.outbox and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [message.to for message in mail.outbox] == [["queued@lab.example"]]
