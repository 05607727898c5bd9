"""`run_integration_schedule --wait-for`: the demo's schedule starts its first round once the simulator started
beside it answers, and says so (then starts anyway) when it never does."""

import io
import socket
import threading
import time

from integrations.management.commands.run_integration_schedule import Command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_goes_on_at_once_when_the_simulator_answers_and_says_so_when_it_never_does(sim):
    port = free_port()
    url = f"http://127.0.0.1:{port}/_sim/stats"
    command = Command(stdout=io.StringIO(), stderr=io.StringIO())
    # the sim fixture's server answers at once
    started = time.monotonic()
    command.wait_for(f"{sim.url}/_sim/stats", timeout=5)
    assert time.monotonic() - started < 1 and command.stderr.getvalue() == ""

    # nothing listens: it waits the whole timeout, says so and goes on
    started = time.monotonic()
    command.wait_for(url, timeout=1.2)
    assert time.monotonic() - started >= 1.2
    assert f"{url} did not answer within 1.2 s; starting anyway." in command.stderr.getvalue()


def test_a_server_that_comes_up_late_is_waited_for():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    port = free_port()
    servers = []

    def start_late():
        time.sleep(1.0)
        server = ThreadingHTTPServer(("127.0.0.1", port), Answer)
        servers.append(server)
        server.serve_forever()

    threading.Thread(target=start_late, daemon=True).start()
    command = Command(stdout=io.StringIO(), stderr=io.StringIO())
    started = time.monotonic()
    command.wait_for(f"http://127.0.0.1:{port}/", timeout=10)
    waited = time.monotonic() - started
    assert 0.9 <= waited < 5 and command.stderr.getvalue() == ""
    servers[0].shutdown()
