"""The probe: first contact with a real Cloudmax server (issue 26).

``python -m cloudmax_provider.probe --conn-id cloudmax_default --launch-id 1234`` sends a bounded, read-only
sequence of requests (:mod:`.checks`), prints what the server did and what to set for it (:mod:`.verdicts`),
and with ``--record DIR`` keeps a sanitized capture (:mod:`.sanitize`) that
``python -m cloudmax_provider.testing.emulator --replay DIR`` serves again. Above the hooks; nothing below
(operators included) imports it.

Example::

    from cloudmax_provider.probe.checks import ProbeOptions
    from cloudmax_provider.probe.cli import run_probe

    result = run_probe("cloudmax_default", ProbeOptions(launch_ids=(1234,)), record="capture/")
    result.exit_status  # 0: everything handled
"""
