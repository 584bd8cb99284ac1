"""`python -m gateway replay`: replay long live sessions against the gateway and report every denial.

Pure cores, thin I/O:
    scenario.py        what to replay (frozen dataclasses; CLI flags or a TOML/JSON file)
    playlist.py        HLS parsing for the player (m3u8 for masters and cross-checks, a fast scanner for reloads)
    expectations.py    is a denial expected (IP change with binding, past the session's cap, an expected revoke)?
    events.py          what a player records (requests, token lifetimes, events, stalls, gaps)
    client.py          the player's network side (senders, cookies as a browser keeps them, token bookkeeping)
    session.py         the player's viewing session: session API, refresh strategy, denial recovery
    playback.py        tracks, buffers, reloads and segment fetches; stalls and gaps
    player.py          the player: tick(), scheduled behaviours (pause, seek, IP change, revoke), ABR
    origins.py         what `simulate` plays against: the live origin simulator or a recording
    simulate.py        simulated time, all in-process (no sockets): origin + gateway + players
    realtime.py        the same players against a deployed gateway, in real time
    recording.py       record a live origin; recorded_origin.py serves a recording back at simulated time
    report.py          the JSON report, exit status and summary; report_html.py the self-contained HTML
    cli.py             `register(subparsers)`: the `replay simulate|realtime|record` commands
"""
