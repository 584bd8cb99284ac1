"""The pure counting cores of issue 14.1 and 14.4: streams per user, client networks per session."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.config_schema import OnLimit
from gateway.sessions.sharing import NetworkSightings, SharingPolicy
from gateway.sessions.stream_table import Outcome, StreamPolicy, StreamTable

T0 = 1_800_000_000.0
IDLE = 60.0


def table(on_limit: OnLimit = OnLimit.BLOCK_NEW, max_streams: int = 2) -> StreamTable:
    return StreamTable(StreamPolicy(max_streams, on_limit, idle_seconds=IDLE, evicted_seconds=3600))


def test_block_new_refuses_a_third_stream_and_keeps_admitting_the_first_two() -> None:
    streams = table()
    assert streams.heartbeat("u1", "s1", T0).outcome is Outcome.ADMITTED
    assert streams.heartbeat("u1", "s2", T0 + 1).outcome is Outcome.ADMITTED
    third = streams.heartbeat("u1", "s3", T0 + 2)
    assert third.outcome is Outcome.BLOCKED and third.user_streams == 2
    assert streams.heartbeat("u1", "s1", T0 + 3).outcome is Outcome.ADMITTED  # a heartbeat, not a new stream
    assert streams.heartbeat("u2", "s9", T0 + 3).outcome is Outcome.ADMITTED  # another user has their own slots
    assert streams.active() == 3


def test_a_stream_that_stops_fetching_frees_its_slot_after_the_idle_grace() -> None:
    streams = table()
    streams.heartbeat("u1", "s1", T0)
    streams.heartbeat("u1", "s2", T0)
    for second in range(0, 61, 5):  # s1 keeps fetching its playlists; s2 was paused at T0
        streams.heartbeat("u1", "s1", T0 + second)
    assert streams.heartbeat("u1", "s3", T0 + IDLE - 1).outcome is Outcome.BLOCKED  # s2 still within its grace
    assert streams.heartbeat("u1", "s3", T0 + IDLE + 1).outcome is Outcome.ADMITTED
    assert streams.heartbeat("u1", "s2", T0 + IDLE + 2).outcome is Outcome.BLOCKED  # resuming: its slot is gone


def test_evict_oldest_admits_the_new_stream_and_keeps_the_evicted_one_out() -> None:
    streams = table(OnLimit.EVICT_OLDEST)
    streams.heartbeat("u1", "s1", T0)
    streams.heartbeat("u1", "s2", T0 + 1)
    streams.heartbeat("u1", "s1", T0 + 2)  # s1 seen again: s2 is now the least recently seen
    third = streams.heartbeat("u1", "s3", T0 + 3)
    assert third.outcome is Outcome.ADMITTED and third.evicted == "s2" and third.user_streams == 2
    # The evicted stream's next fetch is refused, rather than evicting the newcomer in its turn.
    assert streams.heartbeat("u1", "s2", T0 + 4).outcome is Outcome.EVICTED
    assert streams.heartbeat("u1", "s3", T0 + 5).outcome is Outcome.ADMITTED
    assert streams.heartbeat("u1", "s2", T0 + 3 + 3601).outcome is not Outcome.EVICTED  # after the sessions' life


def test_release_frees_a_slot_at_once() -> None:
    streams = table(max_streams=1)
    streams.heartbeat("u1", "s1", T0)
    assert streams.heartbeat("u1", "s2", T0 + 1).outcome is Outcome.BLOCKED
    streams.release("u1", "s1")
    assert streams.heartbeat("u1", "s2", T0 + 2).outcome is Outcome.ADMITTED


def test_memory_follows_the_streams_alive_not_every_user_seen() -> None:
    streams = table()
    for user in range(1000):
        streams.heartbeat(f"u{user}", f"s{user}", T0)
    streams.heartbeat("late", "s-late", T0 + IDLE + 1)  # a sweep is due: every idle user is forgotten
    assert streams.active() == 1
    assert len(streams._users) == 1


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("::ffff:203.0.113.77", "203.0.113.0/24"),  # an IPv4 client on a dual-stack socket
        ("2001:db8:aaaa:1::5", "2001:db8:aaaa::/48"),
    ],
)
def test_a_client_counts_as_its_network(address: str, network: str) -> None:
    assert SharingPolicy(max_networks=2, window_seconds=600).network_of(ipaddress.ip_address(address)) == network


def test_sharing_is_detected_once_when_a_session_passes_max_networks_within_the_window() -> None:
    policy = SharingPolicy(max_networks=2, window_seconds=600)
    seen = NetworkSightings(policy)
    home, phone, elsewhere, fourth = "198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24", "2001:db8::/48"
    assert not seen.sighting("s1", home, T0).detected
    assert not seen.sighting("s1", home, T0 + 1).detected  # the same network again
    assert not seen.sighting("s1", phone, T0 + 2).detected  # two networks: allowed
    third = seen.sighting("s1", elsewhere, T0 + 3)
    assert third.detected and third.networks == 3
    assert not seen.sighting("s1", fourth, T0 + 4).detected  # said once, not on every further network
    assert not seen.sighting("s2", elsewhere, T0 + 5).detected  # per session


def test_networks_older_than_the_window_do_not_count() -> None:
    seen = NetworkSightings(SharingPolicy(max_networks=1, window_seconds=600))
    seen.sighting("s1", "198.51.100.0/24", T0)  # home in the morning
    later = seen.sighting("s1", "203.0.113.0/24", T0 + 601)  # work, after the window: one network in it
    assert later.networks == 1 and not later.detected
