from django.core.management.base import BaseCommand

from texture_portal.demo.seed import seed_demo


class Command(BaseCommand):
    help = (
        "Create (or refresh) the demo organization, workspaces, program, fleet and one staff user per role; run "
        "yesterday's test event against the simulator (its report included); print the logins."
    )

    def add_arguments(self, parser):
        parser.add_argument("--password", help="Password of every demo user (default: a new random one each).")
        parser.add_argument(
            "--no-rehearsal", action="store_true", help="Skip running yesterday's test event against the simulator."
        )

    def handle(self, *args, password=None, no_rehearsal=False, **options):
        result = seed_demo(password=password, rehearse=not no_rehearsal)
        self.stdout.write(
            f"Demo workspace “{result.workspace}”: program {result.program.slug}, {result.devices_created} new devices."
        )
        rehearsal = result.rehearsal
        if rehearsal is not None:
            if rehearsal.ran:
                self.stdout.write(
                    f"Yesterday's test event, run against the simulator: {rehearsal.status}"
                    + (f" ({rehearsal.note})" if rehearsal.note else "")
                    + f"; its report: /admin/dispatch/dispatchevent/{rehearsal.event_id}/report/"
                )
                for subject, recipients in rehearsal.mails or []:
                    self.stdout.write(f"  alert e-mail to {', '.join(recipients)}: {' '.join(subject.split())}")
            else:
                self.stdout.write(f"Yesterday's test event: not run again ({rehearsal.note}).")
        if result.connect_note:
            self.stdout.write(result.connect_note)
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("Log in at /admin/ as (each lands on their role's home):"))
        width = max(len(username) for username, _, _ in result.logins)
        for username, role, user_password in result.logins:
            self.stdout.write(self.style.SUCCESS(f"  {username:<{width}}  {role:<17} password: {user_password}"))
