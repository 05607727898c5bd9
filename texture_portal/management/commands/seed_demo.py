from django.core.management.base import BaseCommand

from texture_portal.demo.seed import seed_demo


class Command(BaseCommand):
    help = "Create (or refresh) the demo organization, workspaces, program, fleet and staff user; print the login."

    def add_arguments(self, parser):
        parser.add_argument("--password", help="Password for the demo user (default: a new random one).")

    def handle(self, *args, password=None, **options):
        result = seed_demo(password=password)
        self.stdout.write(
            f"Demo workspace “{result.workspace}”: program {result.program.slug}, "
            f"{result.devices_created} new devices (Registered Systems)."
        )
        self.stdout.write(self.style.SUCCESS(f"Log in as: {result.username}   password: {result.password}"))
