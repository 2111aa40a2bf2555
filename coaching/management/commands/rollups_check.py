from django.core.management.base import BaseCommand, CommandError

from coaching import rollups_build

from ._rollup_range import add_range_arguments, parse_range


class Command(BaseCommand):
    help = "Compare the stored usage roll-ups with the raw rows and list every difference (exit 1 on drift)."

    def add_arguments(self, parser):
        add_range_arguments(parser)
        parser.add_argument("--limit", type=int, default=50, help="Differences to list (default 50).")

    def handle(self, *args, **opts):
        days = parse_range(opts)
        if days is None:
            self.stdout.write("No usage records: nothing to check.")
            return
        first, last = days
        longest = rollups_build.longest_processing()
        drift = []
        for a, b in rollups_build.chunks(first, last, 31):
            drift += rollups_build.check(a, b, longest=longest)
        for line in drift[: opts["limit"]]:
            self.stdout.write(str(line))
        if drift:
            raise CommandError(
                f"{len(drift)} roll-up value(s) differ from the raw rows ({first} to {last}): "
                f"run manage.py rollups_rebuild --from {first} --to {last}."
            )
        self.stdout.write(self.style.SUCCESS(f"No drift: the roll-ups of {first} to {last} match the raw rows."))
