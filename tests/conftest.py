"""Fixtures shared by the tests of this folder: the admin's operator and a read-only viewer."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import logged_in, staff_user


@pytest.fixture
def operator() -> User:
    """A staff user who may manage the registry."""
    return staff_user("operator", registry=True)


@pytest.fixture
def operator_client(operator: User) -> Client:
    return logged_in(operator)


@pytest.fixture
def viewer_client() -> Client:
    """A staff user who may only view the registry."""
    return logged_in(staff_user("viewer", registry=False))
