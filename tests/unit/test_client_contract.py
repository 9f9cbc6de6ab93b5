"""The client keeps its own copy of what it must know of the server (it imports no server code):
those copies must say what the server says."""

from theodolite.client.models import TERMINAL_STATUSES as CLIENT_TERMINAL
from theodolite.lifecycle import TERMINAL_STATUSES


def test_the_client_knows_the_same_terminal_statuses_as_the_lifecycle() -> None:
    assert CLIENT_TERMINAL == {status.value for status in TERMINAL_STATUSES}
