"""Serve the OEM simulator (every simulated OEM cloud on one port) until interrupted."""

import signal
import threading

from django.core.management.base import BaseCommand

from integrations.simulator import SimState, SimulatorServer, add_accounts, oauth
from texture_portal.demo.seed import DEMO_FLEET_CSV, DEMO_OFFLINE_DEVICES


class Command(BaseCommand):
    help = "Run the OEM simulator (every OEM cloud the portal has an adapter for) seeded from a fleet CSV."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument(
            "--fleet",
            default=str(DEMO_FLEET_CSV),
            help="Bulk-import CSV whose devices the simulated clouds know (default: the demo fleet).",
        )
        parser.add_argument("--seed", type=int, default=7, help="Seed of the per-device variation.")
        parser.add_argument("--verbose-requests", action="store_true", help="Log every request.")
        parser.add_argument(
            "--all-online",
            action="store_true",
            help="Start every device online (by default the demo's DEMO_OFFLINE_DEVICES start offline).",
        )

    def handle(self, *args, **options):
        state = SimState(seed=options["seed"])
        count = state.load_fleet_csv(options["fleet"])
        add_accounts(state)
        oauth.demo_customers_add(state)  # the driver the demo seed connected through Texture Connect
        offline = [] if options["all_online"] else [(oem, serial) for oem, serial in DEMO_OFFLINE_DEVICES]
        for oem, serial in offline:
            if state.device(oem, serial) is not None:
                state.set_online(oem, serial, False)
        server = SimulatorServer(
            state, host=options["host"], port=options["port"], verbose=options["verbose_requests"]
        ).start()
        self.stdout.write(
            f"OEM simulator on {server.url} with {count} devices ({', '.join(sorted(server.base_urls()))}); "
            f"steer it under {server.url}/_sim/ (advance, fault, offline, storm, stats)"
            + (f"; offline: {', '.join(serial for _, serial in offline)}" if offline else "")
            + ". Ctrl-C stops it."
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
