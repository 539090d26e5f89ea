"""DRF's `drf_create_token USERNAME [--reset]`, for hashed tokens: the key is printed once and only its
digest is stored, so an existing token cannot be shown again; --reset replaces it with a new one."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from overview.api import tokens


class Command(BaseCommand):
    help = "Create a REST API token for a user and print its key (shown once; only a hash is kept)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "-r",
            "--reset",
            action="store_true",
            dest="reset_token",
            help="Replace the user's existing token.",
        )

    def handle(self, *args, username: str, reset_token: bool, **options) -> None:
        users = get_user_model()._default_manager
        try:
            user = users.get_by_natural_key(username)
        except users.model.DoesNotExist:
            raise CommandError(f"Cannot create the Token: user {username} does not exist") from None
        if tokens.token_of(user) and not reset_token:
            raise CommandError(
                f"User {username} already has a token, and only its hash is kept, so it cannot be shown "
                "again: run with --reset to replace it with a new one."
            )
        self.stdout.write(f"Generated token {tokens.issue(user)} for user {username}")
